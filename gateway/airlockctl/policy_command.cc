// `airlockctl policy` subcommands.
#include "gateway/airlockctl/policy_command.h"

#include "gateway/config/gateway_config.h"
#include "gateway/policy/policy_loader.h"
#include "gateway/policy/policy_test.h"

namespace airlock::ctl {

int RunPolicyCheck(const PolicyCheckArgs& args, std::ostream& out, std::ostream& err) {
  config::Diagnostics diags;
  policy::LoadOptions options;
  if (!args.credentials.empty()) options.known_credentials = args.credentials;
  if (!args.config.empty()) {
    auto gateway = config::LoadGatewayConfig(args.config, &diags);
    if (!gateway) {
      err << diags.ToString();
      return 1;
    }
    auto names = config::CredentialNames(*gateway);
    if (!options.known_credentials) options.known_credentials.emplace();
    options.known_credentials->insert(names.begin(), names.end());
  }
  auto set = policy::LoadPolicySet(args.paths, options, &diags);
  if (!set) {
    err << diags.ToString();
    err << diags.size() << (diags.size() == 1 ? " error" : " errors") << "\n";
    return 1;
  }
  for (const auto& name : set->Names()) {
    const policy::Policy& p = set->Find(name)->policy();
    out << "ok   " << p.source << ": policy '" << p.name << "', " << p.egress.size()
        << " egress rule(s), " << p.private_ranges.size() << " private range(s), mode "
        << (p.mode == policy::Mode::kReport ? "report" : "enforce") << "\n";
  }
  if (set->size() == 0) {
    err << "no policy files found\n";
    return 1;
  }
  if (!options.known_credentials) {
    out << "note: credential names were not checked (pass --config airlock.yaml or --credentials "
           "NAME,...)\n";
  }
  return 0;
}

int RunPolicyTest(const std::vector<std::string>& paths, std::ostream& out, std::ostream& err) {
  config::Diagnostics diags;
  int passed = 0;
  int failed = 0;
  for (const auto& path : policy::ListPolicyTestFiles(paths, &diags)) {
    auto file = policy::LoadPolicyTestFile(path, &diags);
    if (!file) {
      ++failed;
      continue;
    }
    auto loaded = policy::LoadPolicyFile(file->policy_file, policy::LoadOptions{}, &diags);
    if (!loaded) {
      failed += static_cast<int>(file->cases.size());
      continue;
    }
    std::string name = loaded->name;
    std::vector<policy::Policy> one;
    one.push_back(std::move(*loaded));
    policy::PolicySet set = policy::PolicySet::Build(std::move(one));
    for (const auto& o : policy::RunPolicyTests(*file, set, name)) {
      const auto& c = *o.test;
      if (o.passed) {
        ++passed;
        out << "PASS " << path << ":" << c.line << ": " << c.name << "\n";
      } else {
        ++failed;
        out << "FAIL " << path << ":" << c.line << ": " << c.name << ": expected "
            << policy::DescribeOutcome(
                   c.expect, c.reason,
                   c.rule ? std::optional<std::string_view>(*c.rule) : std::nullopt)
            << ", got " << o.got << "\n";
      }
    }
  }
  if (!diags.empty()) err << diags.ToString();
  if (passed + failed == 0) {
    err << "no policy tests found\n";
    return 1;
  }
  out << passed << " passed, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}

}  // namespace airlock::ctl
