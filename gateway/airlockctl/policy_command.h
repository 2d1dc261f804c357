// `airlockctl policy check|test`: the security team's tools for policies. Each function runs
// one subcommand to completion and returns the process exit code. Single-threaded.
#pragma once

#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace airlock::ctl {

struct PolicyCheckArgs {
  std::vector<std::string> paths;
  std::set<std::string> credentials;  // known credential names; empty: not checked
  std::string config;                 // airlock.yaml whose credentials are known, if given
};

// Validates every policy; prints one line per valid policy and every error. 0, or 1 on errors.
int RunPolicyCheck(const PolicyCheckArgs& args, std::ostream& out, std::ostream& err);

// Runs *.test.yaml files; prints one line per case and "N passed, N failed". 0, or 1 on any
// failure or load error.
int RunPolicyTest(const std::vector<std::string>& paths, std::ostream& out, std::ostream& err);

}  // namespace airlock::ctl
