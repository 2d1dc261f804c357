// Host pattern validation, matching and the rule index.
#include "gateway/policy/host_pattern.h"

#include <gtest/gtest.h>

#include <ostream>

#include <set>

namespace airlock::policy {
namespace {

// A suffix list with fixed entries, to test the validation seam without libpsl.
class FakeSuffixes : public PublicSuffixList {
 public:
  bool IsPublicSuffix(std::string_view d) const override { return set_.count(std::string(d)); }
  std::set<std::string> set_{"example"};
};

std::optional<HostPattern> Parse(std::string_view text, std::string* error,
                                 SuffixWildcards mode = SuffixWildcards::kReject) {
  return ParseHostPattern(text, SystemPublicSuffixList(), mode, error);
}

TEST(HostPattern, AcceptsAndCanonicalises) {
  std::string error;
  auto exact = Parse("API.GitHub.com.", &error);
  ASSERT_TRUE(exact) << error;
  EXPECT_FALSE(exact->wildcard);
  EXPECT_EQ(exact->domain, "api.github.com");
  auto wild = Parse("*.PythonHosted.org", &error);
  ASSERT_TRUE(wild) << error;
  EXPECT_TRUE(wild->wildcard);
  EXPECT_EQ(wild->ToString(), "*.pythonhosted.org");
  EXPECT_TRUE(Parse("*.svc.cluster.local", &error)) << error;
  EXPECT_TRUE(Parse("*.acme.internal", &error)) << error;
}

struct BadCase {
  const char* pattern;
  const char* message;  // substring of the error
};
void PrintTo(const BadCase& c, std::ostream* os) { *os << c.pattern; }

class BadHostPatternTest : public testing::TestWithParam<BadCase> {};

TEST_P(BadHostPatternTest, Rejects) {
  std::string error;
  EXPECT_FALSE(Parse(GetParam().pattern, &error)) << GetParam().pattern;
  EXPECT_NE(error.find(GetParam().message), std::string::npos) << error;
}

const BadCase kBad[] = {
    {"*", "would allow every host"},
    {"*.", "no domain after the wildcard"},
    {"*..", "no domain after the wildcard"},
    {"login.*.example.com", "whole leading label"},
    {"*.*.x.com", "whole leading label"},
    {"*foo.example.com", "whole leading label"},
    {"foo*.example.com", "whole leading label"},
    {"*.com", "public suffix 'com'"},
    {"*.co.uk", "public suffix 'co.uk'"},
    {"*.github.io", "public suffix 'github.io'"},
    {"*.s3.amazonaws.com", "public suffix"},
    {"bücher.de", "punycode"},
    {"a..b.com", "empty label"},
    {"", "empty host"},
    {"-a.example.com", "start or end with '-'"},
    {"a-.example.com", "start or end with '-'"},
    {"10.0.0.1", "is an IP address"},
    {"2852039166", "is an IP address"},
    {"[::1]", "is an IP address"},
    {"example.123", "not a valid one"},
    {"exa mple.com", "character outside"},
};
INSTANTIATE_TEST_SUITE_P(Bad, BadHostPatternTest, testing::ValuesIn(kBad));

TEST(HostPattern, LabelAndNameLimits) {
  std::string error;
  EXPECT_TRUE(Parse(std::string(63, 'a') + ".com", &error));
  EXPECT_FALSE(Parse(std::string(64, 'a') + ".com", &error));
  EXPECT_NE(error.find("63 octets"), std::string::npos);
  std::string long_name;
  for (int i = 0; i < 5; ++i) long_name += std::string(60, 'a') + ".";
  EXPECT_FALSE(Parse(long_name + "com", &error));
  EXPECT_NE(error.find("253 octets"), std::string::npos);
}

TEST(HostPattern, DenyListsMayWildcardASuffix) {
  std::string error;
  EXPECT_TRUE(Parse("*.ru", &error, SuffixWildcards::kAccept)) << error;
  EXPECT_FALSE(Parse("*", &error, SuffixWildcards::kAccept));
}

TEST(HostPattern, ConsultsTheSuffixList) {
  FakeSuffixes fake;
  std::string error;
  EXPECT_FALSE(ParseHostPattern("*.example", fake, SuffixWildcards::kReject, &error));
  EXPECT_TRUE(ParseHostPattern("*.com", fake, SuffixWildcards::kReject, &error)) << error;
}

TEST(HostPattern, Matching) {
  std::string error;
  auto wild = *Parse("*.example.com", &error);
  EXPECT_TRUE(wild.Matches("a.example.com"));
  EXPECT_TRUE(wild.Matches("a.b.c.example.com"));
  EXPECT_FALSE(wild.Matches("example.com"));
  EXPECT_FALSE(wild.Matches("badexample.com"));
  EXPECT_FALSE(wild.Matches("example.com.evil.net"));
  auto exact = *Parse("example.com", &error);
  EXPECT_TRUE(exact.Matches("example.com"));
  EXPECT_FALSE(exact.Matches("a.example.com"));
}

TEST(HostIndex, FindsExactAndWildcardRulesInOrder) {
  std::string error;
  HostIndex index;
  index.Add(*Parse("*.example.com", &error), 0);
  index.Add(*Parse("api.example.com", &error), 1);
  index.Add(*Parse("*.api.example.com", &error), 2);
  index.Add(*Parse("*.example.com", &error), 3);
  std::vector<std::vector<uint32_t>> seen;
  index.ForEachMatch("x.api.example.com", [&](const auto& rules) { seen.push_back(rules); });
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], (std::vector<uint32_t>{2}));
  EXPECT_EQ(seen[1], (std::vector<uint32_t>{0, 3}));
  EXPECT_TRUE(index.Contains("api.example.com"));
  EXPECT_FALSE(index.Contains("example.com"));
  EXPECT_FALSE(index.Contains("example.org"));
}

}  // namespace
}  // namespace airlock::policy
