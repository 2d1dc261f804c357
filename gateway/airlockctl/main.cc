// airlockctl: the command-line tool for the people around the gateway. Subcommands so far:
// `policy check` and `policy test`. Single-threaded.
#include <CLI/CLI.hpp>

#include <iostream>
#include <sstream>

#include "gateway/airlockctl/policy_command.h"

int main(int argc, char** argv) {
  CLI::App app{"airlockctl: policies, audit logs and sessions of the Airlock egress gateway"};
  app.require_subcommand(1);

  auto* policy = app.add_subcommand("policy", "Validate and test policies");
  policy->require_subcommand(1);

  airlock::ctl::PolicyCheckArgs check_args;
  std::string credentials;
  auto* check = policy->add_subcommand(
      "check", "Validate policy files; print every error as file:line:col (exit 1 on errors)");
  check->add_option("paths", check_args.paths, "Policy files or directories")->required();
  check->add_option("--credentials", credentials,
                    "Comma-separated credential names the gateway defines; rules naming others "
                    "are errors");

  std::vector<std::string> test_paths{"policies"};
  auto* test = policy->add_subcommand(
      "test", "Run *.test.yaml policy tests (default: the policies directory)");
  test->add_option("paths", test_paths, "Test files or directories")->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  if (check->parsed()) {
    std::stringstream list(credentials);
    for (std::string name; std::getline(list, name, ',');) {
      if (!name.empty()) check_args.credentials.insert(name);
    }
    return airlock::ctl::RunPolicyCheck(check_args, std::cout, std::cerr);
  }
  if (test->parsed()) return airlock::ctl::RunPolicyTest(test_paths, std::cout, std::cerr);
  return 2;
}
