// Policy tests (*.test.yaml): cases of request -> expected verdict (and optionally rule and
// reason), run through the same Decide() the gateway uses. Loaded with the strict YAML reader,
// so a mistyped key in a test is an error, not a silently skipped check.
// Not thread-safe; one run on one thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "gateway/config/diagnostic.h"
#include "gateway/net/ip_address.h"
#include "gateway/policy/decide.h"
#include "gateway/policy/policy_set.h"

namespace airlock::policy {

struct PolicyTestCase {
  std::string name;
  int line = 0;
  std::string host;
  uint16_t port = 0;
  Protocol protocol = Protocol::kTls;
  std::optional<std::string> method;
  std::optional<std::string> path;
  std::optional<net::IpAddress> address;
  Usage usage;
  Verdict expect = Verdict::kDeny;
  std::optional<std::string> rule;
  std::optional<Reason> reason;
};

struct PolicyTestFile {
  std::string path;
  std::string policy_file;  // `policy:` relative to the test file, or <stem>.yaml beside it
  std::vector<PolicyTestCase> cases;
};

std::optional<PolicyTestFile> LoadPolicyTestFile(const std::string& path,
                                                 config::Diagnostics* diags);

// Test files among `paths`: files as given; in a directory every *.test.yaml in it, sorted.
std::vector<std::string> ListPolicyTestFiles(const std::vector<std::string>& paths,
                                             config::Diagnostics* diags);

struct PolicyTestOutcome {
  const PolicyTestCase* test = nullptr;
  bool passed = false;
  std::string got;  // "deny host_denied (rule -)" as decided
};

std::vector<PolicyTestOutcome> RunPolicyTests(const PolicyTestFile& file, const PolicySet& set,
                                              std::string_view policy_name);

// "allow|deny|report[ reason][ (rule id)]", the form both expectations and outcomes print in.
std::string DescribeOutcome(Verdict verdict, std::optional<Reason> reason,
                            std::optional<std::string_view> rule);

}  // namespace airlock::policy
