// The QEMU backend: machine `microvm` (no PCI, no firmware, PVH boot of the ELF vmlinux),
// virtio-mmio devices: a NIC on the session's tap, a virtio-serial port named "airlock.agent"
// for the guest agent, and optionally the root disk, read-only. The launcher listens on the
// agent socket before QEMU starts and QEMU connects to it, so the agent's first words are never
// lost. A QMP socket serves snapshots: a VM restored from one starts with `-incoming defer` and
// its state is loaded over QMP (QmpClient). One instance per VM; not thread-safe.
#pragma once

#include <string>
#include <vector>

#include "vmlaunch/backends/vmm.h"

namespace airlock::vmlaunch {

// The complete command line (pure; unit-tested).
std::vector<std::string> QemuArgv(const VmSpec& spec, const std::string& agent_socket);
std::string QemuBinary();

class QemuVmm : public Vmm {
 public:
  ~QemuVmm() override;
  std::string name() const override { return "qemu"; }
  Result<pid_t> Launch(const VmSpec& spec) override;
  Result<int> ConnectAgent(const VmSpec& spec, std::chrono::milliseconds timeout) override;
  Status Save(const VmSpec& spec, const std::string& state_path) override;

 private:
  int listen_fd_ = -1;
};

}  // namespace airlock::vmlaunch
