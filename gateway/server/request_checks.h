// Request-level checks, as pure functions: where a request or tunnel goes (the request target
// in each of its forms), whether an inspected request's Host names the TLS connection's SNI, and
// the policy decision for one connection or request. No I/O, no libevent, no clock: the
// connection and the HTTP/1.1 exchange call these, and tests/unit/server tests them directly.
// Plain values; no thread ownership.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/http/http_head.h"
#include "gateway/net/ip_address.h"
#include "gateway/policy/decide.h"

namespace airlock::server {

// Why a request is refused, in the words of the HTTP answer (403 JSON body, X-Airlock-Reason).
struct Refusal {
  int status = 403;
  std::string reason;
  std::string message;
  std::string hint;
};

// Where a request or tunnel goes.
struct Target {
  bool tunnel = false;  // CONNECT: bytes after the 200 are not HTTP the gateway reads
  std::string host;     // as requested: a name or an address literal
  uint16_t port = 0;
  std::string origin_target;  // requests: path and query, always starting with '/'
  policy::Protocol protocol = policy::Protocol::kHttp;
};

// How a request head reaches the gateway, which decides the forms its target may take.
enum class TargetForm {
  kProxy,      // explicit proxy: absolute-form http:// URL, or CONNECT host:port
  kCaptured,   // cleartext HTTP captured by nftables: origin-form, Host names the destination
  kInspected,  // inside terminated TLS: origin-form (or https:// absolute-form), Host = SNI
};

struct TargetContext {
  TargetForm form = TargetForm::kProxy;
  uint16_t port = 0;     // kCaptured, kInspected: the port the connection was made to
  std::string_view sni;  // kInspected: the name the TLS connection was decided and minted for
};

// Splits "host:port" / "[v6]:port"; a missing port is `default_port` (0: required). False if
// malformed.
bool SplitAuthority(std::string_view authority, uint16_t default_port, std::string* host,
                    uint16_t* port);

// The target of `head`, or why it is refused. For kInspected a Host (or URL authority) other
// than the SNI is refused with 421 host_sni_mismatch: one TLS connection is one destination, so
// a second request cannot front for another host.
std::optional<Refusal> ParseTarget(const http::HttpHead& head, const TargetContext& context,
                                   Target* target);

// Two host names (or address literals) name the same host: case-insensitive, trailing dot
// ignored, an address literal in any spelling compared as an address.
bool SameHost(std::string_view a, std::string_view b);

// Host and optional port of `authority` name `sni` on `port` (SameHost; a missing port is
// `port`).
bool AuthorityMatchesSni(std::string_view authority, std::string_view sni, uint16_t port);

// What a decision needs to know about the connection it is made for.
struct DecisionContext {
  std::string_view session;
  std::string_view policy;
  policy::Usage usage;
};

// The decision for `target` at `address` (absent before resolution): request-level with the
// request's `method` and the target's path, connection-level when `method` is empty.
policy::Decision DecideTarget(const policy::PolicySet& policies, const DecisionContext& context,
                              const Target& target, std::string_view method,
                              std::optional<net::IpAddress> address);

// The 403 an agent reads for a denial.
Refusal RefusalFor(const policy::Decision& decision, const Target& target);

}  // namespace airlock::server
