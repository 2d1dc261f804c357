// The policy decision. Allocation happens only for host and path normalisation.
#include "gateway/policy/decide.h"

#include <algorithm>
#include <limits>

#include "gateway/net/host.h"

namespace airlock::policy {
namespace {

Reason HostErrorReason(net::HostError error) {
  switch (error) {
    case net::HostError::kEmpty:
      return Reason::kHostEmpty;
    case net::HostError::kNul:
      return Reason::kHostNul;
    case net::HostError::kNonAscii:
      return Reason::kHostNonAscii;
    case net::HostError::kInvalidChar:
      return Reason::kHostInvalidChar;
    case net::HostError::kEmptyLabel:
      return Reason::kHostEmptyLabel;
    case net::HostError::kLabelTooLong:
      return Reason::kHostLabelTooLong;
    case net::HostError::kNameTooLong:
      return Reason::kHostTooLong;
    case net::HostError::kAmbiguousAddress:
    case net::HostError::kNone:
      break;
  }
  return Reason::kHostAmbiguousAddress;
}

std::optional<Reason> NeverAllowedReason(net::AddressClass cls) {
  switch (cls) {
    case net::AddressClass::kMetadata:
      return Reason::kAddressMetadata;
    case net::AddressClass::kLinkLocal:
      return Reason::kAddressLinkLocal;
    case net::AddressClass::kUnspecified:
    case net::AddressClass::kMulticast:
    case net::AddressClass::kBroadcast:
      return Reason::kAddressUnroutable;
    default:
      return std::nullopt;
  }
}

bool ProtocolFits(Protocol rule, Protocol request) {
  return rule == request || rule == Protocol::kTcp;
}

// The first private entry containing the address (raw or embedded) that lists the port.
const PrivateRange* FindPrivate(const Policy& policy, const net::IpAddress& raw,
                                const net::IpAddress& effective, uint16_t port,
                                bool* cidr_matched) {
  for (const auto& range : policy.private_ranges) {
    if (!range.cidr.Contains(effective) && !range.cidr.Contains(raw)) continue;
    *cidr_matched = true;
    if (PortsContain(range.ports, port)) return &range;
  }
  return nullptr;
}

bool InCidrs(const std::vector<net::Cidr>& cidrs, const net::IpAddress& a,
             const net::IpAddress& b) {
  return std::any_of(cidrs.begin(), cidrs.end(),
                     [&](const net::Cidr& c) { return c.Contains(a) || c.Contains(b); });
}

}  // namespace

std::string_view Decision::rule_id() const {
  if (rule) return rule->id;
  if (private_range) return private_range->id;
  return {};
}

// Evaluation order. The first step that decides wins.
//  1. Session. No session: unknown_session. Its policy is not loaded: policy_not_found.
//  2. Host syntax. The host is normalised (net::NormalizeHost: lower case, trailing dot dropped,
//     numeric spellings decoded to an address). Malformed: a host_* reason of its own.
//  3. Never-allowed destinations. When the destination address is known (the host is a literal,
//     or the resolved address about to be dialled is given), cloud metadata: address_metadata;
//     link-local: address_link_local; unspecified, multicast, broadcast: address_unroutable.
//     Nothing in a policy, not even report mode, changes this.
//  4. Deny lists. The name matches deny.hosts: host_denied. The address (raw or embedded IPv4)
//     is in deny.cidrs: address_denied. Deny wins over every allow.
//  5. Egress match. A name: the first egress rule, in file order, with a host pattern matching
//     the name, the port in its ports, and a fitting protocol (a tcp rule fits every protocol).
//     A literal address: the first private entry containing it that lists the port. No match:
//     protocol_not_allowed if a rule matched host and port, else port_not_allowed if a rule (or
//     private entry) matched the host, else address_internal for an internal literal, else
//     host_not_allowed.
//  6. HTTP constraints, for request-level decisions only (request.http set) and only if the rule
//     has them: method not listed: method_not_allowed; paths listed and the path ambiguous:
//     path_ambiguous; no path glob matches: path_not_allowed.
//  7. Internal destination. A name whose known address is not public must have that address in
//     a private entry that lists the port: else address_internal.
//  8. Limits. Connection-level: open connections at the limit: limit_connections. Request-level:
//     requests in the last minute at the limit: limit_requests. Both: bytes_out at the limit:
//     limit_bytes_out.
//  9. Report mode. A denial from steps 4 to 8 becomes verdict report, its reason kept.
// 10. Otherwise allow, reason allowed.
Decision Decide(const PolicySet& policies, const Request& request) {
  Decision d;
  auto deny = [&d](Reason reason) {
    d.verdict = Verdict::kDeny;
    d.reason = reason;
    return d;
  };
  // 1. Session.
  if (request.session.empty()) return deny(Reason::kUnknownSession);
  d.policy = policies.Find(request.policy);
  if (!d.policy) return deny(Reason::kPolicyNotFound);
  const Policy& policy = d.policy->policy();

  // 2. Host syntax.
  net::NormalizedHost host = net::NormalizeHost(request.host);
  if (host.error != net::HostError::kNone) return deny(HostErrorReason(host.error));
  const bool literal = host.address.has_value();
  std::optional<net::IpAddress> address = literal ? host.address : request.address;

  // 3. Never-allowed destinations.
  net::AddressClassification cls;
  if (address) {
    cls = net::ClassifyAddress(*address);
    d.address_class = cls.cls;
    if (auto never = NeverAllowedReason(cls.cls)) return deny(*never);
  }

  // Steps 4 to 8 may be softened by report mode.
  auto policy_deny = [&](Reason reason) {
    d.verdict = policy.mode == Mode::kReport ? Verdict::kReport : Verdict::kDeny;
    d.reason = reason;
    return d;
  };

  // 4. Deny lists.
  if (!literal && d.policy->deny_index().Contains(host.name)) {
    return policy_deny(Reason::kHostDenied);
  }
  if (address && InCidrs(policy.deny_cidrs, *address, cls.effective)) {
    return policy_deny(Reason::kAddressDenied);
  }

  // 5. Egress match.
  if (literal) {
    bool cidr_matched = false;
    d.private_range = FindPrivate(policy, *address, cls.effective, request.port, &cidr_matched);
    if (!d.private_range) {
      if (cidr_matched) return policy_deny(Reason::kPortNotAllowed);
      return policy_deny(cls.cls == net::AddressClass::kPublic ? Reason::kHostNotAllowed
                                                               : Reason::kAddressInternal);
    }
  } else {
    uint32_t best = std::numeric_limits<uint32_t>::max();
    bool host_matched = false;
    bool port_matched = false;
    d.policy->egress_index().ForEachMatch(host.name, [&](const std::vector<uint32_t>& rules) {
      host_matched = true;
      for (uint32_t i : rules) {
        if (i >= best) break;
        const EgressRule& rule = policy.egress[i];
        if (!PortsContain(rule.ports, request.port)) continue;
        port_matched = true;
        if (ProtocolFits(rule.protocol, request.protocol)) {
          best = i;
          break;
        }
      }
    });
    if (best == std::numeric_limits<uint32_t>::max()) {
      if (port_matched) return policy_deny(Reason::kProtocolNotAllowed);
      return policy_deny(host_matched ? Reason::kPortNotAllowed : Reason::kHostNotAllowed);
    }
    d.rule = &policy.egress[best];
  }

  // 6. HTTP constraints.
  if (request.http && d.rule && d.rule->http) {
    const HttpConstraints& http = *d.rule->http;
    if (!http.methods.empty() && std::find(http.methods.begin(), http.methods.end(),
                                           request.http->method) == http.methods.end()) {
      return policy_deny(Reason::kMethodNotAllowed);
    }
    if (!http.paths.empty()) {
      auto path = NormalizePath(request.http->target);
      if (!path) return policy_deny(Reason::kPathAmbiguous);
      if (std::none_of(http.paths.begin(), http.paths.end(),
                       [&](const PathGlob& g) { return g.Matches(*path); })) {
        return policy_deny(Reason::kPathNotAllowed);
      }
    }
  }

  // 7. Internal destination.
  if (!literal && address && cls.cls != net::AddressClass::kPublic) {
    bool cidr_matched = false;
    d.private_range = FindPrivate(policy, *address, cls.effective, request.port, &cidr_matched);
    if (!d.private_range) return policy_deny(Reason::kAddressInternal);
  }

  // 8. Limits.
  const Limits& limits = policy.limits;
  if (!request.http && limits.connections && request.usage.connections >= *limits.connections) {
    return policy_deny(Reason::kLimitConnections);
  }
  if (request.http && limits.requests_per_minute &&
      request.usage.requests_last_minute >= *limits.requests_per_minute) {
    return policy_deny(Reason::kLimitRequests);
  }
  if (limits.bytes_out && request.usage.bytes_out >= *limits.bytes_out) {
    return policy_deny(Reason::kLimitBytesOut);
  }

  // 10. Allow.
  d.verdict = Verdict::kAllow;
  d.reason = Reason::kAllowed;
  return d;
}

Decision DecideName(const PolicySet& policies, std::string_view session, std::string_view policy,
                    std::string_view name) {
  Decision d;
  auto deny = [&d](Reason reason) {
    d.verdict = Verdict::kDeny;
    d.reason = reason;
    return d;
  };
  if (session.empty()) return deny(Reason::kUnknownSession);
  d.policy = policies.Find(policy);
  if (!d.policy) return deny(Reason::kPolicyNotFound);
  const Policy& p = d.policy->policy();
  net::NormalizedHost host = net::NormalizeHost(name);
  if (host.error != net::HostError::kNone) return deny(HostErrorReason(host.error));
  auto policy_deny = [&](Reason reason) {
    d.verdict = p.mode == Mode::kReport ? Verdict::kReport : Verdict::kDeny;
    d.reason = reason;
    return d;
  };
  if (host.address) return deny(Reason::kHostNotAllowed);
  if (d.policy->deny_index().Contains(host.name)) return policy_deny(Reason::kHostDenied);
  uint32_t first = std::numeric_limits<uint32_t>::max();
  d.policy->egress_index().ForEachMatch(host.name, [&](const std::vector<uint32_t>& rules) {
    first = std::min(first, rules.front());
  });
  if (first == std::numeric_limits<uint32_t>::max()) return policy_deny(Reason::kHostNotAllowed);
  d.rule = &p.egress[first];
  d.verdict = Verdict::kAllow;
  d.reason = Reason::kAllowed;
  return d;
}

bool AnswerAllowed(const CompiledPolicy& policy, const net::IpAddress& address) {
  net::AddressClassification cls = net::ClassifyAddress(address);
  if (net::IsNeverAllowed(cls.cls)) return false;
  const Policy& p = policy.policy();
  if (InCidrs(p.deny_cidrs, address, cls.effective)) return false;
  if (cls.cls == net::AddressClass::kPublic) return true;
  return std::any_of(p.private_ranges.begin(), p.private_ranges.end(), [&](const PrivateRange& r) {
    return r.cidr.Contains(cls.effective) || r.cidr.Contains(address);
  });
}

}  // namespace airlock::policy
