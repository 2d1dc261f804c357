// Request-level checks: targets in each form, Host against SNI (domain fronting), and the
// per-request decision with its reason.
#include "gateway/server/request_checks.h"

#include <gtest/gtest.h>

#include "gateway/policy/policy_loader.h"

namespace airlock::server {
namespace {

http::HttpHead Head(std::string method, std::string target, std::vector<http::Header> headers) {
  http::HttpHead h;
  h.method = std::move(method);
  h.target = std::move(target);
  h.headers = std::move(headers);
  return h;
}

struct TargetCase {
  const char* name;
  TargetForm form;
  http::HttpHead head;
  const char* refusal;  // "" when accepted
  int status;
  const char* host;
  uint16_t port;
  const char* origin_target;
};

TEST(ParseTargetTest, Table) {
  const TargetCase cases[] = {
      {"absolute form", TargetForm::kProxy, Head("GET", "http://a.test/x?q=1", {}), "", 0, "a.test",
       80, "/x?q=1"},
      {"absolute form, port and no path", TargetForm::kProxy, Head("GET", "HTTP://a.test:8080", {}),
       "", 0, "a.test", 8080, "/"},
      {"query without path", TargetForm::kProxy, Head("GET", "http://a.test?q", {}), "", 0,
       "a.test", 80, "/?q"},
      {"origin form at the proxy", TargetForm::kProxy, Head("GET", "/x", {}), "not_absolute_form",
       400},
      {"https URL at the proxy", TargetForm::kProxy, Head("GET", "https://a.test/", {}),
       "not_absolute_form", 400},
      {"userinfo", TargetForm::kProxy, Head("GET", "http://u:p@a.test/", {}), "userinfo_in_url",
       400},
      {"fragment", TargetForm::kProxy, Head("GET", "http://a.test/x#f", {}), "bad_url", 400},
      {"bad port", TargetForm::kProxy, Head("GET", "http://a.test:99999/", {}), "bad_url", 400},
      {"Host names another host", TargetForm::kProxy,
       Head("GET", "http://a.test/", {{"Host", "b.test"}}), "host_mismatch", 400},
      {"Host equal, other case", TargetForm::kProxy,
       Head("GET", "http://a.test/", {{"Host", "A.TEST:80"}}), "", 0, "a.test", 80, "/"},
      {"CONNECT", TargetForm::kProxy, Head("CONNECT", "a.test:443", {}), "", 0, "a.test", 443, ""},
      {"CONNECT v6", TargetForm::kProxy, Head("CONNECT", "[::1]:443", {}), "", 0, "[::1]", 443, ""},
      {"CONNECT without port", TargetForm::kProxy, Head("CONNECT", "a.test", {}),
       "bad_connect_target", 400},
      {"CONNECT inside TLS", TargetForm::kInspected, Head("CONNECT", "a.test:443", {}),
       "method_not_allowed", 405},
      {"captured", TargetForm::kCaptured, Head("GET", "/p", {{"Host", "a.test"}}), "", 0, "a.test",
       8080, "/p"},
      {"captured, Host port differs", TargetForm::kCaptured,
       Head("GET", "/p", {{"Host", "a.test:81"}}), "host_mismatch", 400},
      {"captured without Host", TargetForm::kCaptured, Head("GET", "/p", {}), "host_mismatch", 400},
      {"inspected", TargetForm::kInspected, Head("GET", "/repos/acme/x", {{"Host", "api.test"}}),
       "", 0, "api.test", 443, "/repos/acme/x"},
      {"inspected, Host with port and trailing dot", TargetForm::kInspected,
       Head("GET", "/", {{"Host", "API.test.:443"}}), "", 0, "api.test", 443, "/"},
      {"inspected, absolute https form", TargetForm::kInspected,
       Head("GET", "https://api.test/a?b", {{"Host", "api.test"}}), "", 0, "api.test", 443, "/a?b"},
      {"fronting through Host", TargetForm::kInspected, Head("GET", "/", {{"Host", "other.test"}}),
       "host_sni_mismatch", 421},
      {"fronting through the URL", TargetForm::kInspected,
       Head("GET", "https://other.test/", {{"Host", "api.test"}}), "host_sni_mismatch", 421},
      {"inspected, Host on another port", TargetForm::kInspected,
       Head("GET", "/", {{"Host", "api.test:8443"}}), "host_sni_mismatch", 421},
      {"inspected without Host", TargetForm::kInspected, Head("GET", "/", {}), "host_missing", 400},
      {"inspected, asterisk form", TargetForm::kInspected,
       Head("OPTIONS", "*", {{"Host", "api.test"}}), "bad_request_target", 400},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    uint16_t port = c.form == TargetForm::kCaptured ? 8080 : 443;
    Target t;
    auto refusal = ParseTarget(c.head, TargetContext{c.form, port, "api.test"}, &t);
    if (*c.refusal) {
      ASSERT_TRUE(refusal.has_value());
      EXPECT_EQ(refusal->reason, c.refusal);
      EXPECT_EQ(refusal->status, c.status);
      continue;
    }
    ASSERT_FALSE(refusal.has_value()) << refusal->reason;
    EXPECT_EQ(t.host, c.host);
    EXPECT_EQ(t.port, c.port);
    EXPECT_EQ(t.origin_target, c.origin_target);
    EXPECT_EQ(t.tunnel, c.head.method == "CONNECT");
  }
}

TEST(SameHostTest, NamesAndAddresses) {
  EXPECT_TRUE(SameHost("Api.Test", "api.test."));
  EXPECT_TRUE(SameHost("127.0.0.1", "0x7f.1"));
  EXPECT_TRUE(SameHost("[::1]", "[0:0::1]"));
  EXPECT_FALSE(SameHost("api.test", "api.test.evil"));
  EXPECT_FALSE(SameHost("", ""));
  EXPECT_TRUE(AuthorityMatchesSni("api.test", "api.test", 443));
  EXPECT_TRUE(AuthorityMatchesSni("api.test:443", "api.test", 443));
  EXPECT_FALSE(AuthorityMatchesSni("api.test:444", "api.test", 443));
  EXPECT_FALSE(AuthorityMatchesSni("api.test:", "api.test", 443));
}

constexpr char kPolicy[] = R"(
version: v1
name: p
egress:
  - id: acme
    hosts: [api.example.test]
    inspect: true
    http:
      methods: [GET]
      paths: ["/repos/acme/**"]
  - id: plain
    hosts: [web.test]
    protocol: http
limits:
  requests_per_minute: 10
)";

policy::PolicySet LoadSet() {
  config::Diagnostics diags;
  auto p = policy::LoadPolicyText(kPolicy, "inline.yaml", policy::LoadOptions{}, &diags);
  EXPECT_TRUE(p) << diags.ToString();
  std::vector<policy::Policy> policies;
  policies.push_back(std::move(*p));
  return policy::PolicySet::Build(std::move(policies));
}

TEST(DecideTargetTest, PerRequestDecisions) {
  const policy::PolicySet set = LoadSet();
  DecisionContext ctx{"s-1", "p", {}};
  Target api{false, "api.example.test", 443, "/repos/acme/x", policy::Protocol::kTls};
  struct Case {
    const char* name;
    std::string method;
    std::string path;
    bool allowed;
    const char* reason;
  } cases[] = {
      {"allowed method and path", "GET", "/repos/acme/x", true, "allowed"},
      {"other method", "POST", "/repos/acme/x", false, "method_not_allowed"},
      {"other path", "GET", "/repos/other/x", false, "path_not_allowed"},
      {"dot segments out of the allowed tree", "GET", "/repos/acme/../other/x", false,
       "path_not_allowed"},
      {"connection level (the CONNECT)", "", "", true, "allowed"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Target t = api;
    t.origin_target = c.path;
    policy::Decision d = DecideTarget(set, ctx, t, c.method, std::nullopt);
    EXPECT_EQ(d.allowed(), c.allowed);
    EXPECT_EQ(policy::ReasonName(d.reason), c.reason);
    EXPECT_EQ(d.rule_id(), "acme");
  }
  ctx.usage.requests_last_minute = 10;
  policy::Decision d = DecideTarget(set, ctx, api, "GET", std::nullopt);
  EXPECT_FALSE(d.allowed());
  EXPECT_EQ(policy::ReasonName(d.reason), "limit_requests");
  Refusal r = RefusalFor(d, api);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.reason, "limit_requests");
  EXPECT_EQ(r.message, "airlock denied the request to api.example.test:443");
}

}  // namespace
}  // namespace airlock::server
