// Fuzz target: host and literal-address normalisation (net::NormalizeHost, ParseLenientIpv4,
// IpAddress and Cidr parsing, address:port). Checks that normalising is idempotent, that an
// address's canonical text parses back to the same address, and that a host that is an address
// is reported as one.
#include <string_view>

#include "gateway/config/gateway_config.h"
#include "gateway/net/host.h"
#include "gateway/net/ip_address.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace airlock::net;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  NormalizedHost host = NormalizeHost(text);
  if (host.error == HostError::kNone) {
    FUZZ_CHECK(!host.name.empty());
    NormalizedHost again = NormalizeHost(host.name);
    FUZZ_CHECK(again.error == HostError::kNone && again.name == host.name);
    FUZZ_CHECK(again.address == host.address);
    if (host.address) FUZZ_CHECK(IpAddress::Parse(host.name) == host.address);
  } else {
    FUZZ_CHECK(!HostErrorName(host.error).empty());
  }

  if (auto lenient = ParseLenientIpv4(text)) {
    FUZZ_CHECK(lenient->is_v4());
    NormalizedHost as_host = NormalizeHost(text);
    FUZZ_CHECK(as_host.error != HostError::kNone || as_host.address == lenient);
  }
  if (auto strict = IpAddress::Parse(text)) {
    FUZZ_CHECK(IpAddress::Parse(strict->ToString()) == strict);
  }
  std::string error;
  if (auto cidr = Cidr::Parse(text, &error)) {
    FUZZ_CHECK(cidr->Contains(cidr->base()));
    std::string again_error;
    auto again = Cidr::Parse(cidr->ToString(), &again_error);
    FUZZ_CHECK(again && again->base() == cidr->base() && again->prefix_len() == cidr->prefix_len());
  }
  if (auto hp = airlock::config::ParseHostPort(text)) {
    FUZZ_CHECK(IpAddress::Parse(hp->host).has_value());
  }
  return 0;
}
