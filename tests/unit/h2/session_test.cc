// h2::Session: a client and a server session wired back to back in memory (no sockets): a
// request and its response with trailers, flow control that holds a sender until the receiver
// consumes, and the limits that end a session with a violation (header list, rapid reset,
// CONTINUATION flood, a bad preface).
#include "gateway/h2/session.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace airlock::h2 {
namespace {

// Records what a session reports; consumes nothing unless told to.
struct Recorder : Handler {
  struct Stream {
    Fields headers;
    Fields trailers;
    std::string body;
    bool ended = false;
    bool closed = false;
    uint32_t error = 0;
  };
  std::map<int32_t, Stream> streams;
  size_t sent = 0;
  void OnHeaders(int32_t id, HeadersKind kind, Fields fields, bool) override {
    (kind == HeadersKind::kTrailers ? streams[id].trailers : streams[id].headers) =
        std::move(fields);
  }
  void OnData(int32_t id, std::string_view data) override { streams[id].body.append(data); }
  void OnEndStream(int32_t id) override { streams[id].ended = true; }
  void OnBodySent(int32_t, size_t n) override { sent += n; }
  void OnStreamClose(int32_t id, uint32_t error) override {
    streams[id].closed = true;
    streams[id].error = error;
  }
  void OnRefused(int32_t id, uint32_t error, Fields partial) override {
    refused[id] = {error, std::move(partial)};
  }
  std::map<int32_t, std::pair<uint32_t, Fields>> refused;
};

std::string Find(const Fields& fields, std::string_view name) {
  for (const auto& f : fields) {
    if (f.name == name) return f.value;
  }
  return "";
}

class SessionPair : public ::testing::Test {
 protected:
  void SetUp() override { Make(Limits{}); }
  void Make(const Limits& server_limits) {
    auto c = Session::Create(Role::kClient, client_events, Limits{});
    auto s = Session::Create(Role::kServer, server_events, server_limits);
    ASSERT_TRUE(c.ok() && s.ok());
    client = std::move(c).value();
    server = std::move(s).value();
  }
  // Moves bytes both ways until neither side has anything to send.
  bool Exchange() {
    for (int i = 0; i < 100; ++i) {
      std::string up = client->TakeOutput(1 << 20);
      std::string down = server->TakeOutput(1 << 20);
      if (up.empty() && down.empty()) return true;
      if (!up.empty() && !server->Receive(up).ok()) return false;
      if (!down.empty() && !client->Receive(down).ok()) return false;
    }
    return true;
  }
  Fields Request(std::string path) {
    return {{":method", "POST"},
            {":scheme", "https"},
            {":authority", "api.example.test"},
            {":path", std::move(path)}};
  }

  Recorder client_events, server_events;
  std::unique_ptr<Session> client, server;
};

TEST_F(SessionPair, RequestResponseAndTrailers) {
  auto id = client->SubmitRequest(Request("/x"), true);
  ASSERT_TRUE(id.ok());
  client->Write(id.value(), "hello ");
  client->Write(id.value(), "world");
  client->End(id.value());
  ASSERT_TRUE(Exchange());
  auto& req = server_events.streams[id.value()];
  EXPECT_EQ(Find(req.headers, ":path"), "/x");
  EXPECT_EQ(req.body, "hello world");
  EXPECT_TRUE(req.ended);
  server->Consume(id.value(), req.body.size());

  ASSERT_TRUE(server->SubmitResponse(id.value(), {{":status", "200"}}, true).ok());
  server->Write(id.value(), "ok");
  server->End(id.value(), {{"grpc-status", "0"}});
  ASSERT_TRUE(Exchange());
  auto& resp = client_events.streams[id.value()];
  EXPECT_EQ(Find(resp.headers, ":status"), "200");
  EXPECT_EQ(resp.body, "ok");
  EXPECT_EQ(Find(resp.trailers, "grpc-status"), "0");
  EXPECT_TRUE(resp.ended && resp.closed);
  EXPECT_EQ(resp.error, 0u);
}

TEST_F(SessionPair, StreamsNghttp2RefusesAreReported) {
  Limits one;
  one.max_concurrent_streams = 1;
  Make(one);
  // Sent before the client has the server's SETTINGS: the second is past the limit.
  auto first = client->SubmitRequest(Request("/first"), false);
  auto second = client->SubmitRequest(Request("/second"), false);
  Fields bad = Request("/bad");
  bad.push_back({"connection", "close"});  // connection-specific: malformed in HTTP/2
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_TRUE(Exchange());
  EXPECT_EQ(Find(server_events.streams[first.value()].headers, ":path"), "/first");
  ASSERT_EQ(server_events.refused.count(second.value()), 1u);
  EXPECT_EQ(server_events.refused[second.value()].first, Session::kRefusedStream);
  EXPECT_EQ(server_events.streams.count(second.value()), 0u);  // nothing else said of it

  ASSERT_TRUE(server->SubmitResponse(first.value(), {{":status", "204"}}, false).ok());
  ASSERT_TRUE(Exchange());
  auto third = client->SubmitRequest(bad, false);
  ASSERT_TRUE(third.ok());
  ASSERT_TRUE(Exchange());
  ASSERT_EQ(server_events.refused.count(third.value()), 1u);
  EXPECT_EQ(server_events.refused[third.value()].first, Session::kProtocolError);
  EXPECT_EQ(Find(server_events.refused[third.value()].second, ":path"), "/bad");
  EXPECT_EQ(server_events.streams[third.value()].headers.size(), 0u);
  // A stream the handler knew and reset itself is no refusal.
  EXPECT_EQ(server_events.refused.size(), 2u);
}

TEST_F(SessionPair, ASenderWaitsUntilTheReceiverConsumes) {
  Limits small;
  small.stream_window = 1000;
  small.connection_window = 100000;
  Make(small);
  ASSERT_TRUE(Exchange());  // the server's SETTINGS apply once the client has them
  auto id = client->SubmitRequest(Request("/upload"), true);
  ASSERT_TRUE(id.ok());
  client->Write(id.value(), std::string(5000, 'a'));
  ASSERT_TRUE(Exchange());
  auto& req = server_events.streams[id.value()];
  EXPECT_EQ(req.body.size(), 1000u) << "the window was not respected";
  EXPECT_EQ(client->Queued(id.value()), 4000u);
  server->Consume(id.value(), 1000);
  ASSERT_TRUE(Exchange());
  EXPECT_EQ(req.body.size(), 2000u);
  server->Consume(id.value(), 1000);
  server->Consume(id.value(), 1000);  // more than was given: only the window of what came
  ASSERT_TRUE(Exchange());
  EXPECT_EQ(req.body.size(), 3000u);
}

TEST_F(SessionPair, AnOversizeHeaderListIsAViolation) {
  Limits l;
  l.max_header_list = 4096;
  Make(l);
  Fields fields = Request("/x");
  fields.push_back({"x-big", std::string(5000, 'v')});
  ASSERT_TRUE(client->SubmitRequest(fields, false).ok());
  EXPECT_FALSE(Exchange());
  ASSERT_TRUE(server->violation().has_value());
  EXPECT_EQ(server->violation()->reason, "h2_header_list_too_large");
  EXPECT_TRUE(server_events.streams.empty() ||
              server_events.streams.begin()->second.headers.empty());
}

TEST_F(SessionPair, RapidResetIsAViolation) {
  Limits l;
  l.reset_burst = 10;
  l.resets_per_second = 1;
  Make(l);
  bool failed = false;
  for (int i = 0; i < 50 && !failed; ++i) {
    auto id = client->SubmitRequest(Request("/x"), false);
    ASSERT_TRUE(id.ok());
    ASSERT_TRUE(Exchange());  // a stream not yet sent is dropped without a reset
    client->Reset(id.value(), Session::kCancel);
    failed = !Exchange();
  }
  EXPECT_TRUE(failed);
  ASSERT_TRUE(server->violation().has_value());
  EXPECT_EQ(server->violation()->reason, "h2_rapid_reset");
  EXPECT_FALSE(server->Alive() && server->TakeOutput(1 << 20).empty());
}

TEST_F(SessionPair, APingFloodIsAViolation) {
  Limits l;
  l.control_burst = 50;
  l.control_per_second = 1;
  Make(l);
  ASSERT_TRUE(Exchange());
  std::string ping = std::string("\0\0\x08\x06\0\0\0\0\0", 9) + "airlock!";
  std::string flood;
  for (int i = 0; i < 100; ++i) flood += ping;
  EXPECT_FALSE(server->Receive(flood).ok());
  ASSERT_TRUE(server->violation().has_value());
  EXPECT_EQ(server->violation()->reason, "h2_flood");
}

TEST_F(SessionPair, ABadPrefaceIsAViolation) {
  EXPECT_FALSE(server->Receive("GET / HTTP/1.1\r\nHost: x\r\n\r\n").ok());
  ASSERT_TRUE(server->violation().has_value());
  EXPECT_EQ(server->violation()->reason, "h2_bad_preface");
}

TEST_F(SessionPair, AContinuationFloodIsAViolation) {
  ASSERT_TRUE(Exchange());  // prefaces and settings
  // HEADERS without END_HEADERS, then CONTINUATION frames of one byte each (an HPACK
  // literal that never ends).
  auto frame = [](uint8_t type, uint8_t flags, std::string payload) {
    std::string f;
    f += static_cast<char>(payload.size() >> 16);
    f += static_cast<char>(payload.size() >> 8);
    f += static_cast<char>(payload.size());
    f += static_cast<char>(type);
    f += static_cast<char>(flags);
    f += std::string("\0\0\0\1", 4);
    return f + payload;
  };
  std::string wire = frame(0x1, 0x0, std::string("\x40\x7f", 2));
  for (int i = 0; i < 20; ++i) wire += frame(0x9, 0x0, "a");
  EXPECT_FALSE(server->Receive(wire).ok());
  ASSERT_TRUE(server->violation().has_value());
  EXPECT_EQ(server->violation()->reason, "h2_continuation_flood");
}

TEST(ParseStatus, ThreeDigitsOnly) {
  EXPECT_EQ(ParseStatus("200"), 200);
  EXPECT_EQ(ParseStatus("101"), 101);
  EXPECT_FALSE(ParseStatus("20"));
  EXPECT_FALSE(ParseStatus("2000"));
  EXPECT_FALSE(ParseStatus("2a0"));
}

}  // namespace
}  // namespace airlock::h2
