// airlock-gateway: the egress gateway. `--config airlock.yaml` runs it; `--check-config`
// validates the configuration and the policies it names, prints every error, and exits.
// `--log-level` sets the operator's log threshold (docs/GATEWAY.md, "Operator's log").
#include <CLI/CLI.hpp>

#include <iostream>

#include "gateway/config/gateway_config.h"
#include "gateway/oplog/operator_log.h"
#include "gateway/policy/policy_loader.h"
#include "gateway/server/gateway.h"
#include "gateway/tls/certificate_authority.h"

int main(int argc, char** argv) {
  CLI::App app{"airlock-gateway: egress gateway and credential broker for agent sandboxes"};
  std::string config_path = "/etc/airlock/airlock.yaml";
  bool check = false;
  app.add_option("-c,--config", config_path, "Gateway configuration file")->capture_default_str();
  app.add_flag("--check-config", check, "Validate the configuration and policies, then exit");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "Operator's log threshold: debug, info, warn, error")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  auto level = airlock::oplog::ParseLevel(log_level);
  if (!level) {
    std::cerr << "airlock-gateway: --log-level: '" << log_level
              << "' is not one of debug, info, warn, error\n";
    return 2;
  }
  airlock::oplog::SetLevel(*level);

  airlock::config::Diagnostics diags;
  auto config = airlock::config::LoadGatewayConfig(config_path, &diags);
  if (config) {
    airlock::policy::LoadOptions options;
    options.known_credentials = airlock::config::CredentialNames(*config);
    airlock::policy::LoadPolicySet({config->policy_dir}, options, &diags);
  }
  if (!diags.empty()) {
    std::cerr << diags.ToString() << diags.size() << (diags.size() == 1 ? " error" : " errors")
              << "\n";
    if (!check) {
      airlock::oplog::Log(
          airlock::oplog::Level::kError, "gateway.start_failed",
          {airlock::oplog::F("config", config_path), airlock::oplog::F("errors", diags.size()),
           airlock::oplog::F("error", "invalid configuration or policies")});
    }
    return 1;
  }
  if (check && !config->tls_ca_cert.empty()) {
    // A supplied CA is loaded and checked (key matches, is a CA, key not readable by others);
    // a generated one is made at the first real start, not by a check.
    auto ca = airlock::tls::CertificateAuthority::LoadOrCreate(
        {config->tls_ca_cert, config->tls_ca_key, config->state_dir});
    if (!ca.ok()) {
      std::cerr << config_path << ": tls: " << ca.status().message() << "\n";
      return 1;
    }
  }
  if (check) {
    std::cout << "ok: " << config_path << " and the policies in " << config->policy_dir << "\n";
    return 0;
  }
  auto gateway = airlock::server::Gateway::Create(std::move(*config));
  if (!gateway.ok()) {
    airlock::oplog::Log(airlock::oplog::Level::kError, "gateway.start_failed",
                        {airlock::oplog::F("config", config_path),
                         airlock::oplog::F("error", gateway.status().message())});
    return 1;
  }
  return gateway.value()->Run();
}
