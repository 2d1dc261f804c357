// Vmm: the seam between the VM lifecycle (vmlaunch/vm) and a virtual machine monitor. A backend
// turns a VmSpec into a running VMM process and hands back a connected stream to the guest
// agent. QEMU (microvm) and Firecracker implement it. Backends own no lifecycle state beyond the
// one VM they start; one instance per VM, one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gateway/base/status.h"

namespace airlock::vmlaunch {

struct VmSpec {
  std::string id;      // the VM's name, unique on the host
  std::string dir;     // its state directory (sockets, logs, config); 0700
  std::string kernel;  // ELF vmlinux
  std::string initrd;
  std::string rootfs;       // an ext4 image attached read-only, or ""
  std::string tap;          // the host tap device
  std::string mac;          // the guest's MAC address
  std::string kernel_args;  // appended to the console and panic settings
  int memory_mib = 512;
  int vcpus = 1;
  std::string accel = "tcg";     // "kvm" or "tcg" (QEMU); Firecracker always uses KVM
  bool verbose_console = false;  // the guest kernel's boot messages in console.log
  int64_t tsc_khz = 0;           // the host's TSC rate for a TCG guest's kernel (0: it calibrates)
  std::vector<std::string> cgroup_procs;  // cgroups the VMM joins before it starts
  // Guest memory in a file rather than anonymous memory: shared (a snapshot's template writes
  // its memory there) or a private copy-on-write mapping (VMs restored from that snapshot share
  // its pages until they write them).
  std::string memory_file;
  bool memory_shared = false;
  // Guest memory as the named object a restored VM's saved state expects, without a file (a VM
  // restored from a snapshot and then resumed from standby: its memory is all in the state, and
  // the snapshot may have been replaced meanwhile).
  bool memory_named = false;
  // Restore instead of boot: the saved state to load, and whether the memory it needs is the
  // memory file's (a snapshot) rather than in the state itself (a VM put on standby).
  std::string restore_state;
  bool restore_memory_from_file = false;
};

class Vmm {
 public:
  virtual ~Vmm() = default;
  virtual std::string name() const = 0;
  // Starts the VMM; its pid.
  virtual Result<pid_t> Launch(const VmSpec& spec) = 0;
  // A connected stream to the guest agent (ownership passes to the caller). Waits until the VMM
  // is ready for it, up to `timeout`.
  virtual Result<int> ConnectAgent(const VmSpec& spec, std::chrono::milliseconds timeout) = 0;
  // Saves the running VM to `state_path` (its memory too, unless it lives in the spec's shared
  // memory file: in the state itself, or beside it at SavedMemoryPath); the VM is paused
  // afterwards and the VMM can be stopped.
  virtual Status Save(const VmSpec& spec, const std::string& state_path) = 0;
};

// Where a backend that keeps a saved VM's memory apart from its state (Firecracker) puts it.
// Whoever removes a saved state removes this file too.
inline std::string SavedMemoryPath(const std::string& state_path) { return state_path + ".memory"; }

// The guest kernel's command line: serial console (quiet unless verbose_console), no reboot
// loop on panic, then the VMM's own `vmm_args`, the host's TSC rate when the spec carries one
// and the guest runs under TCG (see host_tsc.h), and the session's arguments.
std::string KernelCommandLine(const VmSpec& spec, const std::string& vmm_args);

// "qemu" or "firecracker".
Result<std::unique_ptr<Vmm>> MakeVmm(const std::string& backend);

}  // namespace airlock::vmlaunch
