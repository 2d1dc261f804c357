// ErrorSummary: once a minute, one operator-log line counting the upstream and resolver errors
// since the last line (when there were any). A line per failed request would let a sandbox flood
// the operator's log; a count per minute still shows an upstream or resolver in trouble.
// Main thread only (it reads the metrics' counters, which workers update atomically).
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "gateway/server/gateway_state.h"

namespace airlock::server {

class ErrorSummary {
 public:
  static constexpr std::chrono::seconds kInterval{60};

  explicit ErrorSummary(const Metrics& metrics);
  // Called every tick; logs when kInterval has passed since the last line.
  void Tick(std::chrono::steady_clock::time_point now);

 private:
  std::map<std::string, uint64_t> Counts() const;

  const Metrics& metrics_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  std::map<std::string, uint64_t> seen_;
};

}  // namespace airlock::server
