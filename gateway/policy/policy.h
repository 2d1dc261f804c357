// The validated policy model: what a policy file says, after every check has passed. Built by
// the loader (policy_loader.h), compiled into a PolicySet (policy_set.h), read by Decide().
// Immutable once built; safe to share between threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gateway/net/ip_address.h"
#include "gateway/policy/host_pattern.h"
#include "gateway/policy/path.h"

namespace airlock::policy {

// What a connection carries, as the gateway sees it.
enum class Protocol : uint8_t {
  kTls,   // a TLS ClientHello: decided on the SNI
  kHttp,  // cleartext HTTP: decided on the request target and Host
  kTcp,   // opaque bytes: decided on host and port only (a tcp rule matches any protocol)
};

enum class Mode : uint8_t { kEnforce, kReport };
enum class UnknownNames : uint8_t { kNxdomain, kRefused };

struct PortRange {
  uint16_t first = 0;
  uint16_t last = 0;
  bool Contains(uint16_t port) const { return port >= first && port <= last; }
};

bool PortsContain(const std::vector<PortRange>& ports, uint16_t port);

struct HttpConstraints {
  std::vector<std::string> methods;  // empty: any method
  std::vector<PathGlob> paths;       // empty: any path
};

struct EgressRule {
  std::string id;
  std::string description;
  std::vector<HostPattern> hosts;
  std::vector<PortRange> ports;
  Protocol protocol = Protocol::kTls;
  bool inspect = false;  // terminate TLS and decide every request (tls rules only)
  std::optional<HttpConstraints> http;
  std::vector<std::string> credentials;  // names of the gateway's credential sources
};

// An internal range that this policy may reach (by literal address, or as the resolved address
// of an allowed name). Metadata and link-local addresses can never be listed.
struct PrivateRange {
  std::string id;
  net::Cidr cidr;
  std::vector<PortRange> ports;
};

struct Limits {
  std::optional<uint64_t> connections;          // concurrent connections per session
  std::optional<uint64_t> requests_per_minute;  // HTTP requests per session
  std::optional<uint64_t> bytes_out;            // bytes sent upstream per session
};

struct Policy {
  std::string name;
  std::string description;
  std::string source;  // file it was loaded from
  Mode mode = Mode::kEnforce;
  std::vector<EgressRule> egress;
  std::vector<HostPattern> deny_hosts;
  std::vector<net::Cidr> deny_cidrs;
  std::vector<PrivateRange> private_ranges;
  Limits limits;
  UnknownNames unknown_names = UnknownNames::kNxdomain;
};

std::string_view ProtocolName(Protocol protocol);
std::optional<Protocol> ParseProtocol(std::string_view text);

}  // namespace airlock::policy
