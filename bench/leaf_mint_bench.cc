// Leaf certificates for inspected TLS (gateway/tls/leaf_cache.h): the cost of minting one for a
// name never seen before (target: p99 <= 100 µs), of a cache hit, and of cache hits from two
// threads on the same names. Percentiles are of per-call times taken around each call and are
// reported as counters (µs). The CA is generated once in a temporary state directory, which is
// removed at exit. Run: build/release/bench/leaf_mint_bench
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gateway/base/clock.h"
#include "gateway/tls/certificate_authority.h"
#include "gateway/tls/leaf_cache.h"

namespace airlock::tls {
namespace {

constexpr int kHotNames = 1000;  // names kept warm for the cache-hit benchmarks

std::string& StateDir() {
  static std::string dir;
  return dir;
}

const CertificateAuthority& Ca() {
  static const std::unique_ptr<CertificateAuthority> ca = [] {
    char tmpl[] = "/tmp/airlock-leaf-bench-XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    StateDir() = tmpl;
    auto r = CertificateAuthority::LoadOrCreate({"", "", StateDir()});
    if (!r.ok()) {
      std::fprintf(stderr, "CA: %s\n", r.status().message().c_str());
      std::abort();
    }
    return std::move(r).value();
  }();
  return *ca;
}

std::string Name(uint64_t i) { return "host-" + std::to_string(i) + ".bench.example.com"; }

// Adds p50/p99/max of `us` (per-call microseconds) as counters.
void ReportPercentiles(benchmark::State& state, std::vector<double>& us) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[std::min(us.size() - 1, size_t(q * (us.size() - 1)))]; };
  state.counters["p50_us"] = at(0.50);
  state.counters["p99_us"] = at(0.99);
  state.counters["max_us"] = us.back();
}

// Times `call(name)` for names never seen before, per call, and reports the percentiles.
template <typename Call>
void TimeFreshNames(benchmark::State& state, uint64_t* next, Call call) {
  std::vector<double> us;
  us.reserve(1 << 20);
  for (auto _ : state) {
    std::string name = Name((*next)++);
    auto t0 = std::chrono::steady_clock::now();
    auto leaf = call(name);
    auto t1 = std::chrono::steady_clock::now();
    if (!leaf.ok()) {
      state.SkipWithError(leaf.status().message().c_str());
      break;
    }
    benchmark::DoNotOptimize(leaf);
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  ReportPercentiles(state, us);
}

// Mint() of a name never minted before in this process (uncached, as on a cache miss).
void BM_MintFreshName(benchmark::State& state) {
  LeafCache cache(Ca(), SystemClock(), LeafOptions{});
  static uint64_t next = 0;
  TimeFreshNames(state, &next, [&](const std::string& name) { return cache.Mint(name); });
}
BENCHMARK(BM_MintFreshName)->Unit(benchmark::kMicrosecond)->Repetitions(3);

// Get() of a name not in the cache: lookup, mint and insert (evicting once full).
void BM_GetMiss(benchmark::State& state) {
  LeafCache cache(Ca(), SystemClock(), LeafOptions{std::chrono::hours(24), 1000});
  static uint64_t next = 1u << 30;
  TimeFreshNames(state, &next, [&](const std::string& name) { return cache.Get(name); });
}
BENCHMARK(BM_GetMiss)->Unit(benchmark::kMicrosecond);

// A cache with kHotNames names already minted, shared by the cache-hit benchmarks.
struct Warm {
  LeafCache cache{Ca(), SystemClock(), LeafOptions{}};
  std::vector<std::string> names;
  Warm() {
    for (int i = 0; i < kHotNames; ++i) {
      names.push_back(Name(uint64_t(1) << 40 | uint64_t(i)));
      if (!cache.Get(names.back()).ok()) std::abort();
    }
  }
};
Warm& WarmCache() {
  static Warm w;
  return w;
}

// Get() of names already cached: one thread, or two threads walking the same names (both
// threads hit the same shards and slots at nearly the same time).
void BM_GetHit(benchmark::State& state) {
  Warm& w = WarmCache();
  size_t i = 0;
  for (auto _ : state) {
    auto leaf = w.cache.Get(w.names[i]);
    benchmark::DoNotOptimize(leaf);
    if (++i == w.names.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GetHit)->Unit(benchmark::kNanosecond)->UseRealTime()->Threads(1)->Threads(2);

}  // namespace
}  // namespace airlock::tls

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  airlock::tls::Ca();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  std::filesystem::remove_all(airlock::tls::StateDir(), ec);
  return 0;
}
