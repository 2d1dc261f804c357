// Head serialisation drops hop-by-hop headers and writes framing anew; denials carry JSON.
#include "gateway/http/serialize.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gateway/http/denial.h"
#include "gateway/http/message_parser.h"

namespace airlock::http {
namespace {

HttpHead ParseRequest(const std::string& text) {
  MessageParser p(MessageParser::Kind::kRequest);
  EXPECT_EQ(p.ParseHead(text), MessageParser::HeadResult::kDone) << p.error().message;
  return p.head();
}

TEST(Serialize, RequestHeadIsOriginFormWithoutHopByHop) {
  HttpHead h = ParseRequest(
      "POST http://api.example.com/v1/x?q=1 HTTP/1.1\r\nHost: api.example.com\r\n"
      "Proxy-Authorization: Basic c2VjcmV0\r\nConnection: keep-alive, X-Private\r\n"
      "X-Private: drop me\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
      "Transfer-Encoding: chunked\r\nAccept: */*\r\n\r\n");
  std::string out = SerializeRequestHead(h, "/v1/x?q=1", "api.example.com");
  EXPECT_EQ(out,
            "POST /v1/x?q=1 HTTP/1.1\r\nHost: api.example.com\r\nAccept: */*\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");
}

TEST(Serialize, ResponseHead) {
  MessageParser p(MessageParser::Kind::kResponse);
  ASSERT_EQ(p.ParseHead("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n"
                        "Server: x\r\n\r\n"),
            MessageParser::HeadResult::kDone);
  EXPECT_EQ(SerializeResponseHead(p.head(), true, BodyFraming::kLength),
            "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\n\r\n");
  EXPECT_EQ(SerializeResponseHead(p.head(), false, BodyFraming::kLength),
            "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(SerializeResponseHead(p.head(), true, BodyFraming::kChunked),
            "HTTP/1.1 200 OK\r\nServer: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  // To an HTTP/1.0 client a body of unknown length has no framing header: it ends at the close.
  EXPECT_EQ(SerializeResponseHead(p.head(), false, BodyFraming::kUntilClose),
            "HTTP/1.1 200 OK\r\nServer: x\r\nConnection: close\r\n\r\n");
}

TEST(Serialize, ResponseHeadKeepsTheDeclaredLengthWhenNoBodyFollows) {
  MessageParser empty(MessageParser::Kind::kResponse);
  ASSERT_EQ(empty.ParseHead("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            MessageParser::HeadResult::kDone);
  EXPECT_TRUE(empty.complete());
  EXPECT_EQ(SerializeResponseHead(empty.head(), true, empty.head().declared_framing),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");  // else keep-alive clients wait
  MessageParser head(MessageParser::Kind::kResponse);
  head.set_no_body_expected(true);  // the answer to HEAD
  ASSERT_EQ(head.ParseHead("HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n"),
            MessageParser::HeadResult::kDone);
  EXPECT_TRUE(head.complete());
  EXPECT_EQ(SerializeResponseHead(head.head(), true, head.head().declared_framing),
            "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n");
}

TEST(Serialize, Chunks) {
  EXPECT_EQ(ChunkHeader(17), "11\r\n");
  EXPECT_EQ(ChunkHeader(0x10000), "10000\r\n");
  EXPECT_EQ(kLastChunk, "0\r\n\r\n");
}

TEST(Denial, RendersJsonAndReasonHeader) {
  GatewayResponse r{
      403, "host_not_allowed", "host is not allowed", "ask for it", "evil.example", 443, "", "s-1"};
  std::string out = RenderGatewayResponse(r);
  ASSERT_EQ(out.rfind("HTTP/1.1 403 Forbidden\r\n", 0), 0u);
  EXPECT_NE(out.find("X-Airlock-Reason: host_not_allowed\r\n"), std::string::npos);
  EXPECT_NE(out.find("Connection: close\r\n"), std::string::npos);
  auto body = nlohmann::json::parse(out.substr(out.find("\r\n\r\n") + 4));
  EXPECT_EQ(body["reason"], "host_not_allowed");
  EXPECT_EQ(body["host"], "evil.example");
  EXPECT_EQ(body["port"], 443);
  EXPECT_EQ(body["session"], "s-1");
  EXPECT_FALSE(body.contains("rule"));
  EXPECT_NE(RenderGatewayResponse({407, "proxy_auth_required", "m", "h"})
                .find("Proxy-Authenticate: Basic realm=\"airlock\""),
            std::string::npos);
}

}  // namespace
}  // namespace airlock::http
