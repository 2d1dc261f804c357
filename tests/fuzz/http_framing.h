// What MessageParser makes of a stream of HTTP/1.x messages, as a list of events, for the request
// and response framing fuzz targets. The same bytes delivered whole and in small pieces must give
// the same events: two readings of one stream are what request smuggling is made of. Test code;
// no thread ownership.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gateway/http/message_parser.h"
#include "tests/fuzz/fuzz_check.h"

namespace airlock::fuzz {

// Walks `input` as the gateway does: a head, then its body, then the next message, delivering at
// most `step` new bytes per read. `no_body` marks responses to HEAD. At most 8 messages.
inline std::vector<std::string> ParseStream(http::MessageParser::Kind kind, std::string_view input,
                                            size_t step, bool no_body) {
  using HeadResult = http::MessageParser::HeadResult;
  http::MessageParser parser(kind, http::ParseLimits{512, 2048, 16});
  std::vector<std::string> events;
  std::string buffered;
  size_t delivered = 0;
  auto receive = [&] {
    size_t n = std::min(step, input.size() - delivered);
    buffered.append(input.substr(delivered, n));
    delivered += n;
    return n > 0;
  };
  for (int message = 0; message < 8; ++message) {
    parser.set_no_body_expected(no_body);
    HeadResult r;
    while ((r = parser.ParseHead(buffered)) == HeadResult::kNeedMore) {
      if (!receive()) {
        events.push_back("eof in head");
        return events;
      }
    }
    if (r == HeadResult::kError) {
      const auto& e = parser.error();
      FUZZ_CHECK(!e.reason.empty() && !e.message.empty());
      FUZZ_CHECK(e.status >= 400 && e.status < 600);
      events.push_back("error " + e.reason);
      return events;
    }
    FUZZ_CHECK(parser.head_size() > 0 && parser.head_size() <= buffered.size());
    buffered.erase(0, parser.head_size());
    const auto& h = parser.head();
    events.push_back("head " + h.method + " " + h.target + " " + std::to_string(h.status) + " " +
                     std::to_string(static_cast<int>(h.framing)) + " " +
                     std::to_string(h.content_length) + " " + std::to_string(h.keep_alive) +
                     std::to_string(h.upgrade) + " " + std::to_string(h.headers.size()));
    std::string body;
    auto sink = [&](std::string_view piece) { body.append(piece); };
    while (!parser.complete()) {
      if (buffered.empty() && !receive()) break;
      size_t used = parser.FeedBody(buffered, sink);
      if (used == http::MessageParser::npos) {
        FUZZ_CHECK(!parser.error().reason.empty());
        events.push_back("body error after " + std::to_string(body.size()));
        return events;
      }
      FUZZ_CHECK(used <= buffered.size());
      buffered.erase(0, used);
      if (used == 0 && !parser.complete() && !receive()) break;
    }
    if (!parser.complete()) {
      bool ended = parser.FinishOnClose();
      FUZZ_CHECK(!ended || h.framing == http::BodyFraming::kUntilClose);
      events.push_back((ended ? "closed body " : "cut body ") + body);
      return events;
    }
    if (h.framing == http::BodyFraming::kLength) FUZZ_CHECK(body.size() == h.content_length);
    if (h.framing == http::BodyFraming::kNone) FUZZ_CHECK(body.empty());
    events.push_back("body " + body);
    if (h.upgrade || h.framing == http::BodyFraming::kUntilClose) return events;
    parser.Reset();
  }
  return events;
}

// The property both targets check: the first byte picks a piece size, the rest is the stream.
inline void CheckStream(http::MessageParser::Kind kind, const uint8_t* data, size_t size) {
  if (size < 1) return;
  const size_t step = 1 + (data[0] & 0x3f);
  const bool no_body = (data[0] & 0x40) != 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto whole = ParseStream(kind, input, input.size() + 1, no_body);
  auto pieces = ParseStream(kind, input, step, no_body);
  FUZZ_CHECK(whole == pieces);
}

}  // namespace airlock::fuzz
