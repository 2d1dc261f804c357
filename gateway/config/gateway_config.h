// GatewayConfig: airlock.yaml, the gateway's own configuration (listeners, directories, audit
// log, resolver, limits). Policies live in their own files. Loaded with the strict YAML reader:
// every error with file:line:col. Plain values; no thread ownership.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gateway/config/credential_config.h"
#include "gateway/config/diagnostic.h"

namespace airlock::config {

struct HostPort {
  std::string host;  // an IP address
  uint16_t port = 0;
};

struct GatewayConfig {
  std::string source;
  HostPort proxy{"127.0.0.1", 3128};
  std::string control_socket = "/run/airlock/control.sock";
  std::optional<HostPort> metrics;      // Prometheus text on this loopback address
  std::optional<HostPort> dns;          // the sandboxes' DNS responder (UDP and TCP)
  std::optional<HostPort> transparent;  // connections redirected by nftables
  int workers = 0;                      // 0: one per core
  std::string state_dir = "/var/lib/airlock";
  std::string policy_dir = "/etc/airlock/policies";

  std::string audit_path = "/var/log/airlock/audit.jsonl";
  uint64_t audit_rotate_bytes = 100ull << 20;
  std::chrono::milliseconds audit_sync_interval{100};
  std::string audit_hmac_key_file;

  std::vector<std::string> resolver_servers;  // "ip:port"; empty: /etc/resolv.conf
  std::chrono::milliseconds resolver_timeout{2000};
  std::chrono::seconds resolver_max_ttl{300};

  uint32_t dns_answer_ttl = 30;          // TTL of the responder's answers (clamped)
  uint32_t dns_queries_per_second = 50;  // per session, with a burst of twice that

  // TLS inspection (docs/TLS.md). CA files empty: generated in state_dir on first start.
  std::string tls_ca_cert;
  std::string tls_ca_key;
  std::string tls_upstream_ca_file;  // empty: the system store
  std::chrono::hours tls_leaf_validity{24};
  size_t tls_leaf_cache_size = 10000;

  std::vector<CredentialConfig> credentials;

  size_t max_request_line = 8192;
  size_t max_head_bytes = 32768;
  size_t max_headers = 100;
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds idle_timeout{300000};
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds sniff_timeout{1000};  // transparent: wait this long for first bytes
  std::chrono::milliseconds drain_timeout{10000};
};

std::optional<GatewayConfig> LoadGatewayConfig(const std::string& path, Diagnostics* diags);
// The same from text; `source` names it in diagnostics.
std::optional<GatewayConfig> LoadGatewayConfigText(const std::string& text,
                                                   const std::string& source, Diagnostics* diags);

// The names under `credentials:`, which policy rules may bind.
std::set<std::string> CredentialNames(const GatewayConfig& config);

// "1.2.3.4:80" or "[::1]:80".
std::optional<HostPort> ParseHostPort(std::string_view text);

}  // namespace airlock::config
