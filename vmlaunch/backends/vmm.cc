// MakeVmm: the backend by name.
#include "vmlaunch/backends/vmm.h"

#include "vmlaunch/backends/firecracker_backend.h"
#include "vmlaunch/backends/qemu_backend.h"

namespace airlock::vmlaunch {

std::string KernelCommandLine(const VmSpec& s, const std::string& vmm_args) {
  std::string line = "console=ttyS0";
  if (!s.verbose_console) line += " quiet";
  line += " panic=-1 " + vmm_args;
  if (s.accel != "kvm" && s.tsc_khz > 0) line += " tsc_early_khz=" + std::to_string(s.tsc_khz);
  return line + " " + s.kernel_args;
}

Result<std::unique_ptr<Vmm>> MakeVmm(const std::string& backend) {
  if (backend == "qemu") return std::unique_ptr<Vmm>(new QemuVmm());
  if (backend == "firecracker") return std::unique_ptr<Vmm>(new FirecrackerVmm());
  return Status::Error("unknown backend '" + backend + "' (qemu, firecracker or netns)");
}

}  // namespace airlock::vmlaunch
