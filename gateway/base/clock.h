// Clock: where "now" comes from, so time-dependent code (audit timestamps, TTLs, rate windows)
// can be tested with a fake. SystemClock() is thread-safe.
#pragma once

#include <chrono>

namespace airlock {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point Now() const = 0;
};

const Clock& SystemClock();

}  // namespace airlock
