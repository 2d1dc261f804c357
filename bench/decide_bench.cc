// Decide() with 10,000 host rules (DESIGN.md target: <= 300 ns per decision), plus host
// normalisation and address classification on their own. Run: build/release/bench/decide_bench
#include <benchmark/benchmark.h>

#include <string>

#include "gateway/net/address_class.h"
#include "gateway/policy/decide.h"
#include "gateway/policy/policy_loader.h"

namespace airlock::policy {
namespace {

constexpr int kRules = 10000;

// 10k rules: 9,000 exact hosts and 1,000 wildcards, 2 hosts each, spread over many domains.
const PolicySet& BigSet() {
  static const PolicySet set = [] {
    std::string yaml = "version: v1\nname: big\negress:\n";
    for (int i = 0; i < kRules; ++i) {
      yaml += "  - id: r" + std::to_string(i) + "\n";
      if (i % 10 == 9) {
        yaml += "    hosts: [\"*.svc" + std::to_string(i) + ".example.net\"]\n";
      } else {
        yaml += "    hosts: [api" + std::to_string(i) + ".example" + std::to_string(i % 97) +
                ".com, www" + std::to_string(i) + ".example.org]\n";
      }
      if (i % 3 == 0) {
        yaml +=
            "    inspect: true\n    http:\n      methods: [GET, POST]\n"
            "      paths: [\"/v1/**\", \"/health\"]\n";
      }
    }
    config::Diagnostics diags;
    auto p = LoadPolicyText(yaml, "big.yaml", {}, &diags);
    if (!p) std::abort();
    std::vector<Policy> one;
    one.push_back(std::move(*p));
    return PolicySet::Build(std::move(one));
  }();
  return set;
}

Request Base(std::string_view host) {
  Request r;
  r.session = "s";
  r.policy = "big";
  r.host = host;
  r.port = 443;
  return r;
}

void BM_DecideExactAllow(benchmark::State& state) {
  const PolicySet& set = BigSet();
  Request r = Base("api9998.example7.com");
  for (auto _ : state) benchmark::DoNotOptimize(Decide(set, r));
}
BENCHMARK(BM_DecideExactAllow);

void BM_DecideWildcardAllow(benchmark::State& state) {
  const PolicySet& set = BigSet();
  Request r = Base("a.b.svc9999.example.net");
  for (auto _ : state) benchmark::DoNotOptimize(Decide(set, r));
}
BENCHMARK(BM_DecideWildcardAllow);

void BM_DecideNoMatch(benchmark::State& state) {
  const PolicySet& set = BigSet();
  Request r = Base("unknown.host.example.io");
  for (auto _ : state) benchmark::DoNotOptimize(Decide(set, r));
}
BENCHMARK(BM_DecideNoMatch);

void BM_DecideHttpRequest(benchmark::State& state) {
  const PolicySet& set = BigSet();
  Request r = Base("api3.example3.com");  // rule r3 inspects with methods and paths
  r.http = HttpRequestInfo{"GET", "/v1/items/42?x=1"};
  for (auto _ : state) benchmark::DoNotOptimize(Decide(set, r));
}
BENCHMARK(BM_DecideHttpRequest);

void BM_DecideResolvedAddress(benchmark::State& state) {
  const PolicySet& set = BigSet();
  Request r = Base("api9998.example7.com");
  r.address = net::IpAddress::Parse("93.184.216.34");
  for (auto _ : state) benchmark::DoNotOptimize(Decide(set, r));
}
BENCHMARK(BM_DecideResolvedAddress);

void BM_ClassifyV6Embedded(benchmark::State& state) {
  auto addr = *net::IpAddress::Parse("64:ff9b::a9fe:a9fe");
  for (auto _ : state) benchmark::DoNotOptimize(net::ClassifyAddress(addr));
}
BENCHMARK(BM_ClassifyV6Embedded);

}  // namespace
}  // namespace airlock::policy

BENCHMARK_MAIN();
