// GatewayState: what every worker shares: the configuration, the current PolicySet (swapped
// whole on reload), sessions, the audit log, the resolver, and metrics counters.
// Thread-safe: the policy holder takes a mutex for the pointer swap; counters are atomic or
// mutex-guarded.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "gateway/audit/audit_log.h"
#include "gateway/config/gateway_config.h"
#include "gateway/control/session_table.h"
#include "gateway/credentials/broker.h"
#include "gateway/dns/resolver.h"
#include "gateway/policy/policy_set.h"
#include "gateway/tls/inspector.h"

namespace airlock::server {

class PolicyHolder {
 public:
  std::shared_ptr<const policy::PolicySet> Get() const {
    std::lock_guard<std::mutex> lk(mu_);
    return set_;
  }
  void Set(std::shared_ptr<const policy::PolicySet> set) {
    std::lock_guard<std::mutex> lk(mu_);
    set_ = std::move(set);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const policy::PolicySet> set_ = std::make_shared<policy::PolicySet>();
};

// Prometheus counters.
class Metrics {
 public:
  void CountDecision(const std::string& decision, const std::string& reason);
  uint64_t Decisions(const std::string& decision, const std::string& reason) const;
  std::atomic<uint64_t> bytes_up{0};
  std::atomic<uint64_t> bytes_down{0};
  std::atomic<uint64_t> spliced_bytes{0};  // of both, through SpliceRelay's pipes
  std::atomic<uint64_t> resolver_errors{0};
  std::atomic<uint64_t> active_connections{0};
  // HTTP/2 inside inspected TLS.
  std::atomic<uint64_t> h2_connections{0};
  std::atomic<uint64_t> h2_streams{0};
  std::atomic<uint64_t> h2_stream_resets{0};  // streams ended by RST_STREAM, either side
  std::atomic<uint64_t> h2_goaways{0};        // connections the gateway ended with an error
  // Prometheus text exposition of everything above plus the gauges passed in.
  std::string Render(size_t sessions, size_t audit_queue,
                     const std::vector<credentials::CredentialStatus>& credentials) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, uint64_t> decisions_;
};

// (session, address) -> the name the DNS responder answered with that address, so that an opaque
// TCP connection captured transparently can be decided on a name. Entries live for
// kMappingLifetime after the answer (clients keep answers past their TTL).
class DnsMappings {
 public:
  static constexpr std::chrono::seconds kMappingLifetime{600};
  void Record(const std::string& session, const net::IpAddress& address, const std::string& name);
  std::optional<std::string> Find(const std::string& session, const net::IpAddress& address);
  void DropSession(const std::string& session);
  void Expire();

 private:
  struct Entry {
    std::string name;
    std::chrono::steady_clock::time_point expires;
  };
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, Entry> entries_;
};

struct GatewayState {
  config::GatewayConfig config;
  PolicyHolder policies;
  control::SessionTable* sessions = nullptr;
  audit::AuditLog* audit = nullptr;
  dns::Resolver* resolver = nullptr;
  tls::TlsInspector* tls = nullptr;
  credentials::CredentialBroker* credentials = nullptr;
  Metrics metrics;
  DnsMappings dns_mappings;
  std::atomic<uint64_t> next_connection{1};
};

}  // namespace airlock::server
