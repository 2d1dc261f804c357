// vmlaunch: the sandbox launcher. So far its network plumbing: `vmlaunch net install|uninstall`
// manages the host's `inet airlock` nftables table, `vmlaunch net add-link|remove-link` a session
// link's elements in it. The netns and microVM backends build on these (issues 4 and 5).
#include <CLI/CLI.hpp>

#include <iostream>

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
  auto* remove = net->add_subcommand("remove-link", "Unregister a session link");
  remove->add_option("iface", iface)->required();
  remove->add_option("address", address)->required();
  CLI11_PARSE(app, argc, argv);

  airlock::vmnet::NftTable table;
  airlock::Status status;
  if (install->parsed()) {
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
