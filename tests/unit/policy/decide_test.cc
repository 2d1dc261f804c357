// Decide(): table tests that assert the verdict, the reason and the rule for each step of the
// evaluation order.
#include "gateway/policy/decide.h"

#include <gtest/gtest.h>

#include <ostream>

#include "gateway/policy/policy_loader.h"

namespace airlock::policy {
namespace {

constexpr char kPolicy[] = R"(
version: v1
name: p
egress:
  - id: api
    hosts: [api.example.com]
    inspect: true
    http:
      methods: [GET, POST]
      paths: ["/v1/**", "/health"]
  - id: wild
    hosts: ["*.cdn.example.com"]
  - id: plain
    hosts: [plain.example.com]
    protocol: http
  - id: raw
    hosts: [db.example.com]
    ports: [5432, "6000-6010"]
    protocol: tcp
  - id: api-alt
    hosts: [api.example.com]
    ports: [8443]
  - id: shadowed
    hosts: [api.example.com]
deny:
  hosts: [bad.cdn.example.com]
  cidrs: [203.0.113.0/24, "64:ff9b::/96"]
private:
  - id: corp
    cidr: 10.20.0.0/16
    ports: [5432, 443]
  - id: lo
    cidr: 127.0.0.0/8
    ports: [8080]
limits:
  connections: 10
  requests_per_minute: 100
  bytes_out: 1000
)";

constexpr char kReportPolicy[] = R"(
version: v1
name: r
mode: report
egress:
  - id: only
    hosts: [ok.example.com]
)";

PolicySet LoadSet() {
  config::Diagnostics diags;
  std::vector<Policy> policies;
  for (const char* text : {kPolicy, kReportPolicy}) {
    auto p = LoadPolicyText(text, "inline.yaml", LoadOptions{}, &diags);
    if (!p) ADD_FAILURE() << diags.ToString();
    if (p) policies.push_back(std::move(*p));
  }
  return PolicySet::Build(std::move(policies));
}

struct Case {
  const char* name;
  Request request;
  Verdict verdict;
  Reason reason;
  const char* rule;  // "" for none
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

Request Req(std::string_view host, uint16_t port, Protocol proto = Protocol::kTls) {
  Request r;
  r.session = "s1";
  r.policy = "p";
  r.host = host;
  r.port = port;
  r.protocol = proto;
  return r;
}
Request WithHttp(Request r, std::string_view method, std::string_view target) {
  r.http = HttpRequestInfo{method, target};
  return r;
}
Request WithAddr(Request r, const char* addr) {
  r.address = net::IpAddress::Parse(addr);
  return r;
}
Request WithPolicy(Request r, std::string_view policy) {
  r.policy = policy;
  return r;
}
Request WithUsage(Request r, uint64_t conns, uint64_t reqs, uint64_t bytes) {
  r.usage = {conns, reqs, bytes};
  return r;
}
Request NoSession(Request r) {
  r.session = "";
  return r;
}

using V = Verdict;
using R = Reason;
using P = Protocol;

const Case kCases[] = {
    // 1. Session.
    {"no session", NoSession(Req("api.example.com", 443)), V::kDeny, R::kUnknownSession, ""},
    {"unknown policy", WithPolicy(Req("api.example.com", 443), "nope"), V::kDeny,
     R::kPolicyNotFound, ""},
    // 2. Host syntax.
    {"empty host", Req("", 443), V::kDeny, R::kHostEmpty, ""},
    {"NUL in host", Req(std::string_view("api.example.com\0.evil", 21), 443), V::kDeny, R::kHostNul,
     ""},
    {"U-label", Req("ápi.example.com", 443), V::kDeny, R::kHostNonAscii, ""},
    {"bad char", Req("api.example.com:443", 443), V::kDeny, R::kHostInvalidChar, ""},
    {"empty label", Req("api..example.com", 443), V::kDeny, R::kHostEmptyLabel, ""},
    {"long label",
     Req("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com", 443), V::kDeny,
     R::kHostLabelTooLong, ""},
    {"bad numeric", Req("1.2.3.4.5", 443), V::kDeny, R::kHostAmbiguousAddress, ""},
    // 3. Never-allowed destinations, literal and resolved.
    {"metadata literal", Req("169.254.169.254", 80, P::kHttp), V::kDeny, R::kAddressMetadata, ""},
    {"metadata decimal", Req("2852039166", 80, P::kHttp), V::kDeny, R::kAddressMetadata, ""},
    {"metadata short", Req("169.254.43518", 80, P::kHttp), V::kDeny, R::kAddressMetadata, ""},
    {"metadata mapped", Req("[::ffff:a9fe:a9fe]", 80, P::kHttp), V::kDeny, R::kAddressMetadata, ""},
    {"metadata via DNS", WithAddr(Req("api.example.com", 443), "169.254.169.254"), V::kDeny,
     R::kAddressMetadata, ""},
    {"link-local via DNS", WithAddr(Req("api.example.com", 443), "169.254.1.1"), V::kDeny,
     R::kAddressLinkLocal, ""},
    {"v6 link-local", Req("[fe80::1]", 443), V::kDeny, R::kAddressLinkLocal, ""},
    {"0.0.0.0", Req("0.0.0.0", 8080, P::kHttp), V::kDeny, R::kAddressUnroutable, ""},
    {"0 short", Req("0", 8080, P::kHttp), V::kDeny, R::kAddressUnroutable, ""},
    {"multicast", Req("224.0.0.1", 443), V::kDeny, R::kAddressUnroutable, ""},
    // 4. Deny lists beat allow rules.
    {"deny host over wildcard", Req("bad.cdn.example.com", 443), V::kDeny, R::kHostDenied, ""},
    {"deny cidr on resolved", WithAddr(Req("api.example.com", 443), "203.0.113.9"), V::kDeny,
     R::kAddressDenied, ""},
    {"deny cidr on raw v6 form", WithAddr(Req("api.example.com", 443), "64:ff9b::808:808"),
     V::kDeny, R::kAddressDenied, ""},
    // 5. Egress match.
    {"exact host", Req("api.example.com", 443), V::kAllow, R::kAllowed, "api"},
    {"case and trailing dot", Req("API.Example.COM.", 443), V::kAllow, R::kAllowed, "api"},
    {"first matching rule by port", Req("api.example.com", 8443), V::kAllow, R::kAllowed,
     "api-alt"},
    {"wildcard one level", Req("a.cdn.example.com", 443), V::kAllow, R::kAllowed, "wild"},
    {"wildcard deep", Req("a.b.c.cdn.example.com", 443), V::kAllow, R::kAllowed, "wild"},
    {"wildcard not bare", Req("cdn.example.com", 443), V::kDeny, R::kHostNotAllowed, ""},
    {"suffix trick", Req("evilcdn.example.com", 443), V::kDeny, R::kHostNotAllowed, ""},
    {"unknown host", Req("example.org", 443), V::kDeny, R::kHostNotAllowed, ""},
    {"wrong port", Req("api.example.com", 80, P::kHttp), V::kDeny, R::kPortNotAllowed, ""},
    {"wrong protocol", Req("plain.example.com", 80, P::kTls), V::kDeny, R::kProtocolNotAllowed, ""},
    {"http rule", Req("plain.example.com", 80, P::kHttp), V::kAllow, R::kAllowed, "plain"},
    {"tcp rule fits tls", Req("db.example.com", 5432, P::kTls), V::kAllow, R::kAllowed, "raw"},
    {"tcp port range", Req("db.example.com", 6005, P::kTcp), V::kAllow, R::kAllowed, "raw"},
    {"tcp port range end", Req("db.example.com", 6011, P::kTcp), V::kDeny, R::kPortNotAllowed, ""},
    {"literal in private", Req("10.20.1.2", 5432, P::kTcp), V::kAllow, R::kAllowed, "corp"},
    {"literal private wrong port", Req("10.20.1.2", 22, P::kTcp), V::kDeny, R::kPortNotAllowed, ""},
    {"literal private unlisted", Req("10.21.0.1", 5432, P::kTcp), V::kDeny, R::kAddressInternal,
     ""},
    {"loopback octal", Req("0177.0.0.1", 8080, P::kHttp), V::kAllow, R::kAllowed, "lo"},
    {"loopback mapped", Req("[::ffff:127.0.0.1]", 8080, P::kHttp), V::kAllow, R::kAllowed, "lo"},
    {"public literal", Req("93.184.216.34", 443), V::kDeny, R::kHostNotAllowed, ""},
    // 6. HTTP constraints.
    {"method ok", WithHttp(Req("api.example.com", 443), "GET", "/v1/items?q=1"), V::kAllow,
     R::kAllowed, "api"},
    {"method denied", WithHttp(Req("api.example.com", 443), "DELETE", "/v1/items"), V::kDeny,
     R::kMethodNotAllowed, "api"},
    {"method case-sensitive", WithHttp(Req("api.example.com", 443), "get", "/v1/items"), V::kDeny,
     R::kMethodNotAllowed, "api"},
    {"path denied", WithHttp(Req("api.example.com", 443), "GET", "/admin"), V::kDeny,
     R::kPathNotAllowed, "api"},
    {"path dot-segment escape", WithHttp(Req("api.example.com", 443), "GET", "/v1/../admin"),
     V::kDeny, R::kPathNotAllowed, "api"},
    {"path encoded slash", WithHttp(Req("api.example.com", 443), "GET", "/v1%2F..%2Fadmin"),
     V::kDeny, R::kPathAmbiguous, "api"},
    {"path encoded dots", WithHttp(Req("api.example.com", 443), "GET", "/v1/%2e%2e/admin"),
     V::kDeny, R::kPathAmbiguous, "api"},
    {"path backslash", WithHttp(Req("api.example.com", 443), "GET", "/v1\\..\\admin"), V::kDeny,
     R::kPathAmbiguous, "api"},
    {"path unreserved escape", WithHttp(Req("api.example.com", 443), "GET", "/%76%31/x"), V::kAllow,
     R::kAllowed, "api"},
    {"no constraints on rule", WithHttp(Req("plain.example.com", 80, P::kHttp), "PUT", "//x"),
     V::kAllow, R::kAllowed, "plain"},
    // 7. Internal destinations for names.
    {"name to private listed", WithAddr(Req("api.example.com", 443), "10.20.0.5"), V::kAllow,
     R::kAllowed, "api"},
    {"name to private unlisted", WithAddr(Req("api.example.com", 443), "10.30.0.5"), V::kDeny,
     R::kAddressInternal, "api"},
    {"name to private wrong port", WithAddr(Req("api.example.com", 8443), "10.20.0.5"), V::kDeny,
     R::kAddressInternal, "api-alt"},
    {"name to loopback", WithAddr(Req("a.cdn.example.com", 443), "127.0.0.1"), V::kDeny,
     R::kAddressInternal, "wild"},
    {"name to cgnat", WithAddr(Req("a.cdn.example.com", 443), "100.64.0.1"), V::kDeny,
     R::kAddressInternal, "wild"},
    {"name to ULA", WithAddr(Req("a.cdn.example.com", 443), "fd12::1"), V::kDeny,
     R::kAddressInternal, "wild"},
    {"name to public", WithAddr(Req("a.cdn.example.com", 443), "93.184.216.34"), V::kAllow,
     R::kAllowed, "wild"},
    // 8. Limits.
    {"connections under", WithUsage(Req("api.example.com", 443), 9, 0, 0), V::kAllow, R::kAllowed,
     "api"},
    {"connections at", WithUsage(Req("api.example.com", 443), 10, 0, 0), V::kDeny,
     R::kLimitConnections, "api"},
    {"requests at", WithUsage(WithHttp(Req("api.example.com", 443), "GET", "/health"), 10, 100, 0),
     V::kDeny, R::kLimitRequests, "api"},
    {"bytes at", WithUsage(Req("api.example.com", 443), 0, 0, 1000), V::kDeny, R::kLimitBytesOut,
     "api"},
    // 9. Report mode.
    {"report unknown host", WithPolicy(Req("x.example.com", 443), "r"), V::kReport,
     R::kHostNotAllowed, ""},
    {"report internal", WithPolicy(Req("10.0.0.1", 443), "r"), V::kReport, R::kAddressInternal, ""},
    {"report keeps metadata denied", WithPolicy(Req("169.254.169.254", 80, P::kHttp), "r"),
     V::kDeny, R::kAddressMetadata, ""},
    {"report keeps bad host denied", WithPolicy(Req("a..b", 443), "r"), V::kDeny,
     R::kHostEmptyLabel, ""},
    {"report allows allowed", WithPolicy(Req("ok.example.com", 443), "r"), V::kAllow, R::kAllowed,
     "only"},
};

class DecideTest : public testing::TestWithParam<Case> {
 protected:
  static void SetUpTestSuite() { set_ = new PolicySet(LoadSet()); }
  static void TearDownTestSuite() {
    delete set_;
    set_ = nullptr;
  }
  static PolicySet* set_;
};
PolicySet* DecideTest::set_ = nullptr;

TEST_P(DecideTest, VerdictReasonAndRule) {
  const Case& c = GetParam();
  Decision d = Decide(*set_, c.request);
  EXPECT_EQ(VerdictName(d.verdict), VerdictName(c.verdict)) << c.name;
  EXPECT_EQ(ReasonName(d.reason), ReasonName(c.reason)) << c.name;
  EXPECT_EQ(d.rule_id(), c.rule) << c.name;
}

INSTANTIATE_TEST_SUITE_P(Table, DecideTest, testing::ValuesIn(kCases),
                         [](const testing::TestParamInfo<Case>& param_info) {
                           std::string n;
                           for (const char* p = param_info.param.name; *p; ++p) {
                             n += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
                           }
                           return n;
                         });

TEST(Decide, ReportsTheAddressClass) {
  PolicySet set = LoadSet();
  Decision d = Decide(set, Req("10.20.1.2", 5432, Protocol::kTcp));
  ASSERT_TRUE(d.address_class);
  EXPECT_EQ(*d.address_class, net::AddressClass::kPrivate);
  EXPECT_FALSE(Decide(set, Req("api.example.com", 443)).address_class);
}

TEST(DecideName, WhichNamesTheDnsResponderAnswers) {
  PolicySet set = LoadSet();
  auto name = [&](const char* n, const char* policy = "p") {
    return DecideName(set, "s1", policy, n);
  };
  EXPECT_EQ(name("api.example.com").verdict, Verdict::kAllow);
  EXPECT_EQ(name("api.example.com").rule_id(), "api");
  EXPECT_EQ(name("API.example.com.").verdict, Verdict::kAllow);
  EXPECT_EQ(name("x.y.cdn.example.com").rule_id(), "wild");
  EXPECT_EQ(name("db.example.com").rule_id(), "raw");  // any port or protocol
  EXPECT_EQ(name("bad.cdn.example.com").reason, Reason::kHostDenied);
  EXPECT_EQ(name("cdn.example.com").reason, Reason::kHostNotAllowed);
  EXPECT_EQ(name("exfil-c2VjcmV0.evil.example").reason, Reason::kHostNotAllowed);
  EXPECT_EQ(name("10.20.0.1").reason, Reason::kHostNotAllowed);
  EXPECT_EQ(name("a..b").reason, Reason::kHostEmptyLabel);
  EXPECT_EQ(name("x.example.com", "r").verdict, Verdict::kReport);
  EXPECT_EQ(DecideName(set, "", "p", "api.example.com").reason, Reason::kUnknownSession);
}

TEST(AnswerAllowed, FiltersDnsAnswers) {
  PolicySet set = LoadSet();
  const CompiledPolicy& p = *set.Find("p");
  auto ok = [&](const char* a) { return AnswerAllowed(p, *net::IpAddress::Parse(a)); };
  EXPECT_TRUE(ok("93.184.216.34"));
  EXPECT_TRUE(ok("10.20.1.1"));   // listed under private
  EXPECT_TRUE(ok("127.0.0.1"));   // listed under private
  EXPECT_FALSE(ok("10.21.0.1"));  // internal, not listed
  EXPECT_FALSE(ok("169.254.169.254"));
  EXPECT_FALSE(ok("::ffff:169.254.169.254"));
  EXPECT_FALSE(ok("0.0.0.0"));
  EXPECT_FALSE(ok("203.0.113.5"));  // deny.cidrs
  EXPECT_FALSE(ok("fd12::1"));
}

TEST(Decide, ReasonNamesRoundTrip) {
  for (int i = 0; i <= static_cast<int>(Reason::kLimitBytesOut); ++i) {
    auto r = static_cast<Reason>(i);
    EXPECT_EQ(ParseReason(ReasonName(r)), r);
    EXPECT_FALSE(ReasonHint(r).empty());
  }
  EXPECT_FALSE(ParseReason("nonsense"));
}

}  // namespace
}  // namespace airlock::policy
