// Fuzz target: the DNS responder's message codec (dns::ParseQuery, BuildAnswer, BuildError) on
// packets from a sandbox. Checks that answers echo the query's id and question and stay within
// the message size limit.
#include <string_view>

#include "gateway/dns/message.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace dns = airlock::dns;
  std::string_view packet(reinterpret_cast<const char*>(data), size);
  dns::Query q;
  switch (dns::ParseQuery(packet, &q)) {
    case dns::ParseStatus::kOk: {
      FUZZ_CHECK(q.name.size() <= 253);
      const std::vector<airlock::net::IpAddress> addresses = {
          airlock::net::IpAddress::V4(0x7f000001),
          airlock::net::IpAddress::V6({0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})};
      for (auto rcode : {dns::Rcode::kNoError, dns::Rcode::kNxDomain, dns::Rcode::kRefused}) {
        std::string answer = dns::BuildAnswer(q, rcode, addresses, 30);
        FUZZ_CHECK(answer.size() >= 12 && answer.size() <= dns::kMaxMessage);
        FUZZ_CHECK(answer.compare(0, 2, packet.substr(0, 2)) == 0);
        FUZZ_CHECK(answer.find(q.question) != std::string::npos);
      }
      (void)dns::TypeName(q.type);
      break;
    }
    case dns::ParseStatus::kMalformed:
    case dns::ParseStatus::kNotImplemented: {
      std::string error = dns::BuildError(packet, dns::Rcode::kFormErr);
      FUZZ_CHECK(error.size() >= 12 && error.compare(0, 2, packet.substr(0, 2)) == 0);
      break;
    }
    case dns::ParseStatus::kIgnore:
      break;
  }
  return 0;
}
