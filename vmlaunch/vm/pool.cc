// The warm pool: pool files, taking a VM from its monitor, filling under a lock and within
// memory.
#include "vmlaunch/vm/pool.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "vmlaunch/image/image_builder.h"
#include "vmlaunch/process/interrupt.h"
#include "vmlaunch/process/process.h"
#include "vmlaunch/process/read_file.h"
#include "vmlaunch/vm/accel.h"
#include "vmlaunch/vm/monitor.h"
#include "vmlaunch/vm/snapshot.h"

namespace airlock::vmlaunch {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string PoolFile(const std::string& state_dir, const std::string& key) {
  return state_dir + "/pools/" + key + ".json";
}

// The options a pool's VMs are made with (the shape, where things are), as kept in its file.
json PoolOptionsJson(const VmOptions& o) {
  return {{"backend", o.backend},
          {"image", o.image},
          {"accel", o.accel},
          {"memory_mib", o.memory_mib},
          {"vcpus", o.vcpus},
          {"overlay", o.overlay},
          {"rootfs", o.rootfs},
          {"state_dir", o.state_dir},
          {"pool", o.pool},
          {"control_socket", o.control_socket},
          {"boot_timeout_ms", o.boot_timeout.count()}};
}

Result<VmOptions> PoolOptionsFrom(const json& j) {
  if (!j.is_object()) return Status::Error("a pool file without options");
  VmOptions o;
  auto str = [&](const char* k, std::string* out) {
    if (j.contains(k) && j[k].is_string()) *out = j[k].get<std::string>();
  };
  str("backend", &o.backend);
  str("image", &o.image);
  str("accel", &o.accel);
  str("overlay", &o.overlay);
  str("state_dir", &o.state_dir);
  str("pool", &o.pool);
  str("control_socket", &o.control_socket);
  if (j.value("memory_mib", json()).is_number_integer()) o.memory_mib = j["memory_mib"].get<int>();
  if (j.value("vcpus", json()).is_number_integer()) o.vcpus = j["vcpus"].get<int>();
  if (j.value("rootfs", json()).is_boolean()) o.rootfs = j["rootfs"].get<bool>();
  if (j.value("boot_timeout_ms", json()).is_number_integer()) {
    o.boot_timeout = std::chrono::milliseconds(j["boot_timeout_ms"].get<int64_t>());
  }
  return o;
}

// Pooled VMs of `key` whose monitor is alive.
std::vector<VmRecord> Pooled(const std::string& state_dir, const std::string& key) {
  std::vector<VmRecord> out;
  for (auto& r : ListVms(state_dir)) {
    if (r.state == "pooled" && r.shape == key && r.OwnerAlive()) out.push_back(std::move(r));
  }
  return out;
}

int64_t MemAvailableMib() {
  std::istringstream in(ReadFile("/proc/meminfo"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("MemAvailable:", 0) == 0)
      return std::strtoll(line.c_str() + 13, nullptr, 10) / 1024;
  }
  return 0;
}

// An exclusive lock on the pool's file while it lives (fills are serialised).
class PoolLock {
 public:
  explicit PoolLock(const std::string& path)
      : fd_(::open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~PoolLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  PoolLock(const PoolLock&) = delete;
  PoolLock& operator=(const PoolLock&) = delete;

 private:
  int fd_;
};

}  // namespace

Result<std::string> PoolKey(const VmOptions& o) {
  auto image = LoadImage(o.image);
  if (!image.ok()) return image.status();
  std::string accel = "kvm";
  if (o.backend == "qemu") {
    std::ostringstream quiet;
    auto a = ResolveAccel(o.accel, *image, o.state_dir, quiet);
    if (!a.ok()) return a.status();
    accel = *a;
  }
  return SnapshotKey({.backend = o.backend,
                      .accel = accel,
                      .memory_mib = o.memory_mib,
                      .vcpus = o.vcpus,
                      .overlay = o.overlay,
                      .rootfs = o.rootfs},
                     image->dir);
}

Result<json> TakeFromPool(const VmOptions& o) {
  auto key = PoolKey(o);
  if (!key.ok()) return key.status();
  // The monitor runs elsewhere: a relative directory means the caller's.
  std::error_code ec;
  const std::string standby_dir = fs::absolute(o.standby_dir, ec).string();
  json attach = {{"op", "attach"},
                 {"policy", o.policy},
                 {"control_socket", o.control_socket},
                 {"proxy_port", o.proxy_port},
                 {"ttl_seconds", o.ttl.count()},
                 {"standby_after_ms", o.standby_after.count()},
                 {"standby_dir", standby_dir},
                 {"env", o.env}};
  for (const auto& r : Pooled(o.state_dir, *key)) {
    if (Interrupted()) return Status::Error("interrupted");
    // Another launcher may take the same VM first: its monitor then says so, and the next
    // one is asked.
    auto reply = MonitorRequest(r.dir, attach, {});
    if (!reply.ok() || !reply->Bool("ok").value_or(false)) continue;
    json taken = reply->json();
    taken.erase("ok");
    taken["id"] = r.id;
    taken["monitor_pid"] = r.owner_pid;
    taken["start"] = "pooled";
    taken["timings_ms"] = {{"create_to_ready", reply->Int("attach_ms").value_or(0)}};
    taken.erase("attach_ms");
    taken.erase("vm");
    return taken;
  }
  return Status::Error("no pooled VM ready", StatusCode::kNotFound);
}

Result<int> FillPool(const VmOptions& o, int size, std::ostream& log) {
  if (size < 0 || size > kPoolMax) {
    return Status::Error("--size: 0 to " + std::to_string(kPoolMax));
  }
  auto key = PoolKey(o);
  if (!key.ok()) return key.status();
  auto image = LoadImage(o.image);
  if (!image.ok()) return image.status();
  std::error_code ec;
  fs::create_directories(o.state_dir + "/pools", ec);
  const std::string file = PoolFile(o.state_dir, *key);
  PoolLock lock(file);
  {
    json j = {
        {"key", *key}, {"size", size}, {"image_dir", image->dir}, {"options", PoolOptionsJson(o)}};
    std::ofstream f(file + ".tmp", std::ios::trunc);
    f << j.dump(2) << "\n";
    if (!f) return Status::Error("cannot write " + file);
  }
  fs::rename(file + ".tmp", file, ec);
  auto pooled = Pooled(o.state_dir, *key);
  // Shrinking: the surplus goes (its monitors tear down), unless taken meanwhile.
  for (size_t i = static_cast<size_t>(size); i < pooled.size(); ++i) {
    (void)MonitorRequest(pooled[i].dir, {{"op", "retire"}}, {});
  }
  int ready = std::min(static_cast<int>(pooled.size()), size);
  VmOptions member = o;
  member.start = VmStart::kPooled;
  member.ttl = std::chrono::seconds(0);
  while (ready < size) {
    if (MemAvailableMib() < o.memory_mib + kPoolMemoryReserveMib) {
      log << "vmlaunch pool: stopping at " << ready << " of " << size
          << ": the host's available memory is under the guest's plus the reserve ("
          << kPoolMemoryReserveMib << " MiB)\n";
      break;
    }
    auto hello = SpawnMonitor(member);
    if (!hello.ok()) return hello.status();
    ++ready;
  }
  if (size == 0) fs::remove(file, ec);
  return ready;
}

void RefillPoolInBackground(const VmOptions& o) {
  auto key = PoolKey(o);
  if (!key.ok()) return;
  const std::string file = PoolFile(o.state_dir, *key);
  auto j = json::parse(ReadFile(file), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.value("size", json()).is_number_integer()) return;
  auto options = PoolOptionsFrom(j.value("options", json()));
  if (!options.ok()) return;
  const int size = j["size"].get<int>();
  std::cout.flush();
  std::cerr.flush();
  // Forked twice, so that the refill is nobody's child (no zombie for the caller to reap).
  pid_t pid = ::fork();
  if (pid < 0) return;
  if (pid > 0) {
    ::waitpid(pid, nullptr, 0);
    return;  // (the caller goes on; the refill reports to the pool's log)
  }
  if (::fork() != 0) _exit(0);
  ::setsid();
  ::close_range(3, ~0u, 0);
  int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  int log = ::open((file + ".log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  ::dup2(null_fd, STDIN_FILENO);
  ::dup2(log >= 0 ? log : null_fd, STDOUT_FILENO);
  ::dup2(log >= 0 ? log : null_fd, STDERR_FILENO);
  if (null_fd > STDERR_FILENO) ::close(null_fd);
  if (log > STDERR_FILENO) ::close(log);
  auto filled = FillPool(*options, size, std::cerr);
  std::cerr << "vmlaunch pool: refill of " << *key << ": "
            << (filled.ok() ? std::to_string(*filled) + " ready" : filled.status().message())
            << "\n";
  _exit(filled.ok() ? 0 : 1);
}

std::vector<PoolInfo> ListPools(const std::string& state_dir) {
  std::vector<PoolInfo> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(state_dir + "/pools", ec)) {
    if (e.path().extension() != ".json") continue;
    auto j = json::parse(ReadFile(e.path().string()), nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    PoolInfo p;
    p.key = j.value("key", json("")).is_string() ? j["key"].get<std::string>() : "";
    p.size = j.value("size", json(0)).is_number_integer() ? j["size"].get<int>() : 0;
    p.image = j.value("image_dir", json("")).is_string() ? j["image_dir"].get<std::string>() : "";
    p.shape = j.value("options", json::object());
    p.ready = static_cast<int>(Pooled(state_dir, p.key).size());
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace airlock::vmlaunch
