// vmlaunch: the sandbox launcher. `vmlaunch run --backend netns --policy P -- CMD` runs CMD in a
// sandbox whose only way out is airlock-gateway. `vmlaunch net install|uninstall` manages the
// host's `inet airlock` nftables table, `vmlaunch net add-link|remove-link` a link's elements in
// it. The microVM backends come next (issue 5).
#include <CLI/CLI.hpp>

#include <iostream>

#include "vmlaunch/backends/netns_backend.h"
#include "vmlaunch/network/link.h"
#include "vmlaunch/network/nft_table.h"

int main(int argc, char** argv) {
  CLI::App app{"vmlaunch: sandboxes whose only way out is airlock-gateway"};
  app.require_subcommand(1);
  auto* net = app.add_subcommand("net", "The host firewall for sandbox links (nftables)");
  net->require_subcommand(1);

  airlock::vmnet::GatewayPorts ports;
  auto* install = net->add_subcommand("install", "Install or refresh the airlock table");
  install->add_option("--proxy-port", ports.proxy)->capture_default_str();
  install->add_option("--transparent-port", ports.transparent)->capture_default_str();
  install->add_option("--dns-port", ports.dns)->capture_default_str();
  auto* uninstall = net->add_subcommand("uninstall", "Remove the airlock table");
  std::string iface, address;
  auto* add = net->add_subcommand("add-link", "Register a session link (interface, guest IPv4)");
  add->add_option("iface", iface)->required();
  add->add_option("address", address)->required();
  std::string gateway_address;
  auto* add_tap = net->add_subcommand("add-tap",
                                      "Create a tap link for a microVM, with the "
                                      "gateway address of its /30");
  add_tap->add_option("iface", iface)->required();
  add_tap->add_option("gateway", gateway_address)->required();
  auto* del_link = net->add_subcommand("del-link", "Delete a link (tap or veth)");
  del_link->add_option("iface", iface)->required();
  auto* remove = net->add_subcommand("remove-link", "Unregister a session link");
  remove->add_option("iface", iface)->required();
  remove->add_option("address", address)->required();
  airlock::vmlaunch::NetnsRunOptions run_opts;
  std::string backend = "netns";
  int64_t ttl = 3600;
  auto* run = app.add_subcommand("run",
                                 "Run a command in a sandbox, print its output, exit with "
                                 "its status, tear everything down");
  run->add_option("--backend", backend, "netns (qemu and firecracker: not built yet)")
      ->capture_default_str();
  run->add_option("--policy", run_opts.policy, "The gateway policy for the session")->required();
  run->add_option("--control", run_opts.control_socket, "The gateway's control socket")
      ->capture_default_str();
  run->add_option("--state-dir", run_opts.state_dir, "Where leases live")->capture_default_str();
  run->add_option("--pool", run_opts.pool, "Address range, a /30 per sandbox")
      ->capture_default_str();
  run->add_option("--proxy-port", run_opts.proxy_port, "The gateway's proxy port")
      ->capture_default_str();
  run->add_option("--ttl", ttl, "Session lifetime in seconds")->capture_default_str();
  run->add_option("--env", run_opts.env, "Extra environment, K=V (repeatable)");
  run->add_option("command", run_opts.argv, "The command (after --)")->required();
  CLI11_PARSE(app, argc, argv);

  if (run->parsed()) {
    if (backend != "netns") {
      std::cerr << "vmlaunch: backend '" << backend << "' is not built yet; use --backend netns\n";
      return 2;
    }
    run_opts.ttl = std::chrono::seconds(ttl);
    auto rc = airlock::vmlaunch::RunInNetns(run_opts);
    if (!rc.ok()) {
      std::cerr << "vmlaunch: " << rc.status().message() << "\n";
      return 125;
    }
    return rc.value();
  }

  airlock::vmnet::NftTable table;
  airlock::Status status;
  if (add_tap->parsed()) {
    auto gw = airlock::net::IpAddress::Parse(gateway_address);
    status = gw ? airlock::vmnet::CreateTapLink(iface, *gw)
                : airlock::Status::Error("'" + gateway_address + "' is not an IP address");
  } else if (del_link->parsed()) {
    status = airlock::vmnet::DeleteLink(iface);
  } else if (install->parsed()) {
    status = table.Install(ports);
  } else if (uninstall->parsed()) {
    status = table.Uninstall();
  } else {
    auto addr = airlock::net::IpAddress::Parse(address);
    if (!addr) {
      std::cerr << "vmlaunch: '" << address << "' is not an IP address\n";
      return 2;
    }
    status = add->parsed() ? table.AddLink(iface, *addr) : table.RemoveLink(iface, *addr);
  }
  if (!status.ok()) {
    std::cerr << "vmlaunch: " << status.message() << "\n";
    return 1;
  }
  return 0;
}
