// The guest image: an ELF vmlinux from Debian's linux-image-cloud-amd64 (downloaded with
// apt-get, unpacked, never installed), an initramfs of busybox-static, the virtio modules, the
// guest agent, its init and the gateway's CA certificate; optionally a Debian root disk
// (debootstrap) that guests mount read-only under a throw-away overlay. Images are cached by a
// hash of everything that goes into them, so a second build with the same inputs is instant.
// Single-threaded; prints progress for the slow steps to a stream.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "gateway/base/status.h"
#include "vmlaunch/guest/ca_bundle.h"

namespace airlock::vmlaunch {

// The modules a guest loads, in load order (no depmod in the guest: the order is the
// dependency order). Missing optional ones (vsock for Firecracker, overlay and virtio_blk for a
// root disk) are skipped with a warning.
extern const std::vector<std::string> kGuestModules;

struct ImageOptions {
  std::string cache_dir = "/var/cache/airlock";
  std::string kernel_package = "linux-image-cloud-amd64";  // a metapackage is followed
  std::string kernel_deb;  // a local .deb instead of apt-get download
  std::string busybox = "/bin/busybox";
  std::string agent;    // the static airlock-agent binary
  std::string init;     // guest/init.sh
  std::string ca_cert;  // PEM, optional
  // The host's root certificates, carried in the initramfs at the same path so that the guest
  // assembles its CA bundle itself (a root disk's own roots win); "" or a missing file: none.
  std::string roots = std::string(kSystemRoots);
  bool rootfs = false;
  std::string rootfs_size = "2G";
  std::vector<std::string> rootfs_packages = {"curl", "git", "python3", "ca-certificates"};
  std::string mirror;  // default: the first deb.debian.org-style URI in apt's sources
};

struct Image {
  std::string dir;     // <cache>/images/<key>
  std::string kernel;  // dir/vmlinux
  std::string initrd;  // dir/initrd.img
  std::string rootfs;  // dir/rootfs.ext4, or ""
  std::string key;
  bool has_ca = false;
  bool cached = false;  // nothing had to be built
};

Result<Image> BuildImage(const ImageOptions& options, std::ostream& progress);
// The image a build made last (the `default` link in <cache>/images), or an error saying how to
// build one.
Result<Image> LoadImage(const std::string& dir_or_cache);

// The first Debian archive an APT sources text names (deb822 `URIs:` or one-line `deb`), skipping
// comments and the security archive; "" if none. debootstrap's default mirror.
std::string MirrorFromSources(const std::string& text);

}  // namespace airlock::vmlaunch
