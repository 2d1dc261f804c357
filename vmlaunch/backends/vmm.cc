// MakeVmm: the backend by name.
#include "vmlaunch/backends/vmm.h"

#include "vmlaunch/backends/firecracker_backend.h"
#include "vmlaunch/backends/qemu_backend.h"

namespace airlock::vmlaunch {

Result<std::unique_ptr<Vmm>> MakeVmm(const std::string& backend) {
  if (backend == "qemu") return std::unique_ptr<Vmm>(new QemuVmm());
  if (backend == "firecracker") return std::unique_ptr<Vmm>(new FirecrackerVmm());
  return Status::Error("unknown backend '" + backend + "' (qemu, firecracker or netns)");
}

}  // namespace airlock::vmlaunch
