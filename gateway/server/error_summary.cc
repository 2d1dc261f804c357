// Error counts per minute for the operator's log.
#include "gateway/server/error_summary.h"

#include "gateway/oplog/operator_log.h"

namespace airlock::server {

namespace {

// The refusals that say an upstream or the resolver failed (not a policy's denial).
constexpr const char* kUpstreamReasons[] = {"upstream_connect_failed", "upstream_timeout",
                                            "upstream_tls_failed", "bad_upstream_response",
                                            "dns_failed"};

}  // namespace

ErrorSummary::ErrorSummary(const Metrics& metrics) : metrics_(metrics), seen_(Counts()) {}

std::map<std::string, uint64_t> ErrorSummary::Counts() const {
  std::map<std::string, uint64_t> counts;
  for (const char* reason : kUpstreamReasons) counts[reason] = metrics_.Decisions("deny", reason);
  counts["resolver_errors"] = metrics_.resolver_errors.load();
  return counts;
}

void ErrorSummary::Tick(std::chrono::steady_clock::time_point now) {
  if (now - last_ < kInterval) return;
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(now - last_).count();
  last_ = now;
  auto counts = Counts();
  std::string errors;
  uint64_t total = 0;
  for (const auto& [name, n] : counts) {
    const uint64_t delta = n - seen_[name];
    if (delta == 0) continue;
    total += delta;
    if (!errors.empty()) errors += ",";
    errors += name + ":" + std::to_string(delta);
  }
  seen_ = std::move(counts);
  if (total == 0) return;
  oplog::Log(oplog::Level::kWarn, "errors.summary",
             {oplog::F("seconds", static_cast<uint64_t>(seconds)), oplog::F("total", total),
              oplog::F("errors", errors)});
}

}  // namespace airlock::server
