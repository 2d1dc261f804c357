// Prometheus text format for the gateway's counters, and the DNS mapping store.
#include "gateway/server/gateway_state.h"

namespace airlock::server {

void Metrics::CountDecision(const std::string& decision, const std::string& reason) {
  std::lock_guard<std::mutex> lk(mu_);
  ++decisions_[{decision, reason}];
}

uint64_t Metrics::Decisions(const std::string& decision, const std::string& reason) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = decisions_.find({decision, reason});
  return it == decisions_.end() ? 0 : it->second;
}

std::string Metrics::Render(size_t sessions, size_t audit_queue,
                            const std::vector<credentials::CredentialStatus>& credentials) const {
  std::string out;
  out +=
      "# HELP airlock_decisions_total Connections and requests decided, by decision and reason.\n";
  out += "# TYPE airlock_decisions_total counter\n";
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [key, n] : decisions_) {
      out += "airlock_decisions_total{decision=\"" + key.first + "\",reason=\"" + key.second +
             "\"} " + std::to_string(n) + "\n";
    }
  }
  out += "# HELP airlock_bytes_total Bytes relayed, by direction.\n";
  out += "# TYPE airlock_bytes_total counter\n";
  out += "airlock_bytes_total{direction=\"up\"} " + std::to_string(bytes_up.load()) + "\n";
  out += "airlock_bytes_total{direction=\"down\"} " + std::to_string(bytes_down.load()) + "\n";
  out += "# HELP airlock_spliced_bytes_total Bytes tunnelled with splice(2), never copied.\n";
  out += "# TYPE airlock_spliced_bytes_total counter\n";
  out += "airlock_spliced_bytes_total " + std::to_string(spliced_bytes.load()) + "\n";
  out += "# HELP airlock_resolver_errors_total Failed upstream name resolutions.\n";
  out += "# TYPE airlock_resolver_errors_total counter\n";
  out += "airlock_resolver_errors_total " + std::to_string(resolver_errors.load()) + "\n";
  out += "# HELP airlock_active_connections Client connections open now.\n";
  out += "# TYPE airlock_active_connections gauge\n";
  out += "airlock_active_connections " + std::to_string(active_connections.load()) + "\n";
  out += "# HELP airlock_h2_connections_total Inspected connections relayed as HTTP/2.\n";
  out += "# TYPE airlock_h2_connections_total counter\n";
  out += "airlock_h2_connections_total " + std::to_string(h2_connections.load()) + "\n";
  out += "# HELP airlock_h2_streams_total HTTP/2 streams (requests) decided.\n";
  out += "# TYPE airlock_h2_streams_total counter\n";
  out += "airlock_h2_streams_total " + std::to_string(h2_streams.load()) + "\n";
  out += "# HELP airlock_h2_stream_resets_total HTTP/2 streams ended by RST_STREAM.\n";
  out += "# TYPE airlock_h2_stream_resets_total counter\n";
  out += "airlock_h2_stream_resets_total " + std::to_string(h2_stream_resets.load()) + "\n";
  out += "# HELP airlock_h2_goaways_total HTTP/2 connections ended for a protocol violation.\n";
  out += "# TYPE airlock_h2_goaways_total counter\n";
  out += "airlock_h2_goaways_total " + std::to_string(h2_goaways.load()) + "\n";
  out += "# HELP airlock_active_sessions Sessions in the session table.\n";
  out += "# TYPE airlock_active_sessions gauge\n";
  out += "airlock_active_sessions " + std::to_string(sessions) + "\n";
  out += "# HELP airlock_audit_queue_depth Audit records waiting to be written.\n";
  out += "# TYPE airlock_audit_queue_depth gauge\n";
  out += "airlock_audit_queue_depth " + std::to_string(audit_queue) + "\n";
  out += "# HELP airlock_credential_refreshes_total Tokens fetched or minted, by credential.\n";
  out += "# TYPE airlock_credential_refreshes_total counter\n";
  for (const auto& c : credentials) {
    out += "airlock_credential_refreshes_total{credential=\"" + c.name + "\"} " +
           std::to_string(c.refreshes) + "\n";
  }
  out += "# HELP airlock_credential_failures_total Failed token fetches, by credential.\n";
  out += "# TYPE airlock_credential_failures_total counter\n";
  for (const auto& c : credentials) {
    out += "airlock_credential_failures_total{credential=\"" + c.name + "\"} " +
           std::to_string(c.failures) + "\n";
  }
  out +=
      "# HELP airlock_credential_expiry_seconds Seconds until the served token expires "
      "(credentials whose token expires).\n";
  out += "# TYPE airlock_credential_expiry_seconds gauge\n";
  auto now = std::chrono::system_clock::now();
  for (const auto& c : credentials) {
    if (!c.expires_at) continue;
    out += "airlock_credential_expiry_seconds{credential=\"" + c.name + "\"} " +
           std::to_string(
               std::chrono::duration_cast<std::chrono::seconds>(*c.expires_at - now).count()) +
           "\n";
  }
  return out;
}

void DnsMappings::Record(const std::string& session, const net::IpAddress& address,
                         const std::string& name) {
  std::lock_guard<std::mutex> lk(mu_);
  entries_[{session, address.ToString()}] =
      Entry{name, std::chrono::steady_clock::now() + kMappingLifetime};
}

std::optional<std::string> DnsMappings::Find(const std::string& session,
                                             const net::IpAddress& address) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = entries_.find({session, address.ToString()});
  if (it == entries_.end() || it->second.expires < std::chrono::steady_clock::now()) {
    return std::nullopt;
  }
  return it->second.name;
}

void DnsMappings::DropSession(const std::string& session) {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = it->first.first == session ? entries_.erase(it) : std::next(it);
  }
}

void DnsMappings::Expire() {
  std::lock_guard<std::mutex> lk(mu_);
  auto now = std::chrono::steady_clock::now();
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = it->second.expires < now ? entries_.erase(it) : std::next(it);
  }
}

}  // namespace airlock::server
