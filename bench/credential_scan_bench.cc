// Leak scanning of request bodies (docs/CREDENTIALS.md): what ProxyConnection::RequestBodyLeak
// (CredentialGuard::FindInBody) costs per MiB of body (issue 11's claim: at most 1 ms per MiB).
// Each body is 1 MiB, scanned as the gateway scans it: in the 64 KiB slices
// Http1Exchange::MoveBody hands over, each prefixed by the 108 bytes (3 x 36) carried over from
// the slice before, credentials::CollectPlaceholderKeys into a fresh std::set (with the session
// table's key filter, as the gateway scans bodies), then SessionTable::FindPlaceholder of those
// keys against a table of 1,000 sessions with a placeholder each. "Collect" is the scan alone
// with no filter (every window a candidate, as for request heads), "BodyLeak" the gateway's
// scan: filter and lookup. Bodies
// (deterministic, none holding a placeholder, so every slice is scanned):
//   random        random bytes (an upload of compressed or encrypted data)
//   json          an API request of objects with ids, names, text, numbers and dates
//   json_sha      objects like a GitHub API commit, each with four 40-digit SHA-1 runs
//   base64        base64 of random bytes, 76-character lines
//   hexdump       `xxd -p` of random bytes: lines of 60 hex digits
//   hex           one unbroken run of hex digits (a hex-encoded blob): the worst case
//   form          JSON text form-urlencoded (a key=value body, its punctuation escaped)
//   percent       random bytes percent-encoded, %XX for every byte
// Times are per body, so ms per MiB; counter keys: the candidate keys collected from it.
// The lookup on its own: FindPlaceholder of 1 and of 64 keys, none a placeholder.
// Run: build/release/bench/credential_scan_bench
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/base/base64.h"
#include "gateway/base/clock.h"
#include "gateway/control/session_table.h"
#include "gateway/credentials/placeholder.h"

namespace airlock::credentials {
namespace {

constexpr size_t kBodyBytes = 1 << 20;
constexpr size_t kSlice = 65536;                     // http_exchange.cc: kBodySlice
constexpr size_t kTail = 3 * kPlaceholderKeyLength;  // credential_guard.cc: FindInBody
constexpr int kSessions = 1000;

// --- bodies --------------------------------------------------------------------------------------

std::mt19937_64& Rng() {
  static std::mt19937_64 rng(20240611);
  return rng;
}

std::string RandomBytes(size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(Rng()() & 0xff);
  return s;
}

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string Word() {
  static const char* kWords[] = {"widget", "order",    "lorem",    "ipsum",   "dolor",
                                 "amet",   "shipping", "customer", "pending", "invoice",
                                 "north",  "delta",    "review"};
  return kWords[Rng()() % std::size(kWords)];
}

std::string Json() {
  std::string s = "[";
  for (int i = 0; s.size() < kBodyBytes; ++i) {
    s += "{\"id\":" + std::to_string(100000 + i) + ",\"name\":\"" + Word() + "-" +
         std::to_string(i) + "\",\"description\":\"" + Word() + " " + Word() + " " + Word() + " " +
         Word() + ", " + Word() + " " + Word() + ".\",\"tags\":[\"" + Word() + "\",\"" + Word() +
         "\"],\"price\":" + std::to_string(Rng()() % 100000 / 100.0) +
         ",\"quantity\":" + std::to_string(Rng()() % 50) + ",\"active\":true,\"created\":\"2024-0" +
         std::to_string(1 + i % 9) + "-1" + std::to_string(i % 10) + "T12:34:56Z\"},";
  }
  return s;
}

std::string JsonSha() {
  std::string s = "[";
  for (int i = 0; s.size() < kBodyBytes; ++i) {
    std::string sha = Hex(RandomBytes(20));
    s += "{\"sha\":\"" + sha + "\",\"commit\":{\"author\":{\"name\":\"" + Word() +
         "\",\"date\":\"2024-05-01T12:00:00Z\"},\"message\":\"" + Word() + " " + Word() +
         "\",\"tree\":{\"sha\":\"" + Hex(RandomBytes(20)) +
         "\"}},\"url\":\"https://api.example.test/repos/acme/widgets/commits/" + sha +
         "\",\"parents\":[{\"sha\":\"" + Hex(RandomBytes(20)) + "\"}]},";
  }
  return s;
}

std::string Base64Lines() {
  std::string b64 = Base64Encode(RandomBytes(kBodyBytes * 3 / 4 + 64));
  std::string s;
  for (size_t at = 0; s.size() < kBodyBytes; at += 76) s += b64.substr(at, 76) + "\n";
  return s;
}

std::string HexDump() {
  std::string hex = Hex(RandomBytes(kBodyBytes / 2 + 64));
  std::string s;
  for (size_t at = 0; s.size() < kBodyBytes; at += 60) s += hex.substr(at, 60) + "\n";
  return s;
}

std::string FormEncoded() {
  std::string json = Json();
  std::string s = "payload=";
  for (unsigned char c : json) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_') {
      s.push_back(static_cast<char>(c));
    } else {
      char esc[4];
      std::snprintf(esc, sizeof esc, "%%%02X", c);
      s += esc;
    }
    if (s.size() >= kBodyBytes) break;
  }
  return s;
}

std::string PercentEncoded() {
  std::string raw = RandomBytes(kBodyBytes / 3 + 1);
  std::string s;
  for (unsigned char c : raw) {
    char esc[4];
    std::snprintf(esc, sizeof esc, "%%%02X", c);
    s += esc;
  }
  return s;
}

std::string OneMiB(std::string s) {
  s.resize(kBodyBytes, ' ');
  return s;
}

std::vector<std::pair<std::string, std::string>>& Bodies() {
  static std::vector<std::pair<std::string, std::string>> bodies = {
      {"random", OneMiB(RandomBytes(kBodyBytes))},
      {"json", OneMiB(Json())},
      {"json_sha", OneMiB(JsonSha())},
      {"base64", OneMiB(Base64Lines())},
      {"hexdump", OneMiB(HexDump())},
      {"hex", OneMiB(Hex(RandomBytes(kBodyBytes / 2)))},
      {"form", OneMiB(FormEncoded())},
      {"percent", OneMiB(PercentEncoded())},
  };
  return bodies;
}

// --- the gateway's scan --------------------------------------------------------------------------

// 1,000 sessions with one placeholder each, as the control API makes them.
const control::SessionTable& Sessions() {
  static const control::SessionTable* table = [] {
    auto* t = new control::SessionTable("", SystemClock());
    for (int i = 0; i < kSessions; ++i) {
      control::SessionSpec spec;
      spec.policy = "bench";
      spec.placeholders.push_back({"github", "GITHUB_TOKEN", NewPlaceholder("ghp_")});
      if (!t->Create(spec).ok()) std::abort();
    }
    return t;
  }();
  return *table;
}

struct ScanResult {
  size_t keys = 0;
  bool found = false;
};

// CredentialGuard::FindInBody over `body` in 64 KiB slices; `table` null: no lookup.
ScanResult ScanBody(std::string_view body, const control::SessionTable* table) {
  ScanResult r;
  std::string tail;
  for (size_t at = 0; at < body.size(); at += kSlice) {
    std::string_view piece = body.substr(at, kSlice);
    std::string text = tail;
    text.append(piece);
    std::set<std::string> keys;
    CollectPlaceholderKeys(text, &keys, table ? &table->placeholder_filter() : nullptr);
    tail = text.substr(text.size() - std::min(text.size(), kTail));
    r.keys += keys.size();
    if (table && table->FindPlaceholder(keys)) {
      r.found = true;
      break;  // the gateway refuses the request here
    }
  }
  return r;
}

void BM_Scan(benchmark::State& state, const std::string* body, bool lookup) {
  const control::SessionTable* table = lookup ? &Sessions() : nullptr;
  ScanResult r;
  for (auto _ : state) {
    r = ScanBody(*body, table);
    benchmark::DoNotOptimize(r);
  }
  if (r.found) state.SkipWithError("the body holds a placeholder");
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(body->size()));
  state.counters["keys"] = double(r.keys);
}

// FindPlaceholder of `n` keys that are no placeholder's (a clean request's candidates).
void BM_FindPlaceholder(benchmark::State& state) {
  std::set<std::string> keys;
  while (keys.size() < size_t(state.range(0))) keys.insert(Hex(RandomBytes(18)));
  const auto& table = Sessions();
  for (auto _ : state) benchmark::DoNotOptimize(table.FindPlaceholder(keys));
  state.SetItemsProcessed(int64_t(state.iterations()) * state.range(0));
}
BENCHMARK(BM_FindPlaceholder)->Arg(1)->Arg(64)->Unit(benchmark::kNanosecond);

// The scan finds what it must: a placeholder of a session split across two slices,
// percent-encoded and upper-cased, in the JSON body; and nothing in the bodies as they are.
bool ScanFindsPlanted() {
  const auto sessions = Sessions().List();
  std::string ph = sessions.front().placeholders.front().value;
  std::string encoded;
  for (char c : ph) {
    char esc[4];
    std::snprintf(esc, sizeof esc, "%%%02X", static_cast<unsigned char>(std::toupper(c)));
    encoded += esc;
  }
  std::string body = Bodies()[1].second;
  body.replace(kSlice - encoded.size() / 2, encoded.size(), encoded);
  return ScanBody(body, &Sessions()).found && !ScanBody(Bodies()[1].second, &Sessions()).found;
}

}  // namespace
}  // namespace airlock::credentials

int main(int argc, char** argv) {
  using namespace airlock::credentials;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (!ScanFindsPlanted()) {
    std::fprintf(stderr, "the scan missed a planted placeholder\n");
    return 1;
  }
  for (const auto& [name, body] : Bodies()) {
    for (bool lookup : {false, true}) {
      benchmark::RegisterBenchmark(((lookup ? "BodyLeak/" : "Collect/") + name).c_str(), BM_Scan,
                                   &body, lookup)
          ->Unit(benchmark::kMillisecond);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
