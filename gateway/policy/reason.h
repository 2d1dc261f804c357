// Verdicts and reason codes of policy decisions. The reason's name is the stable string used in
// audit records, 403 bodies and policy tests; its hint tells an agent what to do about it.
// Constants only; no thread ownership.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace airlock::policy {

enum class Verdict : uint8_t {
  kAllow,
  kDeny,
  kReport,  // report mode: the policy would deny, the gateway allows and records it
};

enum class Reason : uint8_t {
  kAllowed,
  kUnknownSession,
  kPolicyNotFound,
  kHostEmpty,
  kHostNul,
  kHostNonAscii,
  kHostInvalidChar,
  kHostEmptyLabel,
  kHostLabelTooLong,
  kHostTooLong,
  kHostAmbiguousAddress,
  kAddressMetadata,
  kAddressLinkLocal,
  kAddressUnroutable,
  kHostDenied,
  kAddressDenied,
  kHostNotAllowed,
  kPortNotAllowed,
  kProtocolNotAllowed,
  kMethodNotAllowed,
  kPathAmbiguous,
  kPathNotAllowed,
  kAddressInternal,
  kLimitConnections,
  kLimitRequests,
  kLimitBytesOut,
};

std::string_view VerdictName(Verdict verdict);
std::optional<Verdict> ParseVerdict(std::string_view text);
std::string_view ReasonName(Reason reason);
std::optional<Reason> ParseReason(std::string_view text);
// One sentence for an agent: why, and what would make the request pass.
std::string_view ReasonHint(Reason reason);

}  // namespace airlock::policy
