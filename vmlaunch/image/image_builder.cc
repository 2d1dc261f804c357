// BuildImage: resolve the kernel package, compute the cache key, and only then do the slow
// steps, each announced with its duration.
#include "vmlaunch/image/image_builder.h"

#include <unistd.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gateway/crypto/digest.h"
#include "vmlaunch/image/kernel_image.h"
#include "vmlaunch/process/command.h"
#include "vmlaunch/process/read_file.h"

namespace airlock::vmlaunch {

const std::vector<std::string> kGuestModules = {"virtio_ring",
                                                "virtio",
                                                "virtio_mmio",
                                                "failover",
                                                "net_failover",
                                                "virtio_net",
                                                "virtio_console",
                                                "virtio_blk",
                                                "overlay",
                                                "vsock",
                                                "vmw_vsock_virtio_transport_common",
                                                "vmw_vsock_virtio_transport"};

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::vector<std::string> kRequiredModules = {"virtio_ring",   "virtio",       "virtio_mmio",
                                                   "failover",      "net_failover", "virtio_net",
                                                   "virtio_console"};

// Announces a slow step and, when it ends, how long it took.
class Step {
 public:
  Step(std::ostream& out, std::string what) : out_(out), start_(Clock::now()) {
    out_ << "  " << what << " ..." << std::flush;
  }
  void Done() {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_).count();
    out_ << " done (" << ms / 1000 << "." << (ms % 1000) / 100 << " s)\n" << std::flush;
  }

 private:
  using Clock = std::chrono::steady_clock;
  std::ostream& out_;
  Clock::time_point start_;
};

// The concrete kernel package behind a metapackage, and its version.
Result<std::pair<std::string, std::string>> ResolveKernel(const std::string& package) {
  auto shown = CaptureCommand({"apt-cache", "show", "--no-all-versions", package});
  if (!shown.ok()) {
    return Status::Error("apt does not know " + package +
                         " (run apt-get update): " + shown.status().message());
  }
  std::string version, depends;
  std::istringstream in(*shown);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Version: ", 0) == 0) version = line.substr(9);
    if (line.rfind("Depends: ", 0) == 0) depends = line.substr(9);
  }
  // A metapackage depends on exactly the image it stands for: follow it.
  if (depends.rfind("linux-image-", 0) == 0) {
    std::string dep = depends.substr(0, depends.find_first_of(" ,("));
    if (dep != package) return ResolveKernel(dep);
  }
  if (version.empty()) return Status::Error("apt shows no version of " + package);
  return std::make_pair(package, version);
}

std::string DefaultMirror() {
  for (const std::string path :
       {"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"}) {
    if (std::string m = MirrorFromSources(ReadFile(path)); !m.empty()) return m;
  }
  return "http://deb.debian.org/debian";
}

Result<std::string> FindModule(const std::string& root, const std::string& name) {
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.path().filename() == name + ".ko") return e.path().string();
  }
  return Status::Error("module " + name + " is not in the kernel package");
}

}  // namespace

std::string MirrorFromSources(const std::string& text) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line.substr(0, line.find('#')));
    std::string first;
    if (!(words >> first) || (first != "URIs:" && first != "deb")) continue;
    for (std::string word; words >> word;) {
      if (word.rfind("http", 0) == 0 && word.find("security") == std::string::npos) return word;
    }
  }
  return "";
}

Result<Image> LoadImage(const std::string& dir_or_cache) {
  std::string dir = dir_or_cache;
  if (!fs::exists(dir + "/manifest.json")) dir = dir_or_cache + "/images/default";
  auto manifest = json::parse(ReadFile(dir + "/manifest.json"), nullptr, false);
  if (manifest.is_discarded() || !manifest.is_object()) {
    return Status::Error("no guest image in " + dir_or_cache +
                         " (build one with `vmlaunch image build`)");
  }
  Image image;
  image.dir = fs::canonical(dir).string();
  image.kernel = image.dir + "/vmlinux";
  image.initrd = image.dir + "/initrd.img";
  if (manifest.value("rootfs", false)) image.rootfs = image.dir + "/rootfs.ext4";
  image.key = manifest.value("key", "");
  image.has_ca = manifest.value("ca", false);
  image.cached = true;
  return image;
}

Result<Image> BuildImage(const ImageOptions& o, std::ostream& progress) {
  for (const auto& [what, path] : {std::pair{"busybox", o.busybox},
                                   {"the guest agent", o.agent},
                                   {"the guest init", o.init}}) {
    if (path.empty() || !fs::is_regular_file(path)) {
      return Status::Error(std::string("cannot find ") + what + " at '" + path + "'");
    }
  }
  if (!o.ca_cert.empty() &&
      ReadFile(o.ca_cert).find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return Status::Error(o.ca_cert + " is not a PEM certificate");
  }
  const std::string roots = o.roots.empty() ? "" : ReadFile(o.roots);
  // 1. The key: every input, by content or by package version.
  std::string kernel_id;
  std::pair<std::string, std::string> kernel;
  if (!o.kernel_deb.empty()) {
    if (!fs::is_regular_file(o.kernel_deb)) return Status::Error("no such file: " + o.kernel_deb);
    kernel_id = "deb:" + crypto::Sha256Hex(ReadFile(o.kernel_deb));
  } else {
    auto k = ResolveKernel(o.kernel_package);
    if (!k.ok()) return k.status();
    kernel = *k;
    kernel_id = "pkg:" + kernel.first + "=" + kernel.second;
  }
  json inputs = {
      {"kernel", kernel_id},
      {"busybox", crypto::Sha256Hex(ReadFile(o.busybox))},
      {"agent", crypto::Sha256Hex(ReadFile(o.agent))},
      {"init", crypto::Sha256Hex(ReadFile(o.init))},
      {"ca", o.ca_cert.empty() ? "" : crypto::Sha256Hex(ReadFile(o.ca_cert))},
      {"roots", roots.empty() ? "" : crypto::Sha256Hex(roots)},
      {"modules", kGuestModules},
      {"rootfs",
       o.rootfs ? json{{"size", o.rootfs_size}, {"packages", o.rootfs_packages}} : json(false)}};
  const std::string key = crypto::Sha256Hex(inputs.dump()).substr(0, 16);
  // Absolute: the packing steps run in other directories (`cd ... && cpio`).
  std::error_code abs_ec;
  const std::string cache = fs::absolute(o.cache_dir, abs_ec).string();
  if (abs_ec) return Status::Error("--cache '" + o.cache_dir + "': " + abs_ec.message());
  const std::string images = cache + "/images";
  const std::string final_dir = images + "/" + key;
  auto link_default = [&] {
    std::error_code ec;
    fs::remove(images + "/default.new", ec);
    fs::create_directory_symlink(key, images + "/default.new", ec);
    fs::rename(images + "/default.new", images + "/default", ec);
  };
  if (fs::exists(final_dir + "/manifest.json")) {
    progress << "guest image " << key << " is up to date (" << final_dir << ")\n";
    link_default();
    return LoadImage(final_dir);
  }
  progress << "building guest image " << key << " in " << final_dir << "\n";
  std::error_code ec;
  const std::string work = images + "/." + key + ".tmp." + std::to_string(getpid());
  fs::remove_all(work, ec);
  fs::create_directories(work + "/pkg");
  // Removed on every way out; renamed into place on success.
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code e;
      if (!dir.empty()) fs::remove_all(dir, e);
    }
  } cleanup{work};

  // 2. The kernel package.
  std::string deb = o.kernel_deb;
  if (deb.empty()) {
    const std::string debs = cache + "/debs";
    fs::create_directories(debs);
    Step step(progress,
              "downloading " + kernel.first + " " + kernel.second + " (apt-get download)");
    auto r = CaptureCommand({"sh", "-c",
                             "cd " + ShellQuote(debs) + " && apt-get download -q " +
                                 ShellQuote(kernel.first + "=" + kernel.second) + " 2>&1"});
    if (!r.ok()) return r.status();
    for (const auto& e : fs::directory_iterator(debs)) {
      if (e.path().filename().string().rfind(kernel.first + "_", 0) == 0) deb = e.path().string();
    }
    if (deb.empty()) return Status::Error("apt-get download left no .deb in " + debs);
    step.Done();
  }
  {
    Step step(progress, "unpacking " + fs::path(deb).filename().string());
    if (Status s = RunCommand({"dpkg-deb", "-x", deb, work + "/pkg"}); !s.ok()) return s;
    step.Done();
  }
  std::string bzimage;
  for (const auto& e : fs::directory_iterator(work + "/pkg/boot")) {
    if (e.path().filename().string().rfind("vmlinuz-", 0) == 0) bzimage = e.path().string();
  }
  if (bzimage.empty()) return Status::Error(deb + " holds no /boot/vmlinuz-*");
  {
    Step step(progress, "extracting the ELF vmlinux for PVH boot");
    if (Status s = ExtractVmlinux(bzimage, work + "/vmlinux"); !s.ok()) return s;
    step.Done();
  }

  // 3. The initramfs.
  const std::string root = work + "/initramfs";
  for (const char* d : {"/bin", "/sbin", "/etc/airlock", "/lib/modules", "/root", "/proc", "/sys",
                        "/dev", "/tmp"}) {
    fs::create_directories(root + d);
  }
  std::string module_list;
  for (const auto& m : kGuestModules) {
    auto path = FindModule(work + "/pkg/lib/modules", m);
    if (!path.ok()) {
      bool required =
          std::find(kRequiredModules.begin(), kRequiredModules.end(), m) != kRequiredModules.end();
      if (required) return path.status();
      progress << "  warning: " << path.status().message() << " (skipped)\n";
      continue;
    }
    fs::copy_file(*path, root + "/lib/modules/" + m + ".ko");
    module_list += m + "\n";
  }
  const auto exec_perms = fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                          fs::perms::others_read | fs::perms::others_exec;
  const auto read_perms = fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                          fs::perms::others_read;
  for (const auto& [from, to, perms] : {std::tuple{o.busybox, "/bin/busybox", exec_perms},
                                        {o.agent, "/sbin/airlock-agent", exec_perms},
                                        {o.init, "/init", exec_perms},
                                        {o.init, "/sbin/airlock-init", exec_perms}}) {
    if (Status s = WriteFile(root + to, ReadFile(from), perms); !s.ok()) return s;
  }
  if (Status s = WriteFile(root + "/etc/airlock/modules", module_list, read_perms); !s.ok()) {
    return s;
  }
  if (!roots.empty()) {
    fs::create_directories(fs::path(root + std::string(kSystemRoots)).parent_path());
    if (Status s = WriteFile(root + std::string(kSystemRoots), roots, read_perms); !s.ok()) {
      return s;
    }
  }
  if (!o.ca_cert.empty()) {
    if (Status s = WriteFile(root + "/etc/airlock/ca.crt", ReadFile(o.ca_cert), read_perms);
        !s.ok()) {
      return s;
    }
  }
  {
    Step step(progress, "packing the initramfs (busybox, modules, agent)");
    if (Status s =
            RunCommand({"sh", "-c",
                        "cd " + ShellQuote(root) +
                            " && find . | sort | cpio -o -H newc --quiet -R 0:0 | gzip -6 > " +
                            ShellQuote(work + "/initrd.img")});
        !s.ok()) {
      return s;
    }
    step.Done();
  }

  // 4. The optional root disk.
  if (o.rootfs) {
    const std::string tree = work + "/rootfs";
    const std::string mirror = o.mirror.empty() ? DefaultMirror() : o.mirror;
    std::string include;
    for (const auto& p : o.rootfs_packages) include += (include.empty() ? "" : ",") + p;
    {
      Step step(progress, "debootstrap bookworm (" + include + ") from " + mirror);
      if (Status s = RunCommand({"debootstrap", "--variant=minbase", "--include=" + include,
                                 "bookworm", tree, mirror});
          !s.ok()) {
        return s;
      }
      step.Done();
    }
    fs::remove_all(tree + "/var/cache/apt/archives", ec);
    fs::remove_all(tree + "/var/lib/apt/lists", ec);
    {
      Step step(progress, "making rootfs.ext4 (" + o.rootfs_size + ")");
      if (Status s = RunCommand({"mke2fs", "-q", "-t", "ext4", "-d", tree, "-L", "airlock-root",
                                 work + "/rootfs.ext4", o.rootfs_size});
          !s.ok()) {
        return s;
      }
      step.Done();
    }
    fs::remove_all(tree, ec);
  }
  fs::remove_all(work + "/pkg", ec);
  fs::remove_all(root, ec);

  json manifest = {{"key", key},
                   {"inputs", inputs},
                   {"kernel_package", kernel.first.empty() ? o.kernel_deb : kernel.first},
                   {"kernel_version", kernel.second},
                   {"modules", module_list},
                   {"ca", !o.ca_cert.empty()},
                   {"rootfs", o.rootfs},
                   {"vmlinux_sha256", crypto::Sha256Hex(ReadFile(work + "/vmlinux"))},
                   {"initrd_sha256", crypto::Sha256Hex(ReadFile(work + "/initrd.img"))}};
  if (Status s = WriteFile(work + "/manifest.json", manifest.dump(2) + "\n", read_perms); !s.ok()) {
    return s;
  }
  fs::rename(work, final_dir, ec);
  if (ec) return Status::Error("cannot move the image into place: " + ec.message());
  cleanup.dir.clear();
  link_default();
  progress << "guest image ready: " << final_dir << "\n";
  auto image = LoadImage(final_dir);
  if (image.ok()) image.value().cached = false;
  return image;
}

}  // namespace airlock::vmlaunch
