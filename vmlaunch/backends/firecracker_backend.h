// The Firecracker backend: a generated config file (boot source, machine config, one NIC on the
// session's tap, vsock for the agent, the root disk read-only), the API socket, and a
// jailer-friendly layout: every file the VM needs is linked into <dir>/root and named relative
// to it, and Firecracker runs with that directory as its working directory, so the jailer can
// chroot there unchanged. The agent listens on vsock port 1024; the host reaches it through
// Firecracker's vsock unix socket with "CONNECT 1024". One instance per VM; not thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "vmlaunch/backends/vmm.h"

namespace airlock::vmlaunch {

constexpr unsigned kAgentVsockPort = 1024;
constexpr unsigned kGuestCid = 3;

// The --config-file document for `spec` (pure; unit-tested against the documented format).
nlohmann::json FirecrackerConfig(const VmSpec& spec);
std::string FirecrackerBinary();

class FirecrackerVmm : public Vmm {
 public:
  std::string name() const override { return "firecracker"; }
  Result<pid_t> Launch(const VmSpec& spec) override;
  Result<int> ConnectAgent(const VmSpec& spec, std::chrono::milliseconds timeout) override;
  // Not yet: snapshots and standby are QEMU's for now.
  Status Save(const VmSpec& spec, const std::string& state_path) override;
};

}  // namespace airlock::vmlaunch
