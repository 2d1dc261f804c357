// Fuzz target: HTTP/1.x response heads and body framing from an upstream (http::MessageParser,
// responses; also answers to HEAD), delivered whole and in pieces; both readings must agree.
#include "tests/fuzz/http_framing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  airlock::fuzz::CheckStream(airlock::http::MessageParser::Kind::kResponse, data, size);
  return 0;
}
