// Small helpers on the policy model.
#include "gateway/policy/policy.h"

namespace airlock::policy {

bool PortsContain(const std::vector<PortRange>& ports, uint16_t port) {
  for (const auto& r : ports) {
    if (r.Contains(port)) return true;
  }
  return false;
}

std::string_view ProtocolName(Protocol protocol) {
  switch (protocol) {
    case Protocol::kTls:
      return "tls";
    case Protocol::kHttp:
      return "http";
    case Protocol::kTcp:
      return "tcp";
  }
  return "tls";
}

std::optional<Protocol> ParseProtocol(std::string_view text) {
  if (text == "tls") return Protocol::kTls;
  if (text == "http") return Protocol::kHttp;
  if (text == "tcp") return Protocol::kTcp;
  return std::nullopt;
}

}  // namespace airlock::policy
