// FirecrackerVmm: the config document, the jail-shaped directory, the vsock handshake.
#include "vmlaunch/backends/firecracker_backend.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gateway/control/unix_http.h"
#include "vmlaunch/process/process.h"

namespace airlock::vmlaunch {

namespace fs = std::filesystem;
using nlohmann::json;

std::string FirecrackerBinary() { return "firecracker"; }

json FirecrackerConfig(const VmSpec& s) {
  json config = {
      {"boot-source",
       {{"kernel_image_path", "vmlinux"},
        {"initrd_path", "initrd.img"},
        {"boot_args", KernelCommandLine(s, "reboot=k pci=off airlock.transport=vsock")}}},
      {"machine-config", {{"vcpu_count", s.vcpus}, {"mem_size_mib", s.memory_mib}, {"smt", false}}},
      {"network-interfaces",
       json::array({{{"iface_id", "eth0"}, {"host_dev_name", s.tap}, {"guest_mac", s.mac}}})},
      {"vsock", {{"guest_cid", kGuestCid}, {"uds_path", "vsock.sock"}}},
      {"drives", json::array()},
  };
  if (!s.rootfs.empty()) {
    config["drives"].push_back({{"drive_id", "rootfs"},
                                {"path_on_host", "rootfs.ext4"},
                                {"is_root_device", false},
                                {"is_read_only", true}});
  }
  return config;
}

FirecrackerCall FirecrackerPause() { return {"PATCH", "/vm", {{"state", "Paused"}}}; }

FirecrackerCall FirecrackerSnapshotCreate(const std::string& state_path,
                                          const std::string& memory_path) {
  return {
      "PUT",
      "/snapshot/create",
      {{"snapshot_type", "Full"}, {"snapshot_path", state_path}, {"mem_file_path", memory_path}}};
}

FirecrackerCall FirecrackerSnapshotLoad(const std::string& state_path,
                                        const std::string& memory_path, const std::string& tap) {
  return {"PUT",
          "/snapshot/load",
          {{"snapshot_path", state_path},
           {"mem_backend", {{"backend_type", "File"}, {"backend_path", memory_path}}},
           {"resume_vm", true},
           {"network_overrides", json::array({{{"iface_id", "eth0"}, {"host_dev_name", tap}}})}}};
}

Status CallFirecracker(const std::string& vm_dir, const FirecrackerCall& call,
                       std::chrono::milliseconds timeout) {
  const std::string socket = vm_dir + "/root/api.sock";
  auto answer = control::UnixHttpRequest(socket, call.method, call.path,
                                         call.body.is_null() ? "" : call.body.dump(), timeout);
  const std::string what = "Firecracker's " + call.method + " " + call.path;
  if (!answer.ok()) {
    return Status::Error(what + ": " + answer.status().message(), answer.status().code());
  }
  if (answer->status / 100 == 2) return Status::Ok();
  auto body = json::parse(answer->body, nullptr, false);
  const std::string why =
      body.is_object() && body.contains("fault_message") && body["fault_message"].is_string()
          ? body["fault_message"].get<std::string>()
          : answer->body.substr(0, 200);
  return Status::Error(what + " failed (" + std::to_string(answer->status) + "): " + why);
}

namespace {

// Hard links where the filesystem allows, copies elsewhere.
Status LinkInto(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::remove(to, ec);
  fs::create_hard_link(from, to, ec);
  if (ec) fs::copy_file(from, to, ec);
  return ec ? Status::Error("cannot place " + from + " in the VM directory: " + ec.message())
            : Status::Ok();
}

}  // namespace

Result<pid_t> FirecrackerVmm::Launch(const VmSpec& spec) {
  const std::string root = spec.dir + "/root";
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return Status::Error("cannot create " + root + ": " + ec.message());
  for (const auto& [from, name] : {std::pair{spec.kernel, "vmlinux"},
                                   {spec.initrd, "initrd.img"},
                                   {spec.rootfs, "rootfs.ext4"}}) {
    if (from.empty()) continue;
    if (Status s = LinkInto(from, root + "/" + name); !s.ok()) return s;
  }
  // Firecracker refuses to start on an API socket that exists, and a snapshot's load binds the
  // vsock socket again: a VMM stopped before (standby, a failed restore) leaves both behind.
  fs::remove(root + "/api.sock", ec);
  fs::remove(root + "/vsock.sock", ec);
  // Firecracker resolves relative paths (the config's, and a snapshot's drives and vsock
  // socket) against its working directory. A restore starts with no configuration: the
  // snapshot is loaded through the API.
  std::string command = "cd '" + root + "' && exec " + FirecrackerBinary() + " --api-sock api.sock";
  if (spec.restore_state.empty()) {
    std::ofstream(root + "/config.json") << FirecrackerConfig(spec).dump(2) << "\n";
    command += " --config-file config.json";
  }
  auto pid = Spawn({.argv = {"sh", "-c", command},
                    .log_path = spec.dir + "/vmm.log",
                    .cgroup_procs = spec.cgroup_procs});
  if (!pid.ok() || spec.restore_state.empty()) return pid;
  const std::string memory =
      spec.restore_memory_from_file ? spec.memory_file : SavedMemoryPath(spec.restore_state);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  Status loaded = Status::Ok();
  // The API socket appears once Firecracker has started; loading may begin then.
  do {
    loaded =
        CallFirecracker(spec.dir, FirecrackerSnapshotLoad(spec.restore_state, memory, spec.tap),
                        std::chrono::seconds(60));
    if (loaded.code() != StatusCode::kNotFound || !ProcessAlive(*pid, 0)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } while (std::chrono::steady_clock::now() < deadline);
  if (!loaded.ok()) {
    TerminateProcess(*pid, std::chrono::milliseconds(500));
    return loaded;
  }
  return pid;
}

Result<int> FirecrackerVmm::ConnectAgent(const VmSpec& spec, std::chrono::milliseconds timeout) {
  const std::string path = spec.dir + "/root/vsock.sock";
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // The agent listens only once the guest has booted: retry until it answers.
  while (std::chrono::steady_clock::now() < deadline) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::strncpy(sun.sun_path, path.c_str(), sizeof(sun.sun_path) - 1);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) == 0) {
      std::string hello = "CONNECT " + std::to_string(kAgentVsockPort) + "\n";
      std::string answer;
      char c;
      pollfd p{fd, POLLIN, 0};
      if (::write(fd, hello.data(), hello.size()) == static_cast<ssize_t>(hello.size())) {
        while (answer.size() < 64 && ::poll(&p, 1, 1000) > 0 && ::read(fd, &c, 1) == 1 &&
               c != '\n') {
          answer.push_back(c);
        }
      }
      if (answer.rfind("OK ", 0) == 0) return fd;
    }
    if (fd >= 0) ::close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return Status::Error("the guest agent did not answer on vsock (see " + spec.dir + "/vmm.log)");
}

Status FirecrackerVmm::Save(const VmSpec& spec, const std::string& state_path) {
  if (Status s = CallFirecracker(spec.dir, FirecrackerPause(), std::chrono::seconds(10)); !s.ok())
    return s;
  const std::string memory = spec.memory_shared ? spec.memory_file : SavedMemoryPath(state_path);
  // Writing the memory out takes as long as the disk needs for it.
  return CallFirecracker(spec.dir, FirecrackerSnapshotCreate(state_path, memory),
                         std::chrono::seconds(120));
}

}  // namespace airlock::vmlaunch
