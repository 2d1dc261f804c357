// QemuVmm: the argv, a listening agent socket, the process.
#include "vmlaunch/backends/qemu_backend.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "vmlaunch/backends/host_tsc.h"
#include "vmlaunch/backends/qmp_client.h"
#include "vmlaunch/process/process.h"

namespace airlock::vmlaunch {

std::string QemuBinary() { return "qemu-system-x86_64"; }

std::vector<std::string> QemuArgv(const VmSpec& s, const std::string& agent_socket) {
  const bool kvm = s.accel == "kvm";
  std::vector<std::string> argv = {
      QemuBinary(),
      "-name",
      s.id,
      "-machine",
      std::string("microvm,x-option-roms=off,rtc=on") +
          (s.memory_file.empty() && !s.memory_named ? "" : ",memory-backend=mem0"),
      // TCG's translation cache defaults to 1 GiB; 64 MiB is plenty for a guest this size.
      "-accel",
      kvm ? "kvm" : "tcg,tb-size=64",
      "-cpu",
      kvm ? "host" : "max",
      "-m",
      std::to_string(s.memory_mib),
      "-smp",
      std::to_string(s.vcpus),
      "-nodefaults",
      "-no-user-config",
      "-no-reboot",
      "-display",
      "none",
      "-monitor",
      "none",
      "-qmp",
      "unix:" + s.dir + "/qmp.sock,server=on,wait=off",
      "-serial",
      "file:" + s.dir + "/console.log",
      "-kernel",
      s.kernel,
      "-initrd",
      s.initrd,
      "-append",
      KernelCommandLine(s, "reboot=t"),
      "-device",
      "virtio-serial-device",
      "-chardev",
      "socket,id=agent,path=" + agent_socket,
      "-device",
      "virtserialport,chardev=agent,name=airlock.agent",
  };
  if (!s.memory_file.empty()) {
    argv.insert(argv.end(),
                {"-object", "memory-backend-file,id=mem0,size=" + std::to_string(s.memory_mib) +
                                "M,mem-path=" + s.memory_file +
                                (s.memory_shared ? ",share=on" : ",share=off")});
  } else if (s.memory_named) {
    argv.insert(
        argv.end(),
        {"-object", "memory-backend-ram,id=mem0,size=" + std::to_string(s.memory_mib) + "M"});
  }
  if (!s.restore_state.empty()) argv.insert(argv.end(), {"-incoming", "defer"});
  if (!s.tap.empty()) {  // (the accelerator probe boots without a network)
    argv.insert(argv.end(), {"-netdev", "tap,id=net0,ifname=" + s.tap + ",script=no,downscript=no",
                             "-device", "virtio-net-device,netdev=net0,mac=" + s.mac});
  }
  if (!s.rootfs.empty()) {
    argv.insert(argv.end(),
                {"-drive", "id=root,file=" + s.rootfs + ",format=raw,if=none,readonly=on",
                 "-device", "virtio-blk-device,drive=root"});
  }
  return argv;
}

QemuVmm::~QemuVmm() {
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

Result<pid_t> QemuVmm::Launch(const VmSpec& spec) {
  const std::string path = spec.dir + "/agent.sock";
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof(sun.sun_path)) return Status::Error("state path too long: " + path);
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  ::unlink(path.c_str());
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0 ||
      ::listen(listen_fd_, 1) != 0) {
    return Status::Error("cannot listen on " + path + ": " + std::strerror(errno));
  }
  VmSpec with_tsc = spec;
  // (A restored guest keeps the kernel it was saved with: its command line does not matter.)
  if (spec.accel != "kvm" && spec.restore_state.empty()) with_tsc.tsc_khz = HostTscKhz();
  auto pid = Spawn({.argv = QemuArgv(with_tsc, path),
                    .log_path = spec.dir + "/vmm.log",
                    .cgroup_procs = spec.cgroup_procs});
  if (!pid.ok() || spec.restore_state.empty()) return pid;
  // QEMU waits (-incoming defer) for the state to load.
  Status loaded = [&]() -> Status {
    auto qmp = QmpClient::Connect(spec.dir + "/qmp.sock", std::chrono::seconds(10));
    if (!qmp.ok()) return qmp.status();
    if (Status s = (*qmp)->SetIgnoreShared(spec.restore_memory_from_file); !s.ok()) return s;
    return (*qmp)->LoadFrom(spec.restore_state);
  }();
  if (!loaded.ok()) {
    TerminateProcess(*pid, std::chrono::milliseconds(500));
    return Status::Error("restoring " + spec.restore_state + ": " + loaded.message());
  }
  return pid;
}

Status QemuVmm::Save(const VmSpec& spec, const std::string& state_path) {
  auto qmp = QmpClient::Connect(spec.dir + "/qmp.sock", std::chrono::seconds(10));
  if (!qmp.ok()) return qmp.status();
  if (Status s = (*qmp)->SetIgnoreShared(spec.memory_shared); !s.ok()) return s;
  return (*qmp)->SaveTo(state_path, std::chrono::seconds(120));
}

Result<int> QemuVmm::ConnectAgent(const VmSpec& spec, std::chrono::milliseconds timeout) {
  pollfd p{listen_fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
    return Status::Error("QEMU did not connect to the agent socket (see " + spec.dir + "/vmm.log)");
  }
  int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return Status::Error("accept failed");
  ::close(listen_fd_);
  listen_fd_ = -1;
  ::unlink((spec.dir + "/agent.sock").c_str());
  return fd;
}

}  // namespace airlock::vmlaunch
