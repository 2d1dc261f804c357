// airlockctl: the command-line tool for the people around the gateway: `policy check|test`,
// `audit verify|query|tail`, `session create|ls|rm` and `ca export`. Single-threaded.
#include <CLI/CLI.hpp>

#include <iostream>
#include <sstream>

#include "gateway/airlockctl/audit_command.h"
#include "gateway/airlockctl/ca_command.h"
#include "gateway/airlockctl/policy_command.h"
#include "gateway/airlockctl/session_command.h"
#include "gateway/config/gateway_config.h"

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

  auto* session = app.add_subcommand("session", "Create, list and end the gateway's sessions");
  session->require_subcommand(1);
  airlock::ctl::ControlTarget target;
  auto add_target = [&](CLI::App* cmd) {
    auto* socket =
        cmd->add_option("--socket", target.socket,
                        "The gateway's control socket (default: listen.control of --config, else " +
                            airlock::config::GatewayConfig{}.control_socket + ")");
    cmd->add_option("--config", target.config, "The gateway's airlock.yaml, for its control socket")
        ->excludes(socket);
  };
  airlock::ctl::SessionCreateArgs create_args;
  std::vector<std::string> labels;
  auto* create = session->add_subcommand(
      "create", "Create a session; print it as JSON, with its token and placeholders (shown once)");
  add_target(create);
  create->add_option("--policy", create_args.policy, "The policy the session follows")->required();
  create->add_option("--ttl", create_args.ttl_seconds,
                     "Lifetime in seconds (default: the gateway's)");
  create->add_option("--id", create_args.id, "The session's id (default: generated)");
  create->add_option("--source", create_args.source,
                     "The sandbox's source address: its connections belong to the session");
  create->add_flag("--no-token", create_args.no_token,
                   "No proxy token (the session is then known by --source alone)");
  create->add_option("--label", labels, "KEY=VALUE, kept with the session (repeatable)")
      ->check(CLI::Validator(
          [](std::string& kv) {
            return kv.find('=') == std::string::npos || kv.front() == '=' ? "use KEY=VALUE" : "";
          },
          "KEY=VALUE"))
      ->allow_extra_args(false);
  bool ls_json = false;
  auto* ls = session->add_subcommand("ls", "List the live sessions (a table, or --json)");
  add_target(ls);
  ls->add_flag("--json", ls_json, "Print the gateway's JSON instead of a table");
  std::vector<std::string> rm_ids;
  auto* rm = session->add_subcommand(
      "rm", "End sessions and close their connections (exit 1 if an id is unknown)");
  add_target(rm);
  rm->add_option("ids", rm_ids, "Session ids")->required();

  CLI11_PARSE(app, argc, argv);

  if (create->parsed()) {
    for (const auto& kv : labels) {
      size_t eq = kv.find('=');
      create_args.labels[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    return airlock::ctl::RunSessionCreate(target, create_args, std::cout, std::cerr);
  }
  if (ls->parsed()) return airlock::ctl::RunSessionList(target, ls_json, std::cout, std::cerr);
  if (rm->parsed()) return airlock::ctl::RunSessionRemove(target, rm_ids, std::cout, std::cerr);

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
