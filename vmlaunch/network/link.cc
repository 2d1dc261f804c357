// Link creation with iproute2.
#include "vmlaunch/network/link.h"

#include "vmlaunch/process/command.h"

namespace airlock::vmnet {

using vmlaunch::RunCommand;

Status CreateVethLink(const std::string& host_if, const std::string& netns,
                      const net::IpAddress& gateway, const net::IpAddress& guest) {
  const std::string gw = gateway.ToString();
  for (const auto& step : std::vector<std::vector<std::string>>{
           {"ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns},
           {"ip", "addr", "add", gw + "/30", "dev", host_if},
           {"ip", "link", "set", host_if, "up"},
           {"ip", "-n", netns, "link", "set", "lo", "up"},
           {"ip", "-n", netns, "addr", "add", guest.ToString() + "/30", "dev", "eth0"},
           {"ip", "-n", netns, "link", "set", "eth0", "up"},
           {"ip", "-n", netns, "route", "add", "default", "via", gw}}) {
    if (Status s = RunCommand(step); !s.ok()) return s;
  }
  return Status::Ok();
}

Status CreateTapLink(const std::string& name, const std::optional<net::IpAddress>& gateway) {
  if (Status s = RunCommand({"ip", "tuntap", "add", "dev", name, "mode", "tap"}); !s.ok()) return s;
  return gateway ? AddressTapLink(name, *gateway) : Status::Ok();
}

Status AddressTapLink(const std::string& name, const net::IpAddress& gateway) {
  for (const auto& step : std::vector<std::vector<std::string>>{
           {"ip", "addr", "add", gateway.ToString() + "/30", "dev", name},
           {"ip", "link", "set", name, "up"}}) {
    if (Status s = RunCommand(step); !s.ok()) return s;
  }
  return Status::Ok();
}

Status DeleteLink(const std::string& name) { return RunCommand({"ip", "link", "del", name}); }

}  // namespace airlock::vmnet
