// Snapshots: the key, lookup, and an atomic commit (files synced, the manifest written last, the
// directory renamed into place).
#include "vmlaunch/vm/snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gateway/crypto/digest.h"
#include "gateway/crypto/random.h"
#include "vmlaunch/backends/firecracker_backend.h"
#include "vmlaunch/backends/qemu_backend.h"
#include "vmlaunch/process/read_file.h"
#include "vmlaunch/vm/vm_record.h"

namespace airlock::vmlaunch {

namespace fs = std::filesystem;

namespace {

Status SyncFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("cannot open " + path);
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok ? Status::Ok() : Status::Error("cannot sync " + path);
}

}  // namespace

std::string SnapshotKey(const VmShape& s, const std::string& vmm_fingerprint) {
  std::ostringstream text;
  text << "backend=" << s.backend << "\naccel=" << s.accel << "\nmemory=" << s.memory_mib
       << "\nvcpus=" << s.vcpus << "\noverlay=" << s.overlay << "\nrootfs=" << s.rootfs
       << "\nvmm=" << vmm_fingerprint << "\n";
  return s.backend + "-" + crypto::Sha256Hex(text.str()).substr(0, 16);
}

std::string VmmFingerprint(const std::string& backend) {
  const std::string binary = backend == "qemu"          ? QemuBinary()
                             : backend == "firecracker" ? FirecrackerBinary()
                                                        : "";
  if (binary.empty()) return "";
  const char* path_env = std::getenv("PATH");
  std::istringstream dirs(path_env ? path_env : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string path = dir + "/" + binary;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      return path + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_ctime);
    }
  }
  return "";
}

Snapshot SnapshotFor(const std::string& image_dir, const VmShape& shape) {
  Snapshot s;
  s.key = SnapshotKey(shape, VmmFingerprint(shape.backend));
  s.dir = image_dir + "/snapshots/" + s.key;
  s.memory = s.dir + "/memory";
  s.state = s.dir + "/state";
  return s;
}

Result<Snapshot> FindSnapshot(const std::string& image_dir, const VmShape& shape) {
  Snapshot s = SnapshotFor(image_dir, shape);
  std::error_code ec;
  if (!fs::exists(s.dir + "/snapshot.json", ec) || !fs::exists(s.memory, ec) ||
      !fs::exists(s.state, ec)) {
    return Status::Error(
        "no snapshot for this image and shape (`vmlaunch image snapshot` makes one)",
        StatusCode::kNotFound);
  }
  return s;
}

Status CommitSnapshot(const Snapshot& staged, const std::string& image_dir, const VmShape& shape) {
  const Snapshot target = SnapshotFor(image_dir, shape);
  for (const auto& f : {staged.memory, staged.state}) {
    if (Status s = SyncFile(f); !s.ok()) return s;
  }
  nlohmann::json manifest = {{"key", target.key},        {"backend", shape.backend},
                             {"accel", shape.accel},     {"memory_mib", shape.memory_mib},
                             {"vcpus", shape.vcpus},     {"overlay", shape.overlay},
                             {"rootfs", shape.rootfs},   {"vmm", VmmFingerprint(shape.backend)},
                             {"created_unix", NowUnix()}};
  {
    std::ofstream f(staged.dir + "/snapshot.json");
    f << manifest.dump(2) << "\n";
    if (!f) return Status::Error("cannot write " + staged.dir + "/snapshot.json");
  }
  if (Status s = SyncFile(staged.dir + "/snapshot.json"); !s.ok()) return s;
  std::error_code ec;
  if (fs::exists(target.dir, ec)) {
    // Out of the way first (a rename cannot replace a directory that has files); running VMs
    // hold the old memory file open, so removing it does not disturb them.
    const std::string old = target.dir + ".old-" + crypto::RandomHex(4);
    fs::rename(target.dir, old, ec);
    if (ec) return Status::Error("cannot replace " + target.dir + ": " + ec.message());
    fs::remove_all(old, ec);
  }
  fs::rename(staged.dir, target.dir, ec);
  if (ec) return Status::Error("cannot commit " + target.dir + ": " + ec.message());
  return Status::Ok();
}

}  // namespace airlock::vmlaunch
