// The probe: boot the image under KVM without a network and wait for the agent's greeting.
#include "vmlaunch/vm/accel.h"

#include <unistd.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "vmlaunch/backends/qemu_backend.h"
#include "vmlaunch/process/process.h"
#include "vmlaunch/process/read_file.h"
#include "vmlaunch/vm/agent_client.h"

namespace airlock::vmlaunch {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr auto kProbeTimeout = std::chrono::seconds(12);

// True if a guest booted to its agent under KVM.
bool ProbeKvm(const Image& image, const std::string& state_dir, std::string* why) {
  VmSpec spec;
  spec.id = "accel-probe-" + std::to_string(getpid());
  spec.dir = state_dir + "/" + spec.id;
  spec.kernel = image.kernel;
  spec.initrd = image.initrd;
  spec.memory_mib = 256;
  spec.accel = "kvm";
  fs::create_directories(spec.dir);
  QemuVmm vmm;
  bool ok = false;
  auto pid = vmm.Launch(spec);
  if (!pid.ok()) {
    *why = pid.status().message();
  } else {
    auto fd = vmm.ConnectAgent(spec, std::chrono::milliseconds(5000));
    if (fd.ok()) {
      AgentClient agent(*fd);
      auto ready = agent.WaitReady(kProbeTimeout);
      ok = ready.ok();
      if (ok) (void)agent.Shutdown();
    }
    if (!ok) {
      const std::string vmm_log = ReadFile(spec.dir + "/vmm.log");
      *why = "a guest did not boot under KVM within " + std::to_string(kProbeTimeout.count()) +
             " s" + (vmm_log.empty() ? "" : " (QEMU: " + vmm_log.substr(0, 200) + ")");
    }
    TerminateProcess(*pid, std::chrono::milliseconds(1000));
  }
  std::error_code ec;
  fs::remove_all(spec.dir, ec);
  return ok;
}

}  // namespace

Result<std::string> ResolveAccel(const std::string& requested, const Image& image,
                                 const std::string& state_dir, std::ostream& log) {
  if (requested == "tcg") return std::string("tcg");
  const bool have_kvm = ::access("/dev/kvm", R_OK | W_OK) == 0;
  if (requested == "kvm") {
    if (!have_kvm) return Status::Error("--accel kvm: /dev/kvm is missing or not accessible");
    return std::string("kvm");
  }
  if (requested != "auto") return Status::Error("--accel must be auto, kvm or tcg");
  if (!have_kvm) {
    log << "vmlaunch: no usable /dev/kvm; using TCG (software emulation)\n";
    return std::string("tcg");
  }
  const std::string cache = state_dir + "/accel.json";
  {
    auto j = json::parse(ReadFile(cache), nullptr, false);
    if (j.is_object() && j.value("image", "") == image.key) {
      std::string accel = j.value("accel", "tcg");
      if (accel == "tcg") {
        log << "vmlaunch: using TCG: " << j.value("reason", "") << " (probed earlier; " << cache
            << ")\n";
      }
      return accel;
    }
  }
  log << "vmlaunch: probing KVM with a test boot (once; the answer is kept in " << cache << ")\n";
  std::string why;
  const bool kvm = ProbeKvm(image, state_dir, &why);
  if (!kvm) {
    log << "vmlaunch: /dev/kvm is present but " << why << "; falling back to TCG\n";
  }
  std::ofstream(cache) << json{{"image", image.key},
                               {"accel", kvm ? "kvm" : "tcg"},
                               {"reason", kvm ? "" : why}}
                              .dump()
                       << "\n";
  return std::string(kvm ? "kvm" : "tcg");
}

}  // namespace airlock::vmlaunch
