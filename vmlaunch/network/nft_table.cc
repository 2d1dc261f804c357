// The airlock nftables table through libnftables.
#include "vmlaunch/network/nft_table.h"

#include <nftables/libnftables.h>

#include <cstdlib>

namespace airlock::vmnet {
namespace {

bool ValidIfname(const std::string& s) {
  if (s.empty() || s.size() > 15) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string RulesetText(const GatewayPorts& p) {
  const std::string proxy = std::to_string(p.proxy);
  const std::string transparent = std::to_string(p.transparent);
  const std::string dns = std::to_string(p.dns);
  return "add table inet airlock\n"
         "add set inet airlock ifaces { type ifname; }\n"
         "add set inet airlock links { type ifname . ipv4_addr; }\n"
         "add chain inet airlock guard { type filter hook prerouting priority raw; }\n"
         "add chain inet airlock capture { type nat hook prerouting priority dstnat; }\n"
         "add chain inet airlock input { type filter hook input priority filter; }\n"
         "add chain inet airlock forward { type filter hook forward priority filter; }\n"
         "flush chain inet airlock guard\n"
         "flush chain inet airlock capture\n"
         "flush chain inet airlock input\n"
         "flush chain inet airlock forward\n"
         // Anti-spoofing and IPv6, before connection tracking.
         "add rule inet airlock guard iifname @ifaces meta nfproto ipv6 counter drop\n"
         "add rule inet airlock guard iifname @ifaces iifname . ip saddr != @links counter drop\n"
         // DNS to the responder; the explicit proxy as is; all other TCP to the transparent
         // listener.
         "add rule inet airlock capture iifname @ifaces meta l4proto { tcp, udp } th dport 53 "
         "redirect to :" +
         dns +
         "\n"
         "add rule inet airlock capture iifname @ifaces tcp dport " +
         proxy +
         " fib daddr . iif type local accept\n"
         "add rule inet airlock capture iifname @ifaces meta l4proto tcp redirect to :" +
         transparent +
         "\n"
         // The host accepts only the gateway's ports (and ping) from session links.
         "add rule inet airlock input iifname @ifaces ct state established,related accept\n"
         "add rule inet airlock input iifname @ifaces tcp dport { " +
         proxy + ", " + transparent + ", " + dns +
         " } accept\n"
         "add rule inet airlock input iifname @ifaces udp dport " +
         dns +
         " accept\n"
         // Ping only the link's own gateway address, not the host's other addresses.
         "add rule inet airlock input iifname @ifaces icmp type echo-request "
         "fib daddr . iif type local accept\n"
         "add rule inet airlock input iifname @ifaces counter drop\n"
         // Nothing is routed to or from a session link.
         "add rule inet airlock forward iifname @ifaces counter drop\n"
         "add rule inet airlock forward oifname @ifaces drop\n";
}

NftTable::NftTable() : ctx_(nft_ctx_new(NFT_CTX_DEFAULT)) {
  if (!ctx_) std::abort();
  nft_ctx_buffer_output(ctx_);
  nft_ctx_buffer_error(ctx_);
}

NftTable::~NftTable() { nft_ctx_free(ctx_); }

Status NftTable::Run(const std::string& commands) {
  if (nft_run_cmd_from_buffer(ctx_, commands.c_str()) != 0) {
    const char* err = nft_ctx_get_error_buffer(ctx_);
    return Status::Error(std::string("nftables: ") + (err ? err : "failed"));
  }
  return Status::Ok();
}

Status NftTable::Install(const GatewayPorts& ports) { return Run(RulesetText(ports)); }

Status NftTable::Uninstall() {
  // add-then-delete in one transaction: idempotent on nftables without `destroy`.
  return Run("add table inet airlock\ndelete table inet airlock\n");
}

Status NftTable::AddLink(const std::string& iface, const net::IpAddress& guest) {
  if (!ValidIfname(iface)) return Status::Error("invalid interface name '" + iface + "'");
  if (!guest.is_v4()) return Status::Error("session links carry IPv4 only");
  return Run("add element inet airlock ifaces { \"" + iface + "\" }\n" +
             "add element inet airlock links { \"" + iface + "\" . " + guest.ToString() + " }\n");
}

Status NftTable::RemoveLink(const std::string& iface, const net::IpAddress& guest) {
  if (!ValidIfname(iface)) return Status::Error("invalid interface name '" + iface + "'");
  return Run("delete element inet airlock links { \"" + iface + "\" . " + guest.ToString() +
             " }\n" + "delete element inet airlock ifaces { \"" + iface + "\" }\n");
}

}  // namespace airlock::vmnet
