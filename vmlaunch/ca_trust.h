// CA trust for sandboxes: the gateway's CA certificate (fetched from its control API), the
// bundle a sandbox trusts (ca_bundle.h: system roots, any CA an image already had, the gateway's
// CA), and the
// five variables that point TLS clients at that bundle. Both backends use it: the netns backend
// writes the bundle to a per-sandbox file on the host, the microVM session puts it into the guest
// through the agent. Plain functions; no threads, no state.
#pragma once

#include <array>
#include <initializer_list>
#include <map>
#include <ostream>
#include <string>
#include <string_view>

#include "gateway/base/status.h"
#include "gateway/control/control_client.h"
#include "vmlaunch/guest/ca_bundle.h"
#include "vmlaunch/vm/agent_client.h"

namespace airlock::vmlaunch {

// The variables OpenSSL, Python requests, Node, git and curl read for their trusted CAs.
inline constexpr std::array<std::string_view, 5> kCaTrustVariables = {
    "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO",
    "CURL_CA_BUNDLE"};

// Points each of kCaTrustVariables at `bundle_path`, except those `env` already has (a variable
// the user set explicitly wins).
void AddCaTrustEnv(const std::string& bundle_path, std::map<std::string, std::string>* env);

// The gateway's CA through `control`: the PEM, or "" when the gateway has no /v1/ca (an older
// gateway answers 404), which is said once on `log`. Any other failure is an error.
Result<std::string> FetchGatewayCa(control::ControlClient& control, std::ostream& log);

// Has a microVM's agent put the bundle for `gateway_ca` at kGuestCaPath: the guest's own system
// roots (the host's if it has none), the CA its image was built with (`--ca-cert`), the
// gateway's CA. Only the gateway's CA is sent, unless the guest lacks roots.
Status InstallGuestCa(AgentClient& agent, const std::string& gateway_ca);

}  // namespace airlock::vmlaunch
