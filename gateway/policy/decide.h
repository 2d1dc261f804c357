// Decide(): the one policy decision every connection, request and DNS answer goes through. Pure:
// no I/O, no clock, no global state; everything it needs is in its arguments, so the gateway,
// `airlockctl policy test` and the unit tests get the same answer for the same input.
// Thread-safe as long as the PolicySet outlives the call.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "gateway/net/address_class.h"
#include "gateway/net/ip_address.h"
#include "gateway/policy/policy_set.h"
#include "gateway/policy/reason.h"

namespace airlock::policy {

// What the session has used so far, not counting the connection or request being decided.
struct Usage {
  uint64_t connections = 0;           // open connections
  uint64_t requests_last_minute = 0;  // HTTP requests in the last 60 s
  uint64_t bytes_out = 0;             // bytes sent upstream
};

// Present for request-level decisions: one HTTP request seen in cleartext or inside inspected
// TLS. Absent for connection-level decisions (CONNECT, ClientHello, opaque TCP, DNS).
struct HttpRequestInfo {
  std::string_view method;
  std::string_view target;  // origin-form: path and optional query
};

struct Request {
  std::string_view session;  // empty: the connection matched no session
  std::string_view policy;   // the session's policy name
  std::string_view host;     // as received: Host, SNI, CONNECT authority or DNS name
  uint16_t port = 0;
  Protocol protocol = Protocol::kTls;
  std::optional<HttpRequestInfo> http;
  // The address the gateway is about to dial (after resolution). Absent before resolution.
  // Ignored when the host itself is an IP literal: then the literal is the address.
  std::optional<net::IpAddress> address;
  Usage usage;
};

struct Decision {
  Verdict verdict = Verdict::kDeny;
  Reason reason = Reason::kHostNotAllowed;
  const CompiledPolicy* policy = nullptr;
  const EgressRule* rule = nullptr;                // the egress rule that matched, if any
  const PrivateRange* private_range = nullptr;     // the private entry that admitted the address
  std::optional<net::AddressClass> address_class;  // class of the destination address, if known

  bool allowed() const { return verdict != Verdict::kDeny; }
  // The id of the matched egress rule, else of the private entry, else "".
  std::string_view rule_id() const;
};

Decision Decide(const PolicySet& policies, const Request& request);

// For the DNS responder: may this session learn the addresses of `name`? Steps 1, 2, 4 and 5 of
// Decide() on the name alone: allowed when some egress rule's host pattern matches it (any port
// or protocol) and the deny list does not. Report mode applies as in Decide(). A name that is an
// address literal is never answered (host_not_allowed).
Decision DecideName(const PolicySet& policies, std::string_view session, std::string_view policy,
                    std::string_view name);

// For DNS answers to an allowed name: may `address` be handed to the session? Not if it is
// never-allowed or on deny.cidrs; an internal address only if some private entry contains it.
bool AnswerAllowed(const CompiledPolicy& policy, const net::IpAddress& address);

}  // namespace airlock::policy
