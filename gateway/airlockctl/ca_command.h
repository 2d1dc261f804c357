// `airlockctl ca export`: the operator's way to get the certificate sandboxes must trust for
// inspected TLS. Reads airlock.yaml; prints the CA certificate (PEM) and nothing secret. When
// the gateway has not generated its CA yet, generates it where the gateway will find it.
// Single-threaded.
#pragma once

#include <ostream>
#include <string>

namespace airlock::ctl {

// 0, or 1 with the reason on `err`.
int RunCaExport(const std::string& config_path, std::ostream& out, std::ostream& err);

}  // namespace airlock::ctl
