// CA trust for sandboxes: fetching the gateway's CA, the guest's bundle, the environment.
#include "vmlaunch/ca_trust.h"

#include "vmlaunch/process/read_file.h"

namespace airlock::vmlaunch {

void AddCaTrustEnv(const std::string& bundle_path, std::map<std::string, std::string>* env) {
  for (std::string_view name : kCaTrustVariables) env->try_emplace(std::string(name), bundle_path);
}

Result<std::string> FetchGatewayCa(control::ControlClient& control, std::ostream& log) {
  auto ca = control.GetCaCertificate();
  if (!ca.ok()) return ca.status();
  if (ca->empty()) {
    log << "vmlaunch: the gateway offers no CA certificate (GET /v1/ca: 404, a gateway without "
           "TLS inspection); the sandbox gets no CA trust from it\n";
  }
  return ca;
}

Status InstallGuestCa(AgentClient& agent, const std::string& gateway_ca) {
  // The guest assembles the bundle from what it has: only the gateway's CA crosses the channel,
  // unless the guest has no roots of its own (the host's go then).
  auto had_roots = agent.Trust(gateway_ca, std::nullopt);
  if (had_roots.ok() && !*had_roots) {
    had_roots = agent.Trust(gateway_ca, ReadFile(std::string(kSystemRoots)));
  }
  if (!had_roots.ok()) {
    return Status::Error("cannot put the CA bundle into the guest: " +
                         had_roots.status().message());
  }
  return Status::Ok();
}

}  // namespace airlock::vmlaunch
