// Fuzz target: HTTP/1.1 request heads and body framing (http::MessageParser, requests), delivered
// whole and in pieces; both readings must agree.
#include "tests/fuzz/http_framing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  airlock::fuzz::CheckStream(airlock::http::MessageParser::Kind::kRequest, data, size);
  return 0;
}
