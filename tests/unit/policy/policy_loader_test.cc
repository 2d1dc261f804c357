// Policy loading: one invalid fixture per validation error (tests/testdata/policy/invalid), each
// naming on its first line the exact line, column and message it must produce; plus whole-set
// behaviour (every error reported, duplicate names, test files skipped).
#include "gateway/policy/policy_loader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

namespace airlock::policy {
namespace {

namespace fs = std::filesystem;
const std::string kSource = AIRLOCK_SOURCE_DIR;

std::vector<std::string> InvalidFixtures() {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(kSource + "/tests/testdata/policy/invalid")) {
    files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class InvalidFixtureTest : public testing::TestWithParam<std::string> {};

TEST_P(InvalidFixtureTest, ReportsExactlyTheExpectedError) {
  const std::string& path = GetParam();
  std::ifstream in(path);
  std::string header;
  std::getline(in, header);
  std::smatch m;
  ASSERT_TRUE(std::regex_match(header, m, std::regex(R"(# error: (\d+):(\d+): (.*))")))
      << path << ": first line must be '# error: LINE:COL: message'";
  const int line = std::stoi(m[1]);
  const int col = std::stoi(m[2]);
  const std::string message = m[3];

  LoadOptions options;
  options.known_credentials = std::set<std::string>{"github"};
  config::Diagnostics diags;
  EXPECT_FALSE(LoadPolicyFile(path, options, &diags));
  ASSERT_EQ(diags.size(), 1u) << diags.ToString();
  const config::Diagnostic& d = diags.items()[0];
  EXPECT_EQ(d.file, path);
  if (line == 0) {
    EXPECT_GT(d.line, 0) << "a syntax error still has a position";
  } else {
    EXPECT_EQ(d.line, line) << d.ToString();
    EXPECT_EQ(d.column, col) << d.ToString();
  }
  EXPECT_NE(d.message.find(message), std::string::npos) << d.ToString();
  EXPECT_NE(d.ToString().find(path + ":" + std::to_string(d.line) + ":"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, InvalidFixtureTest, testing::ValuesIn(InvalidFixtures()),
                         [](const testing::TestParamInfo<std::string>& param_info) {
                           std::string n = fs::path(param_info.param).stem().string();
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(PolicyLoader, ThereIsAFixtureForEveryKindOfError) { EXPECT_GE(InvalidFixtures().size(), 60u); }

TEST(PolicyLoader, ReportsEveryErrorOfABrokenFile) {
  config::Diagnostics diags;
  EXPECT_FALSE(LoadPolicyFile(kSource + "/tests/testdata/policy/broken.yaml", {}, &diags));
  EXPECT_GE(diags.size(), 25u) << diags.ToString();
  for (const auto& d : diags.items()) {
    EXPECT_GT(d.line, 0) << d.ToString();
    EXPECT_GT(d.column, 0) << d.ToString();
  }
}

TEST(PolicyLoader, LoadsAValidPolicy) {
  config::Diagnostics diags;
  auto p = LoadPolicyText(R"(
version: v1
name: ok
description: d
mode: report
egress:
  - id: a
    hosts: [a.example.com, "*.b.example.com"]
  - id: b
    hosts: [c.example.com]
    protocol: http
  - id: c
    hosts: [d.example.com]
    ports: [22, "2000-2010"]
    protocol: tcp
  - id: d
    hosts: [e.example.com]
    inspect: true
    http: {methods: [GET], paths: ["/x/**"]}
    credentials: [tok]
deny: {hosts: ["*.ru"], cidrs: [203.0.113.0/24]}
private: [{cidr: 10.0.0.0/8, ports: [5432]}, {id: lo, cidr: "::1/128", ports: [80]}]
limits: {connections: 5, requests_per_minute: 60, bytes_out: 2MiB}
dns: {unknown_names: refused}
)",
                          "ok.yaml", {}, &diags);
  ASSERT_TRUE(p) << diags.ToString();
  EXPECT_EQ(p->mode, Mode::kReport);
  ASSERT_EQ(p->egress.size(), 4u);
  EXPECT_EQ(p->egress[0].ports[0].first, 443);  // tls default
  EXPECT_EQ(p->egress[1].ports[0].first, 80);   // http default
  EXPECT_EQ(p->egress[2].ports[1].last, 2010);
  EXPECT_EQ(p->egress[3].credentials, std::vector<std::string>{"tok"});
  EXPECT_EQ(p->private_ranges[0].id, "private-1");
  EXPECT_EQ(p->private_ranges[1].id, "lo");
  EXPECT_EQ(*p->limits.bytes_out, 2u << 20);
  EXPECT_EQ(p->unknown_names, UnknownNames::kRefused);
}

TEST(PolicyLoader, SetRejectsDuplicateNamesAndSkipsTestFiles) {
  fs::path dir = fs::temp_directory_path() / ("airlock-loader-" + std::to_string(getpid()));
  fs::create_directories(dir);
  auto write = [&](const char* name, const char* text) { std::ofstream(dir / name) << text; };
  write("a.yaml", "version: v1\nname: same\n");
  write("b.yml", "version: v1\nname: same\n");
  write("a.test.yaml", "this: is not a policy\n");
  config::Diagnostics diags;
  EXPECT_FALSE(LoadPolicySet({dir.string()}, {}, &diags));
  ASSERT_EQ(diags.size(), 1u) << diags.ToString();
  EXPECT_NE(diags.items()[0].message.find("already used by"), std::string::npos);
  fs::remove(dir / "b.yml");
  config::Diagnostics ok;
  auto set = LoadPolicySet({dir.string()}, {}, &ok);
  ASSERT_TRUE(set) << ok.ToString();
  EXPECT_EQ(set->Names(), std::vector<std::string>{"same"});
  fs::remove_all(dir);
}

TEST(PolicyLoader, MissingPathIsAnError) {
  config::Diagnostics diags;
  EXPECT_FALSE(LoadPolicySet({"/nonexistent/airlock"}, {}, &diags));
  EXPECT_EQ(diags.size(), 1u);
}

TEST(PolicyLoader, LoadsTheShippedPolicies) {
  config::Diagnostics diags;
  auto set = LoadPolicySet({kSource + "/policies"}, {}, &diags);
  ASSERT_TRUE(set) << diags.ToString();
  EXPECT_EQ(set->Names(), (std::vector<std::string>{"coding-agent", "data-science", "default",
                                                    "internal-services"}));
}

}  // namespace
}  // namespace airlock::policy
