// NftTable: the host firewall that makes the gateway a sandbox's only way out. One table,
// `inet airlock`, applied atomically through libnftables:
//   - set `ifaces` (the host side of every session link) and set `links` (interface . guest
//     address pairs): a packet from a session link whose source is not that link's address is
//     dropped (anti-spoofing), and so is all IPv6 from session links;
//   - DNS (UDP and TCP 53) is redirected to the gateway's responder, TCP to the proxy port is
//     accepted, every other TCP connection is redirected to the transparent listener;
//   - from session links the host accepts only those ports and ICMP echo to the link's own
//     gateway address; everything else (other UDP, other ICMP, the host's other addresses) is
//     dropped, and nothing is forwarded to or from them.
// Sets keep the rule count constant as sessions come and go. With the gateway down the rules
// stay, so sandboxes reach nothing (fail closed). Not thread-safe; one instance per command.
#pragma once

#include <cstdint>
#include <string>

#include "gateway/base/status.h"
#include "gateway/net/ip_address.h"

struct nft_ctx;  // libnftables

namespace airlock::vmnet {

struct GatewayPorts {
  uint16_t proxy = 3128;
  uint16_t transparent = 15001;
  uint16_t dns = 15053;
};

// The ruleset as nft text. Idempotent: existing sets (and their elements) are kept, the chains
// are replaced.
std::string RulesetText(const GatewayPorts& ports);

class NftTable {
 public:
  NftTable();
  ~NftTable();
  NftTable(const NftTable&) = delete;
  NftTable& operator=(const NftTable&) = delete;

  Status Install(const GatewayPorts& ports);
  Status Uninstall();
  // Adds or removes one session link: its host-side interface and the guest's address.
  Status AddLink(const std::string& iface, const net::IpAddress& guest);
  Status RemoveLink(const std::string& iface, const net::IpAddress& guest);

 private:
  Status Run(const std::string& commands);
  ::nft_ctx* ctx_;
};

}  // namespace airlock::vmnet
