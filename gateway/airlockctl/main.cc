// airlockctl: the command-line tool for the people around the gateway. Subcommands so far:
// `policy check` and `policy test`. Single-threaded.
#include <CLI/CLI.hpp>

#include <iostream>
#include <sstream>

#include "gateway/airlockctl/audit_command.h"
#include "gateway/airlockctl/ca_command.h"
#include "gateway/airlockctl/policy_command.h"

int main(int argc, char** argv) {
  CLI::App app{
      "airlockctl: policies, audit logs, sessions and the CA of the Airlock egress gateway"};
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
  check->add_option("--config", check_args.config,
                    "The gateway's airlock.yaml: rules may bind only the credentials it defines");

  std::vector<std::string> test_paths{"policies"};
  auto* test = policy->add_subcommand(
      "test", "Run *.test.yaml policy tests (default: the policies directory)");
  test->add_option("paths", test_paths, "Test files or directories")->capture_default_str();

  auto* audit = app.add_subcommand("audit", "Verify, query and follow audit logs");
  audit->require_subcommand(1);
  std::vector<std::string> verify_paths;
  std::string hmac_key_file;
  auto* verify = audit->add_subcommand(
      "verify", "Check the hash chain: exit 1 if any record was edited, deleted or reordered");
  verify
      ->add_option("paths", verify_paths,
                   "The active log file (its rotated files are found), or files in order")
      ->required();
  verify->add_option("--hmac-key-file", hmac_key_file, "Key file, for a keyed chain");

  airlock::ctl::AuditFilter filter;
  std::string log_path;
  bool table = false;
  auto add_filters = [&](CLI::App* cmd) {
    cmd->add_option("path", log_path, "The active audit log file")->required();
    cmd->add_option("--session", filter.session, "Only this session");
    cmd->add_option("--decision", filter.decision, "allow, deny or report");
    cmd->add_option("--host", filter.host, "Only this destination host");
    cmd->add_option("--event", filter.event, "Only this event (e.g. connection.open)");
    cmd->add_option("--since", filter.since, "From this RFC 3339 time (or a prefix of one)");
    cmd->add_option("--until", filter.until, "Before this RFC 3339 time");
  };
  auto* query = audit->add_subcommand("query", "Print matching records (JSON lines or a table)");
  add_filters(query);
  query->add_flag("--table", table, "Print a table instead of JSON lines");
  size_t tail_lines = 10;
  bool follow = false;
  auto* tail = audit->add_subcommand("tail", "Print the last records; -f follows new ones");
  add_filters(tail);
  tail->add_option("-n,--lines", tail_lines, "How many records to print first")
      ->capture_default_str();
  tail->add_flag("-f,--follow", follow, "Keep printing records as they are written");

  auto* ca = app.add_subcommand("ca", "The gateway's CA for inspected TLS");
  ca->require_subcommand(1);
  std::string config_path = "/etc/airlock/airlock.yaml";
  auto* ca_export = ca->add_subcommand(
      "export", "Print the CA certificate (PEM) that sandboxes must trust; nothing secret");
  ca_export->add_option("--config", config_path, "The gateway's airlock.yaml")
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  if (ca_export->parsed()) return airlock::ctl::RunCaExport(config_path, std::cout, std::cerr);

  if (verify->parsed()) {
    return airlock::ctl::RunAuditVerify(verify_paths, hmac_key_file, std::cout, std::cerr);
  }
  if (query->parsed()) {
    return airlock::ctl::RunAuditQuery(log_path, filter, table, std::cout, std::cerr);
  }
  if (tail->parsed()) {
    return airlock::ctl::RunAuditTail(log_path, filter, tail_lines, follow, std::cout, std::cerr);
  }

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
