// `airlockctl ca export` (see ca_command.h).
#include "gateway/airlockctl/ca_command.h"

#include "gateway/config/gateway_config.h"
#include "gateway/tls/certificate_authority.h"

namespace airlock::ctl {

int RunCaExport(const std::string& config_path, std::ostream& out, std::ostream& err) {
  config::Diagnostics diags;
  auto c = config::LoadGatewayConfig(config_path, &diags);
  if (!c) {
    err << diags.ToString();
    return 1;
  }
  auto ca = tls::CertificateAuthority::LoadOrCreate({c->tls_ca_cert, c->tls_ca_key, c->state_dir});
  if (!ca.ok()) {
    err << "airlockctl: " << ca.status().message() << "\n";
    return 1;
  }
  out << ca.value()->certificate_pem();
  return 0;
}

}  // namespace airlock::ctl
