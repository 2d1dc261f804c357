// The netns backend: runs a command in fresh network, mount, PID and UTS namespaces whose only
// link is a veth to the host, registered in the airlock nftables table, with a gateway session
// for its address. Process-level isolation: the command shares the host's kernel, so it is
// weaker than a microVM (docs/SANDBOX_NETWORK.md). Everything it creates is removed on every
// path, including failures half-way. Single-threaded; one sandbox per call.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "gateway/base/status.h"
#include "gateway/net/ip_address.h"

namespace airlock::vmlaunch {

struct NetnsRunOptions {
  std::string policy;
  std::string control_socket = "/run/airlock/control.sock";
  std::string state_dir = "/run/airlock";
  std::string pool = "100.96.0.0/16";
  uint16_t proxy_port = 3128;
  std::chrono::seconds ttl{3600};
  std::map<std::string, std::string> env;  // the user's variables (--env)
  std::vector<std::string> argv;           // the command
};

// The host side of a sandbox's veth: named after the lease's /30 within the pool.
std::string NetnsHostLink(const net::Cidr& pool, const net::IpAddress& block);

// The sandbox's own files on the host (its CA bundle), readable from inside; removed at teardown
// and by gc.
std::string NetnsFilesDir(const std::string& state_dir, const std::string& netns);

// The command's environment as K=V: the proxy variables, the session, the CA variables pointing
// at `ca_bundle` (none if it is ""), and the user's variables, which win over these; then the
// credentials' placeholders (variable -> placeholder), which win over the user's.
std::vector<std::string> NetnsEnvironment(const std::string& proxy, const std::string& session,
                                          const std::string& ca_bundle,
                                          const std::map<std::string, std::string>& placeholders,
                                          const std::map<std::string, std::string>& user_env);

// Returns the command's exit status (128 + signal if it was killed).
Result<int> RunInNetns(const NetnsRunOptions& options);

}  // namespace airlock::vmlaunch
