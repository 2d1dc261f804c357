// ControlApi: endpoints, validation, and what it tells the rest of the gateway.
#include "gateway/control/control_api.h"

#include <gtest/gtest.h>

namespace airlock::control {
namespace {

struct Fixture {
  SessionTable table{"", SystemClock()};
  std::vector<std::string> ended;
  bool reload_ok = true;
  ControlApi api{table,
                 ControlHooks{
                     [] { return std::vector<std::string>{"p"}; },
                     [this] { return reload_ok ? Status::Ok() : Status::Error("x.yaml:1:1: bad"); },
                     [] { return true; },
                     nullptr,
                     [this](const Session& s, const char*) { ended.push_back(s.id); },
                     [] { return std::string("-----BEGIN CERTIFICATE-----\n"); },
                 }};
};

TEST(ControlApi, SessionLifecycle) {
  Fixture f;
  auto created = f.api.Handle({"POST", "/v1/sessions",
                               R"({"policy":"p","source":"100.96.0.2","ttl_seconds":60,
                                   "labels":{"agent":"a"},"id":"s1"})"});
  ASSERT_EQ(created.status, 201) << created.body.dump();
  EXPECT_EQ(created.body["id"], "s1");
  EXPECT_TRUE(created.body.contains("token"));
  EXPECT_EQ(created.body["source"], "100.96.0.2");
  auto got = f.api.Handle({"GET", "/v1/sessions/s1", ""});
  EXPECT_EQ(got.status, 200);
  EXPECT_FALSE(got.body.contains("token")) << "a token is shown only at creation";
  EXPECT_EQ(f.api.Handle({"GET", "/v1/sessions", ""}).body["sessions"].size(), 1u);
  EXPECT_EQ(f.api.Handle({"DELETE", "/v1/sessions/s1", ""}).status, 204);
  EXPECT_EQ(f.ended, std::vector<std::string>{"s1"});
  EXPECT_EQ(f.api.Handle({"DELETE", "/v1/sessions/s1", ""}).status, 404);
}

TEST(ControlApi, Validation) {
  Fixture f;
  struct Case {
    const char* body;
    int status;
    const char* message;
  } cases[] = {
      {"not json", 400, "JSON object"},
      {R"({"source":"1.2.3.4"})", 400, "'policy'"},
      {R"({"policy":"q"})", 400, "no policy named 'q'"},
      {R"({"policy":"p","ttl_seconds":0})", 400, "ttl_seconds"},
      {R"({"policy":"p","source":"not-an-ip"})", 400, "not an IP address"},
      {R"({"policy":"p","labels":{"a":1}})", 400, "label 'a'"},
      {R"({"policy":"p","extra":true})", 400, "unknown key 'extra'"},
      {R"({"policy":"p","token":false})", 409, "source address, a proxy token"},
  };
  for (const auto& c : cases) {
    auto r = f.api.Handle({"POST", "/v1/sessions", c.body});
    EXPECT_EQ(r.status, c.status) << c.body;
    EXPECT_NE(r.body["error"].get<std::string>().find(c.message), std::string::npos)
        << c.body << " -> " << r.body.dump();
  }
}

TEST(ControlApi, HealthReloadAndUnknownPaths) {
  Fixture f;
  auto h = f.api.Handle({"GET", "/v1/health", ""});
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body["policies"], nlohmann::json::array({"p"}));
  EXPECT_EQ(f.api.Handle({"POST", "/v1/reload", ""}).status, 200);
  f.reload_ok = false;
  auto bad = f.api.Handle({"POST", "/v1/reload", ""});
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.body["error"], "x.yaml:1:1: bad");
  EXPECT_EQ(f.api.Handle({"GET", "/v2/x", ""}).status, 404);
  EXPECT_EQ(f.api.Handle({"PUT", "/v1/health", ""}).status, 405);
}

TEST(ControlApi, CaCertificate) {
  Fixture f;
  auto ca = f.api.Handle({"GET", "/v1/ca", ""});
  EXPECT_EQ(ca.status, 200);
  EXPECT_EQ(ca.body["certificate"], "-----BEGIN CERTIFICATE-----\n");
  EXPECT_EQ(ca.body.size(), 1u);  // the certificate only: nothing of the key
  EXPECT_EQ(f.api.Handle({"POST", "/v1/ca", ""}).status, 405);
}

}  // namespace
}  // namespace airlock::control
