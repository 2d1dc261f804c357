// Snapshots: a template VM booted once, without a network, to a ready agent and saved, so that
// later VMs of the same image and shape restore it instead of booting a kernel. A snapshot lives
// in the image's directory, <image>/snapshots/<key>/: `memory` (the guest's RAM: a QEMU template
// ran with its memory in this file, shared, so the saved state leaves it out; Firecracker writes
// it at the save) and `state` (devices and CPUs), committed by `snapshot.json` written last. The
// key is a hash of everything the saved machine must match: backend, accelerator, memory, vCPUs,
// overlay size, root disk, and the VMM binary itself. Restored VMs map `memory` privately
// (copy-on-write), so the pages none of them writes are shared between all of them. Plain functions
// over files; any thread.
#pragma once

#include <string>

#include "gateway/base/status.h"

namespace airlock::vmlaunch {

struct VmShape {
  std::string backend;
  std::string accel;
  int memory_mib = 0;
  int vcpus = 0;
  std::string overlay;
  bool rootfs = false;
};

struct Snapshot {
  std::string dir;
  std::string memory;  // dir/memory
  std::string state;   // dir/state
  std::string key;
};

// The snapshot key for `shape` saved by the VMM build `vmm_fingerprint` (pure).
std::string SnapshotKey(const VmShape& shape, const std::string& vmm_fingerprint);
// Identifies the installed VMM binary of `backend` (its path, size and change time): a snapshot
// saved by another build of QEMU or Firecracker is not restored. "" if it is not found.
std::string VmmFingerprint(const std::string& backend);

// Where the snapshot for `shape` of the image in `image_dir` lives (whether or not it exists).
Snapshot SnapshotFor(const std::string& image_dir, const VmShape& shape);
// The committed snapshot for `shape`, or an error saying there is none.
Result<Snapshot> FindSnapshot(const std::string& image_dir, const VmShape& shape);
// Makes the files of a saved template (`staged`: its memory and state files) the snapshot for
// `shape`, replacing an older one; VMs still running from the older one keep their open files.
Status CommitSnapshot(const Snapshot& staged, const std::string& image_dir, const VmShape& shape);

}  // namespace airlock::vmlaunch
