// The Firecracker backend: a generated config file (boot source, machine config, one NIC on the
// session's tap, vsock for the agent, the root disk read-only), the API socket, and a
// jailer-friendly layout: every file the VM needs is linked into <dir>/root and named relative
// to it, and Firecracker runs with that directory as its working directory, so the jailer can
// chroot there unchanged. The agent listens on vsock port 1024; the host reaches it through
// Firecracker's vsock unix socket with "CONNECT 1024". Snapshots and standby use Firecracker's
// API socket: pause, then a full snapshot (state and memory files); a restore starts Firecracker
// with no configuration and loads the snapshot, its memory file mapped privately (the pages are
// shared between VMs until written) and its NIC moved to the new VM's tap. The calls are built
// by pure functions, unit-tested against the API's documented fields. One instance per VM; not
// thread-safe.
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

// One request to Firecracker's API socket.
struct FirecrackerCall {
  std::string method;
  std::string path;
  nlohmann::json body;
};
// PATCH /vm: pauses the VM (a snapshot is taken of a paused VM only).
FirecrackerCall FirecrackerPause();
// PUT /snapshot/create: a full snapshot, the VM's state to `state_path` and its memory to
// `memory_path`.
FirecrackerCall FirecrackerSnapshotCreate(const std::string& state_path,
                                          const std::string& memory_path);
// PUT /snapshot/load: the state and a private mapping of the memory file, the NIC "eth0" on
// `tap` (the snapshot names the template's), and the VM running once loaded (Firecracker 1.12
// or later: network_overrides).
FirecrackerCall FirecrackerSnapshotLoad(const std::string& state_path,
                                        const std::string& memory_path, const std::string& tap);

class FirecrackerVmm : public Vmm {
 public:
  std::string name() const override { return "firecracker"; }
  Result<pid_t> Launch(const VmSpec& spec) override;
  Result<int> ConnectAgent(const VmSpec& spec, std::chrono::milliseconds timeout) override;
  Status Save(const VmSpec& spec, const std::string& state_path) override;
};

// Sends `call` to the API socket of the VM in `vm_dir`: OK for a 2xx answer, else an error
// with Firecracker's fault_message (kNotFound: nothing listens on the socket yet).
Status CallFirecracker(const std::string& vm_dir, const FirecrackerCall& call,
                       std::chrono::milliseconds timeout);

}  // namespace airlock::vmlaunch
