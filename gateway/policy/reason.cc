// Names and hints of verdicts and reasons, in one table so that printing and parsing agree.
#include "gateway/policy/reason.h"

#include <array>

namespace airlock::policy {
namespace {

struct ReasonInfo {
  Reason reason;
  std::string_view name;
  std::string_view hint;
};

constexpr std::array kReasons = {
    ReasonInfo{Reason::kAllowed, "allowed", "The request matched an egress rule."},
    ReasonInfo{Reason::kUnknownSession, "unknown_session",
               "The connection belongs to no session; send Proxy-Authorization or connect from "
               "a sandbox the gateway knows."},
    ReasonInfo{Reason::kPolicyNotFound, "policy_not_found",
               "The session names a policy the gateway has not loaded."},
    ReasonInfo{Reason::kHostEmpty, "host_empty", "The request names no host."},
    ReasonInfo{Reason::kHostNul, "host_nul", "The host contains a NUL byte."},
    ReasonInfo{Reason::kHostNonAscii, "host_non_ascii",
               "The host is not ASCII; use its punycode (xn--) form."},
    ReasonInfo{Reason::kHostInvalidChar, "host_invalid_char",
               "The host contains characters that are not allowed in a DNS name."},
    ReasonInfo{Reason::kHostEmptyLabel, "host_empty_label", "The host has an empty label."},
    ReasonInfo{Reason::kHostLabelTooLong, "host_label_too_long",
               "The host has a label longer than 63 octets."},
    ReasonInfo{Reason::kHostTooLong, "host_too_long", "The host is longer than 253 octets."},
    ReasonInfo{Reason::kHostAmbiguousAddress, "host_ambiguous_address",
               "The host looks like an IP address but is not a valid one."},
    ReasonInfo{Reason::kAddressMetadata, "address_metadata",
               "Cloud metadata endpoints are never reachable from a sandbox."},
    ReasonInfo{Reason::kAddressLinkLocal, "address_link_local",
               "Link-local addresses are never reachable from a sandbox."},
    ReasonInfo{Reason::kAddressUnroutable, "address_unroutable",
               "Unspecified, multicast and broadcast addresses are never reachable."},
    ReasonInfo{Reason::kHostDenied, "host_denied", "The host is on the policy's deny list."},
    ReasonInfo{Reason::kAddressDenied, "address_denied",
               "The destination address is on the policy's deny list."},
    ReasonInfo{Reason::kHostNotAllowed, "host_not_allowed",
               "No egress rule allows this host; ask for it to be added to the policy."},
    ReasonInfo{Reason::kPortNotAllowed, "port_not_allowed",
               "The host is allowed, but not on this port."},
    ReasonInfo{Reason::kProtocolNotAllowed, "protocol_not_allowed",
               "The host and port are allowed, but not for this protocol (tls, http or tcp)."},
    ReasonInfo{Reason::kMethodNotAllowed, "method_not_allowed",
               "The host is allowed, but not this HTTP method."},
    ReasonInfo{Reason::kPathAmbiguous, "path_ambiguous",
               "The path is ambiguous (encoded '/', dot-segments, '//', backslash); send it in "
               "plain normalised form."},
    ReasonInfo{Reason::kPathNotAllowed, "path_not_allowed",
               "The host is allowed, but not this path."},
    ReasonInfo{Reason::kAddressInternal, "address_internal",
               "The destination is an internal address that the policy does not list under "
               "private."},
    ReasonInfo{Reason::kLimitConnections, "limit_connections",
               "The session has reached its limit of concurrent connections; close some first."},
    ReasonInfo{Reason::kLimitRequests, "limit_requests",
               "The session has reached its requests-per-minute limit; retry later."},
    ReasonInfo{Reason::kLimitBytesOut, "limit_bytes_out",
               "The session has sent as many bytes as its policy allows."},
};

constexpr std::array<std::string_view, 3> kVerdicts = {"allow", "deny", "report"};

}  // namespace

std::string_view VerdictName(Verdict verdict) { return kVerdicts[static_cast<size_t>(verdict)]; }

std::optional<Verdict> ParseVerdict(std::string_view text) {
  for (size_t i = 0; i < kVerdicts.size(); ++i) {
    if (kVerdicts[i] == text) return static_cast<Verdict>(i);
  }
  return std::nullopt;
}

std::string_view ReasonName(Reason reason) { return kReasons[static_cast<size_t>(reason)].name; }

std::string_view ReasonHint(Reason reason) { return kReasons[static_cast<size_t>(reason)].hint; }

std::optional<Reason> ParseReason(std::string_view text) {
  for (const auto& r : kReasons) {
    if (r.name == text) return r.reason;
  }
  return std::nullopt;
}

// The table is indexed by enum value; keep them in the same order.
static_assert([] {
  for (size_t i = 0; i < kReasons.size(); ++i) {
    if (static_cast<size_t>(kReasons[i].reason) != i) return false;
  }
  return kReasons.back().reason == Reason::kLimitBytesOut;
}());

}  // namespace airlock::policy
