// QemuVmm: the argv, a listening agent socket, the process.
#include "vmlaunch/backends/qemu_backend.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "vmlaunch/backends/host_tsc.h"
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
      "microvm,x-option-roms=off,rtc=on",
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
  if (spec.accel != "kvm") with_tsc.tsc_khz = HostTscKhz();
  return Spawn({.argv = QemuArgv(with_tsc, path),
                .log_path = spec.dir + "/vmm.log",
                .cgroup_procs = spec.cgroup_procs});
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
