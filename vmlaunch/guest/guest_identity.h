// GuestIdentity: what makes one guest this session's: its hostname, eth0's MAC, address and
// default route, the resolver, and the proxy variables every command gets. The guest agent
// applies it at start from the kernel's command line (a cold boot: airlock.ip=, airlock.gw=,
// airlock.hostname=, airlock.proxy=) and on request (`identity`, a VM restored from a snapshot,
// which booted without a network). System calls only (ioctl, sethostname), no helper programs:
// under TCG every fork and exec costs tens of milliseconds. Runs on the agent's thread.
#pragma once

#include <map>
#include <string>

#include "gateway/base/status.h"

namespace airlock::vmlaunch {

struct GuestIdentity {
  std::string hostname;
  std::string address;  // "A.B.C.D/N", "" for no network
  std::string gateway;
  std::string proxy;  // http://gateway:port, "" for none
  std::string mac;    // "" keeps the device's
};

// Reads airlock.ip, airlock.gw, airlock.hostname and airlock.proxy from a kernel command line.
GuestIdentity IdentityFromCommandLine(const std::string& cmdline);

// The proxy variables for `proxy` (none if it is empty).
std::map<std::string, std::string> ProxyEnvironment(const std::string& proxy);

// Mixes `seed` into the kernel's input pool and makes the CRNG reseed from it at once
// (RNDADDENTROPY, RNDRESEEDCRNG), so that VMs restored from one snapshot part ways before
// anything reads a random byte.
Status ReseedRandom(const std::string& seed);

// Brings the loopback device up (the agent does it as it starts: every VM has it, so a snapshot
// carries it up).
Status UpLoopback();

// Applies `id` to this machine: hostname and /etc/hosts, lo up, eth0's MAC (eth0 then up), and
// with an address eth0's address and netmask, the default route and /etc/resolv.conf. `etc` is
// where hosts and resolv.conf go ("/etc" in a guest).
Status ApplyIdentity(const GuestIdentity& id, const std::string& etc);

}  // namespace airlock::vmlaunch
