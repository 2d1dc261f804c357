// CA trust for sandboxes: fetching the gateway's CA, assembling the bundle, the environment.
#include "vmlaunch/ca_trust.h"

#include <algorithm>
#include <vector>

#include "vmlaunch/process/read_file.h"

namespace airlock::vmlaunch {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == '\n' || s.front() == '\r' || s.front() == ' ')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

void AddCaTrustEnv(const std::string& bundle_path, std::map<std::string, std::string>* env) {
  for (std::string_view name : kCaTrustVariables) env->try_emplace(std::string(name), bundle_path);
}

std::string CaBundle(std::initializer_list<std::string_view> parts) {
  std::string bundle;
  std::vector<std::string_view> seen;
  for (std::string_view part : parts) {
    part = Trim(part);
    if (part.empty() || std::find(seen.begin(), seen.end(), part) != seen.end()) continue;
    seen.push_back(part);
    bundle.append(part);
    bundle += '\n';
  }
  return bundle;
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

Status InstallGuestCa(AgentClient& agent, const std::string& gateway_ca,
                      const std::string& guest_root) {
  const std::string ca_path = guest_root + std::string(kGuestCaPath);
  auto guest_roots = agent.Get(guest_root + std::string(kSystemRoots));
  auto baked = agent.Get(ca_path);
  const std::string roots = guest_roots.ok() ? *guest_roots : ReadFile(std::string(kSystemRoots));
  Status s = agent.Put(ca_path, CaBundle({roots, baked.ok() ? *baked : "", gateway_ca}), 0644);
  if (!s.ok()) return Status::Error("cannot put the CA bundle into the guest: " + s.message());
  return Status::Ok();
}

}  // namespace airlock::vmlaunch
