// airlock-agent: the guest agent, a static binary that the guest's init starts as PID 1. PID 1
// stays a small reaper (orphans are re-parented to it) and powers the guest off once the agent
// process, its only direct child, exits after a shutdown request; the agent process serves the
// host over a virtio-serial port named "airlock.agent" (QEMU) or vsock port 1024 (Firecracker),
// chosen by `airlock.transport=` on the kernel command line.
#include <dirent.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <iostream>
#include <sstream>

#include "vmlaunch/guest/agent.h"

namespace {

using airlock::Status;
using airlock::vmlaunch::Agent;
using airlock::vmlaunch::ApplyIdentity;
using airlock::vmlaunch::GuestIdentity;
using airlock::vmlaunch::IdentityFromCommandLine;
using airlock::vmlaunch::LineChannel;
using airlock::vmlaunch::UpLoopback;

constexpr unsigned kVsockPort = 1024;
constexpr char kPortName[] = "airlock.agent";

std::string KernelArg(const std::string& key) {
  std::ifstream f("/proc/cmdline");
  std::string word;
  while (f >> word) {
    if (word.rfind(key + "=", 0) == 0) return word.substr(key.size() + 1);
  }
  return "";
}

std::string FindSerialPort() {
  DIR* d = ::opendir("/sys/class/virtio-ports");
  if (!d) return "";
  std::string found;
  while (dirent* e = ::readdir(d)) {
    std::string name;
    std::ifstream(std::string("/sys/class/virtio-ports/") + e->d_name + "/name") >> name;
    if (name == kPortName) found = std::string("/dev/") + e->d_name;
  }
  ::closedir(d);
  return found;
}

int ServeSerial(Agent& agent) {
  while (true) {
    std::string dev = FindSerialPort();
    int fd = dev.empty() ? -1 : ::open(dev.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      std::cerr << "airlock-agent: no virtio-serial port named " << kPortName << " yet\n";
      ::sleep(1);
      continue;
    }
    LineChannel channel(fd);
    agent.Serve(channel);
    ::close(fd);
    if (agent.shutdown_requested()) return 0;
    ::usleep(200 * 1000);  // the host side went away; wait for it to come back
  }
}

int ServeVsock(Agent& agent) {
  int s = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = kVsockPort;
  if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(s, 4) != 0) {
    std::perror("airlock-agent: vsock");
    return 1;
  }
  while (true) {
    int fd = ::accept4(s, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    LineChannel channel(fd);
    agent.Serve(channel);
    ::close(fd);
    if (agent.shutdown_requested()) return 0;
  }
}

int RunAgent() {
  Agent agent(
      {.env_file = "/etc/airlock/env",
       .profile = "/etc/profile.d/airlock.sh",
       .apply_identity = [](const GuestIdentity& id) { return ApplyIdentity(id, "/etc"); }});
  if (Status s = UpLoopback(); !s.ok()) std::cerr << "airlock-agent: lo: " << s.message() << "\n";
  // A cold boot's identity is on the kernel's command line (a VM restored from a snapshot has
  // none there: the launcher sends it).
  std::ifstream cmdline("/proc/cmdline");
  std::stringstream text;
  text << cmdline.rdbuf();
  const GuestIdentity id = IdentityFromCommandLine(text.str());
  if (!id.address.empty() || !id.hostname.empty()) {
    if (Status s = agent.TakeIdentity(id); !s.ok())
      std::cerr << "airlock-agent: " << s.message() << "\n";
  }
  return KernelArg("airlock.transport") == "vsock" ? ServeVsock(agent) : ServeSerial(agent);
}

// PID 1: reap everything; restart the agent if it dies unasked; power off after a shutdown.
[[noreturn]] void Reaper() {
  while (true) {
    pid_t agent = ::fork();
    if (agent == 0) _exit(RunAgent());
    int status = 0;
    pid_t pid;
    while ((pid = ::wait(&status)) != agent) {
      if (pid < 0 && errno == ECHILD) break;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      ::sync();
      // A reset is how both VMMs learn that the guest is done: QEMU runs with -no-reboot and
      // Firecracker exits on a guest reset.
      ::reboot(RB_AUTOBOOT);
    }
    std::cerr << "airlock-agent: the agent stopped unexpectedly; restarting it\n";
    ::sleep(1);
  }
}

}  // namespace

int main() {
  std::signal(SIGPIPE, SIG_IGN);
  if (::getpid() == 1) Reaper();
  return RunAgent();  // started by hand inside a guest, for debugging
}
