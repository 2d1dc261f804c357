// MessageParser: a request-smuggling corpus (each case refused with the expected status and
// reason), and correct framing of valid messages: bodies, chunks, pipelining, responses.
#include "gateway/http/message_parser.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>

namespace airlock::http {
namespace {

struct BadCase {
  const char* name;
  std::string message;
  int status;
  const char* reason;
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class SmugglingTest : public testing::TestWithParam<BadCase> {};

// Parses head and body the way the proxy does; returns the error, or nullptr if all was fine.
const ParseError* ParseAll(MessageParser& p, std::string_view data) {
  auto r = p.ParseHead(data);
  if (r == MessageParser::HeadResult::kError) return &p.error();
  if (r == MessageParser::HeadResult::kNeedMore) return nullptr;
  std::string_view body = data.substr(p.head_size());
  if (p.FeedBody(body, [](std::string_view) {}) == MessageParser::npos) return &p.error();
  return nullptr;
}

TEST_P(SmugglingTest, IsRefused) {
  const BadCase& c = GetParam();
  MessageParser p(MessageParser::Kind::kRequest, ParseLimits{256, 1024, 8});
  const ParseError* e = ParseAll(p, c.message);
  ASSERT_NE(e, nullptr) << c.name << " was accepted";
  EXPECT_EQ(e->status, c.status) << c.name << ": " << e->message;
  EXPECT_EQ(e->reason, c.reason) << c.name << ": " << e->message;
}

const std::string kLongLine = "GET /" + std::string(300, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
std::string ManyHeaders() {
  std::string s = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 9; ++i) s += "X-" + std::to_string(i) + ": v\r\n";
  return s + "\r\n";
}

const BadCase kBad[] = {
    {"cl_and_te",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: "
     "chunked\r\n\r\n0\r\n\r\n",
     400, "ambiguous_framing"},
    {"te_and_cl",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: "
     "4\r\n\r\n0\r\n\r\n",
     400, "ambiguous_framing"},
    {"duplicate_cl_same",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400,
     "ambiguous_framing"},
    {"duplicate_cl_differ",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabc", 400,
     "ambiguous_framing"},
    {"cl_list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", 400,
     "ambiguous_framing"},
    {"cl_negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400,
     "ambiguous_framing"},
    {"cl_plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400,
     "ambiguous_framing"},
    {"cl_hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc", 400,
     "ambiguous_framing"},
    {"cl_overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
     400, "ambiguous_framing"},
    {"te_gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc", 400,
     "ambiguous_framing"},
    {"te_gzip_chunked",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
     "unsupported_transfer_coding"},
    {"te_chunked_twice",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
     "chunked\r\n\r\n0\r\n\r\n",
     400, "ambiguous_framing"},
    {"te_chunked_identity",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400,
     "ambiguous_framing"},
    {"te_on_http10", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400, "ambiguous_framing"},
    {"te_space_before_colon",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400,
     "space_in_header_name"},
    {"te_tab_in_name",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", 400,
     "space_in_header_name"},
    {"obs_fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n", 400,
     "obs_fold"},
    {"obs_fold_tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\tb\r\n\r\n", 400, "obs_fold"},
    {"bare_lf_head", "GET / HTTP/1.1\nHost: a\n\n", 400, "bare_lf"},
    {"bare_lf_mixed", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400, "bare_lf"},
    {"bare_cr", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400, "bare_cr"},
    {"nul_in_value", std::string("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 35), 400,
     "nul_byte"},
    {"nul_in_target", std::string("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", 30), 400, "nul_byte"},
    {"empty_header_name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", 400, "empty_header_name"},
    {"no_colon", "GET / HTTP/1.1\r\nHost: a\r\nJustAName\r\n\r\n", 400, "malformed_header"},
    {"chunk_size_bad",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n0\r\n\r\n", 400,
     "malformed_body"},
    {"chunk_size_negative",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n", 400,
     "malformed_body"},
    {"chunk_size_overflow",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
     "chunked\r\n\r\nfffffffffffffffff1\r\nabc\r\n",
     400, "malformed_body"},
    {"chunk_bare_lf",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n", 400,
     "malformed_body"},
    {"chunk_data_too_long",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 400,
     "malformed_body"},
    {"duplicate_host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "duplicate_host"},
    {"duplicate_host_case", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400, "duplicate_host"},
    {"h2c_upgrade",
     "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: "
     "h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
     400, "h2c_refused"},
    {"h2_preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "h2_refused"},
    {"connect_with_length", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 2\r\n\r\nxy",
     400, "connect_with_body"},
    {"connect_chunked",
     "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
     "connect_with_body"},
    {"http_2_version", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "unsupported_version"},
    {"http_09_style", "GET /\r\n\r\n", 505, "unsupported_version"},
    {"bad_method_char", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed_message"},
    {"space_in_target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed_message"},
    {"leading_empty_line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "empty_start_line"},
    {"request_line_too_long", kLongLine, 414, "start_line_too_long"},
    {"too_many_headers", ManyHeaders(), 431, "too_many_headers"},
    {"head_too_large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(1100, 'v') + "\r\n\r\n",
     431, "head_too_large"},
};
INSTANTIATE_TEST_SUITE_P(Corpus, SmugglingTest, testing::ValuesIn(kBad),
                         [](const testing::TestParamInfo<BadCase>& param_info) {
                           return std::string(param_info.param.name);
                         });

TEST(MessageParser, CorpusIsLargeEnough) { EXPECT_GE(std::size(kBad), 25u); }

TEST(MessageParser, NeedsTheWholeHead) {
  MessageParser p(MessageParser::Kind::kRequest);
  EXPECT_EQ(p.ParseHead("GET http://a/ HTTP/1.1\r\nHost: a\r\n"),
            MessageParser::HeadResult::kNeedMore);
  EXPECT_EQ(p.ParseHead("GET http://a/ HTTP/1.1\r\nHost: a\r"),
            MessageParser::HeadResult::kNeedMore);
  EXPECT_EQ(p.ParseHead("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"),
            MessageParser::HeadResult::kDone);
  EXPECT_EQ(p.head().method, "GET");
  EXPECT_EQ(p.head().target, "http://a/");
  EXPECT_EQ(*p.head().Find("host"), "a");
  EXPECT_TRUE(p.complete());
  EXPECT_EQ(p.head().framing, BodyFraming::kNone);
}

TEST(MessageParser, ContentLengthBodyAndPipelining) {
  std::string two =
      "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
      "GET /b HTTP/1.1\r\nHost: a\r\n\r\n";
  MessageParser p(MessageParser::Kind::kRequest);
  ASSERT_EQ(p.ParseHead(two), MessageParser::HeadResult::kDone);
  EXPECT_EQ(p.head().framing, BodyFraming::kLength);
  EXPECT_EQ(p.head().content_length, 5u);
  std::string body;
  std::string_view rest = std::string_view(two).substr(p.head_size());
  size_t used = p.FeedBody(rest, [&](std::string_view d) { body.append(d); });
  EXPECT_EQ(used, 5u);
  EXPECT_EQ(body, "hello");
  EXPECT_TRUE(p.complete());
  p.Reset();
  rest.remove_prefix(used);
  ASSERT_EQ(p.ParseHead(rest), MessageParser::HeadResult::kDone);
  EXPECT_EQ(p.head().target, "/b");
}

TEST(MessageParser, ChunkedBodyIsDecoded) {
  std::string msg =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
      "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\nNEXT";
  MessageParser p(MessageParser::Kind::kRequest);
  ASSERT_EQ(p.ParseHead(msg), MessageParser::HeadResult::kDone);
  EXPECT_EQ(p.head().framing, BodyFraming::kChunked);
  std::string body;
  std::string_view rest = std::string_view(msg).substr(p.head_size());
  size_t used = p.FeedBody(rest, [&](std::string_view d) { body.append(d); });
  EXPECT_EQ(body, "abcde");
  EXPECT_TRUE(p.complete());
  EXPECT_EQ(rest.substr(used), "NEXT");
}

TEST(MessageParser, BodyInPieces) {
  std::string msg = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789";
  MessageParser p(MessageParser::Kind::kRequest);
  ASSERT_EQ(p.ParseHead(msg), MessageParser::HeadResult::kDone);
  std::string body;
  auto sink = [&](std::string_view d) { body.append(d); };
  std::string_view rest = std::string_view(msg).substr(p.head_size());
  for (size_t i = 0; i < rest.size(); i += 3) {
    EXPECT_FALSE(p.complete());
    p.FeedBody(rest.substr(i, 3), sink);
  }
  EXPECT_TRUE(p.complete());
  EXPECT_EQ(body, "0123456789");
}

TEST(MessageParser, WebSocketUpgradeAndConnect) {
  MessageParser ws(MessageParser::Kind::kRequest);
  ASSERT_EQ(
      ws.ParseHead("GET http://a/ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
                   "Upgrade: websocket\r\nSec-WebSocket-Key: x\r\n\r\n"),
      MessageParser::HeadResult::kDone);
  EXPECT_TRUE(ws.head().upgrade);
  MessageParser connect(MessageParser::Kind::kRequest);
  ASSERT_EQ(
      connect.ParseHead("CONNECT a.example.com:443 HTTP/1.1\r\nHost: a.example.com:443\r\n\r\n"),
      MessageParser::HeadResult::kDone);
  EXPECT_EQ(connect.head().method, "CONNECT");
  EXPECT_EQ(connect.head().target, "a.example.com:443");
  EXPECT_FALSE(connect.head().upgrade);
}

TEST(MessageParser, Responses) {
  MessageParser len(MessageParser::Kind::kResponse);
  std::string r = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
  ASSERT_EQ(len.ParseHead(r), MessageParser::HeadResult::kDone);
  EXPECT_EQ(len.head().status, 200);
  EXPECT_EQ(len.head().reason, "OK");

  MessageParser head_resp(MessageParser::Kind::kResponse);
  head_resp.set_no_body_expected(true);
  ASSERT_EQ(head_resp.ParseHead("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
            MessageParser::HeadResult::kDone);
  EXPECT_TRUE(head_resp.complete());
  EXPECT_EQ(head_resp.head().framing, BodyFraming::kNone);

  MessageParser eof(MessageParser::Kind::kResponse);
  ASSERT_EQ(eof.ParseHead("HTTP/1.1 200 OK\r\n\r\n"), MessageParser::HeadResult::kDone);
  EXPECT_EQ(eof.head().framing, BodyFraming::kUntilClose);
  std::string body;
  eof.FeedBody("streamed", [&](std::string_view d) { body.append(d); });
  EXPECT_FALSE(eof.complete());
  EXPECT_TRUE(eof.FinishOnClose());
  EXPECT_EQ(body, "streamed");

  MessageParser no_content(MessageParser::Kind::kResponse);
  ASSERT_EQ(no_content.ParseHead("HTTP/1.1 204 No Content\r\n\r\n"),
            MessageParser::HeadResult::kDone);
  EXPECT_TRUE(no_content.complete());

  MessageParser cut(MessageParser::Kind::kResponse);
  ASSERT_EQ(cut.ParseHead("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
            MessageParser::HeadResult::kDone);
  cut.FeedBody("abc", [](std::string_view) {});
  EXPECT_FALSE(cut.FinishOnClose());
}

}  // namespace
}  // namespace airlock::http
