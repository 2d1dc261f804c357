// NormalizePath() and PathGlob: normal forms, ambiguity, and segment globbing.
#include "gateway/policy/path.h"

#include <gtest/gtest.h>

#include <ostream>

namespace airlock::policy {
namespace {

struct NormCase {
  const char* target;
  const char* normalized;  // nullptr: ambiguous
};
void PrintTo(const NormCase& c, std::ostream* os) {
  *os << testing::PrintToString(std::string(c.target));
}

class NormalizePathTest : public testing::TestWithParam<NormCase> {};

TEST_P(NormalizePathTest, Normalizes) {
  std::string why;
  auto got = NormalizePath(GetParam().target, &why);
  if (GetParam().normalized == nullptr) {
    EXPECT_FALSE(got) << GetParam().target << " -> " << got.value_or("");
    EXPECT_FALSE(why.empty());
  } else {
    ASSERT_TRUE(got) << GetParam().target << ": " << why;
    EXPECT_EQ(*got, GetParam().normalized);
  }
}

const NormCase kNormCases[] = {
    {"/", "/"},
    {"/a/b", "/a/b"},
    {"/a/b/", "/a/b/"},
    {"/a/b?x=1&y=../..", "/a/b"},
    {"/a/./b", "/a/b"},
    {"/a/b/.", "/a/b/"},
    {"/a/../b", "/b"},
    {"/a/b/..", "/a/"},
    {"/%61%62c", "/abc"},
    {"/a%7Eb", "/a~b"},
    {"/a%2db%2Ec", "/a-b.c"},
    {"/a%20b", "/a%20b"},
    {"/a%3ab", "/a%3Ab"},
    {"/a%2e%2e", "/a.."},  // not a whole segment: just dots in a name
    {"/..a/b", "/..a/b"},
    {"/a*b", "/a*b"},
    // Ambiguous.
    {"", nullptr},
    {"*", nullptr},
    {"a/b", nullptr},
    {"http://x/a", nullptr},
    {"/a%2Fb", nullptr},
    {"/a%2fb", nullptr},
    {"/a%5Cb", nullptr},
    {"/a\\b", nullptr},
    {"/%2e%2e/b", nullptr},
    {"/a/%2E/b", nullptr},
    {"/a/.%2e/b", nullptr},
    {"/a//b", nullptr},
    {"//a", nullptr},
    {"/..", nullptr},
    {"/a/../../b", nullptr},
    {"/a%00b", nullptr},
    {"/a%zzb", nullptr},
    {"/a%4", nullptr},
    {"/a%", nullptr},
    {"/a b", nullptr},
    {"/a\tb", nullptr},
    {"/caf\xc3\xa9", nullptr},
    {"/a#frag", nullptr},
};
INSTANTIATE_TEST_SUITE_P(Paths, NormalizePathTest, testing::ValuesIn(kNormCases));

struct GlobCase {
  const char* pattern;
  const char* path;
  bool matches;
};
void PrintTo(const GlobCase& c, std::ostream* os) { *os << c.pattern << " ~ " << c.path; }

class PathGlobTest : public testing::TestWithParam<GlobCase> {};

TEST_P(PathGlobTest, Matches) {
  std::string error;
  auto glob = PathGlob::Parse(GetParam().pattern, &error);
  ASSERT_TRUE(glob) << error;
  EXPECT_EQ(glob->Matches(GetParam().path), GetParam().matches)
      << GetParam().pattern << " vs " << GetParam().path;
}

const GlobCase kGlobCases[] = {
    {"/user", "/user", true},
    {"/user", "/user/", false},
    {"/user", "/users", false},
    {"/user", "/user/x", false},
    {"/repos/*", "/repos/acme", true},
    {"/repos/*", "/repos/", false},
    {"/repos/*", "/repos/acme/x", false},
    {"/repos/*/issues", "/repos/acme/issues", true},
    {"/repos/*/issues", "/repos/acme/x/issues", false},
    {"/repos/acme/**", "/repos/acme", true},
    {"/repos/acme/**", "/repos/acme/", true},
    {"/repos/acme/**", "/repos/acme/widgets/pulls/1", true},
    {"/repos/acme/**", "/repos/acmex", false},
    {"/repos/acme/**", "/repos/evil", false},
    {"/**/raw", "/raw", true},
    {"/**/raw", "/a/b/raw", true},
    {"/**/raw", "/a/b/raw/x", false},
    {"/**", "/", true},
    {"/**", "/anything/at/all", true},
    {"/a/**/b/*", "/a/x/y/b/z", true},
    {"/a/**/b/*", "/a/b/z", true},
    {"/a/**/b/*", "/a/b/", false},
    {"/a/**/**/c", "/a/c", true},
    {"/", "/", true},
    {"/", "/x", false},
};
INSTANTIATE_TEST_SUITE_P(Globs, PathGlobTest, testing::ValuesIn(kGlobCases));

TEST(PathGlob, RejectsMalformedPatterns) {
  std::string error;
  for (const char* bad : {"", "user", "/a*", "/*a/b", "/***", "/a?b", "/a/../b", "/a//b",
                          "/%2e%2e/x", "/a%2Fb", "/%7euser"}) {
    EXPECT_FALSE(PathGlob::Parse(bad, &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

}  // namespace
}  // namespace airlock::policy
