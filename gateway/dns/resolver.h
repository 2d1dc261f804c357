// Resolver: name -> addresses, for the gateway's own upstream connections. The gateway classifies
// every address it gets (policy::Decide) and dials only one that was allowed; the resolver just
// resolves. Implementations are thread-safe; callbacks run on a resolver thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gateway/base/status.h"
#include "gateway/net/ip_address.h"

namespace airlock::dns {

using ResolveCallback = std::function<void(Result<std::vector<net::IpAddress>>)>;

class Resolver {
 public:
  virtual ~Resolver() = default;
  // Resolves A and AAAA for `name` (a normalised DNS name, not an address literal).
  virtual void Resolve(const std::string& name, ResolveCallback callback) = 0;
};

struct ResolverOptions {
  std::vector<std::string> servers;  // "ip:port"; empty: the system's (resolv.conf)
  std::chrono::milliseconds timeout{2000};
  int tries = 2;
  std::chrono::seconds min_ttl{0};  // answers with TTL 0 are never cached
  std::chrono::seconds max_ttl{300};
};

// c-ares on a thread of its own: DNS only (no /etc/hosts, no search domains), TTL cache.
Result<std::unique_ptr<Resolver>> MakeAresResolver(const ResolverOptions& options);

}  // namespace airlock::dns
