// Session links on the host: a veth pair into a network namespace (netns backend) or a tap
// device for a microVM, each with the gateway address of its /30. Links are made with iproute2
// (each step has an exact undo: deleting the link). Not thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "gateway/base/status.h"
#include "gateway/net/ip_address.h"

namespace airlock::vmnet {

// A veth pair: `host_if` on the host with `gateway`/30, `eth0` in `netns` with `guest`/30 and a
// default route via the gateway.
Status CreateVethLink(const std::string& host_if, const std::string& netns,
                      const net::IpAddress& gateway, const net::IpAddress& guest);
// A persistent tap device `name` with `gateway`/30, for a VMM to attach to; with no gateway, a
// bare tap (no address, down) for a VM that has no network yet.
Status CreateTapLink(const std::string& name, const std::optional<net::IpAddress>& gateway);
// Gives a bare tap `gateway`/30 and brings it up.
Status AddressTapLink(const std::string& name, const net::IpAddress& gateway);
Status DeleteLink(const std::string& name);

}  // namespace airlock::vmnet
