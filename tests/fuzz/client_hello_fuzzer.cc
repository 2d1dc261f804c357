// Fuzz target: the ClientHello parser (tls::ParseClientHello) that reads SNI and ALPN before any
// TLS is terminated. Checks that a verdict, once reached on a prefix, is the verdict on every
// longer prefix: what was decided on the first bytes is what the whole stream says.
#include <string_view>

#include "gateway/tls/client_hello.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

bool Same(const airlock::tls::ClientHello& a, const airlock::tls::ClientHello& b) {
  return a.sni == b.sni && a.alpn == b.alpn;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using airlock::tls::HelloStatus;
  std::string_view all(reinterpret_cast<const char*>(data), size);
  airlock::tls::ClientHello whole;
  const HelloStatus verdict = airlock::tls::ParseClientHello(all, &whole);
  if (verdict == HelloStatus::kOk && whole.sni) {
    FUZZ_CHECK(!whole.sni->empty());
    FUZZ_CHECK(whole.sni->find('\0') == std::string::npos);
  }
  // Prefixes at about 32 evenly spaced lengths: each is undecided, or decided as the whole is.
  const size_t stride = size / 32 + 1;
  for (size_t n = 0; n < size; n += stride) {
    airlock::tls::ClientHello part;
    HelloStatus s = airlock::tls::ParseClientHello(all.substr(0, n), &part);
    if (s == HelloStatus::kNeedMore) continue;
    FUZZ_CHECK(s == verdict);
    if (s == HelloStatus::kOk) FUZZ_CHECK(Same(part, whole));
  }
  return 0;
}
