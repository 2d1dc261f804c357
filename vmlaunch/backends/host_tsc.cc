// HostTscKhz: pairs of (monotonic clock, TSC) read back to back; of a few tries the pair with the
// shortest clock window wins, so that a preemption between the reads does not skew the rate.
#include "vmlaunch/backends/host_tsc.h"

#include <time.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "vmlaunch/process/read_file.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace airlock::vmlaunch {

namespace {

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

#if defined(__x86_64__) || defined(__i386__)
struct Sample {
  int64_t ns;  // the middle of the window
  uint64_t tsc;
};

Sample TakeSample() {
  Sample best{};
  int64_t best_window = INT64_MAX;
  for (int i = 0; i < 16; ++i) {
    const int64_t before = NowNs();
    const uint64_t tsc = __rdtsc();
    const int64_t after = NowNs();
    if (after - before < best_window) {
      best_window = after - before;
      best = {before + (after - before) / 2, tsc};
    }
  }
  return best;
}

int64_t MeasureKhz() {
  if (!TscIsInvariant(ReadFile("/proc/cpuinfo"))) return 0;
  const Sample a = TakeSample();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const Sample b = TakeSample();
  if (b.ns <= a.ns || b.tsc <= a.tsc) return 0;
  // kHz = ticks per millisecond, rounded.
  return static_cast<int64_t>(
      (static_cast<long double>(b.tsc - a.tsc) * 1'000'000) / (b.ns - a.ns) + 0.5L);
}
#else
int64_t MeasureKhz() { return 0; }
#endif

}  // namespace

bool TscIsInvariant(const std::string& cpuinfo) {
  std::istringstream in(cpuinfo);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    bool constant = false, nonstop = false;
    for (std::string w; words >> w;) {
      constant = constant || w == "constant_tsc";
      nonstop = nonstop || w == "nonstop_tsc";
    }
    return constant && nonstop;  // the first CPU speaks for all
  }
  return false;
}

int64_t HostTscKhz() {
  static const int64_t khz = MeasureKhz();
  return khz;
}

}  // namespace airlock::vmlaunch
