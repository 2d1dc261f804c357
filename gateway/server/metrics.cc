// Prometheus text format for the gateway's counters.
#include "gateway/server/gateway_state.h"

namespace airlock::server {

void Metrics::CountDecision(const std::string& decision, const std::string& reason) {
  std::lock_guard<std::mutex> lk(mu_);
  ++decisions_[{decision, reason}];
}

std::string Metrics::Render(size_t sessions, size_t audit_queue) const {
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
  out += "# HELP airlock_resolver_errors_total Failed upstream name resolutions.\n";
  out += "# TYPE airlock_resolver_errors_total counter\n";
  out += "airlock_resolver_errors_total " + std::to_string(resolver_errors.load()) + "\n";
  out += "# HELP airlock_active_connections Client connections open now.\n";
  out += "# TYPE airlock_active_connections gauge\n";
  out += "airlock_active_connections " + std::to_string(active_connections.load()) + "\n";
  out += "# HELP airlock_active_sessions Sessions in the session table.\n";
  out += "# TYPE airlock_active_sessions gauge\n";
  out += "airlock_active_sessions " + std::to_string(sessions) + "\n";
  out += "# HELP airlock_audit_queue_depth Audit records waiting to be written.\n";
  out += "# TYPE airlock_audit_queue_depth gauge\n";
  out += "airlock_audit_queue_depth " + std::to_string(audit_queue) + "\n";
  return out;
}

}  // namespace airlock::server
