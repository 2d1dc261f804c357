// Policy test files: loading (strict), running, and detecting failures.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "gateway/policy/policy_loader.h"
#include "gateway/policy/policy_test.h"

namespace airlock::policy {
namespace {

namespace fs = std::filesystem;

class PolicyTestRunner : public testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / ("airlock-ptest-" + std::to_string(getpid()) + "-" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    Write("p.yaml", "version: v1\nname: p\negress:\n  - id: a\n    hosts: [a.example.com]\n");
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  std::vector<PolicyTestOutcome> Run(const PolicyTestFile& file) {
    config::Diagnostics diags;
    auto p = LoadPolicyFile(file.policy_file, {}, &diags);
    EXPECT_TRUE(p) << diags.ToString();
    std::vector<Policy> one;
    one.push_back(std::move(*p));
    set_ = PolicySet::Build(std::move(one));
    return RunPolicyTests(file, set_, "p");
  }
  fs::path dir_;
  PolicySet set_;
};

TEST_F(PolicyTestRunner, PassesAndFailsCases) {
  std::string path = Write("p.test.yaml", R"(cases:
  - name: allowed
    request: {host: a.example.com}
    expect: allow
    rule: a
  - name: wrong verdict
    request: {host: b.example.com}
    expect: allow
  - name: wrong reason
    request: {host: b.example.com}
    expect: deny
    reason: host_denied
  - name: wrong rule
    request: {host: a.example.com}
    expect: allow
    rule: z
)");
  config::Diagnostics diags;
  auto file = LoadPolicyTestFile(path, &diags);
  ASSERT_TRUE(file) << diags.ToString();
  EXPECT_EQ(file->policy_file, (dir_ / "p.yaml").string());
  auto outcomes = Run(*file);
  ASSERT_EQ(outcomes.size(), 4u);
  EXPECT_TRUE(outcomes[0].passed);
  EXPECT_FALSE(outcomes[1].passed);
  EXPECT_EQ(outcomes[1].got, "deny host_not_allowed (rule -)");
  EXPECT_FALSE(outcomes[2].passed);
  EXPECT_FALSE(outcomes[3].passed);
  EXPECT_EQ(outcomes[3].test->line, 13);
}

TEST_F(PolicyTestRunner, RequestDefaults) {
  std::string path = Write("d.test.yaml", R"(policy: p.yaml
cases:
  - name: path implies GET
    request: {host: a.example.com, path: /x}
    expect: allow
  - name: http defaults to port 80
    request: {host: a.example.com, protocol: http}
    expect: deny
)");
  config::Diagnostics diags;
  auto file = LoadPolicyTestFile(path, &diags);
  ASSERT_TRUE(file) << diags.ToString();
  EXPECT_EQ(file->cases[0].method, "GET");
  EXPECT_EQ(file->cases[0].port, 443);
  EXPECT_EQ(file->cases[1].port, 80);
  EXPECT_FALSE(file->cases[1].method);
}

TEST_F(PolicyTestRunner, StrictLoading) {
  std::string path = Write("bad.test.yaml", R"(cases:
  - name: typo
    request: {host: a.example.com, prot: 80}
    expect: allowed
    reason: not_a_reason
  - name: tcp needs a port
    request: {host: a.example.com, protocol: tcp}
    expect: deny
)");
  config::Diagnostics diags;
  EXPECT_FALSE(LoadPolicyTestFile(path, &diags));
  EXPECT_EQ(diags.size(), 4u) << diags.ToString();
  std::string all = diags.ToString();
  EXPECT_NE(all.find(":3:36: error: unknown key 'prot'"), std::string::npos) << all;
  EXPECT_NE(all.find(":4:13: error: expect must be"), std::string::npos) << all;
  EXPECT_NE(all.find(":5:13: error: unknown reason code"), std::string::npos) << all;
  EXPECT_NE(all.find("missing required key 'port'"), std::string::npos) << all;
}

}  // namespace
}  // namespace airlock::policy
