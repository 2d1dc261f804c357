// Cgroup: the VMM's own control group, with a memory limit and a process limit, on cgroup v2
// (unified) or v1 (the memory and pids hierarchies), whichever the host offers; on a host that
// offers neither (or read-only cgroupfs) Create() says so and the VM runs without one. Paths are
// recorded so that `gc` can remove a group whose owner died. Not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gateway/base/status.h"

namespace airlock::vmlaunch {

struct CgroupSpec {
  std::string name;
  uint64_t memory_bytes = 0;
  int pids_max = 0;
};

// Creates the group(s); returns the directories made (the procs file of each is
// <dir>/cgroup.procs). `root` is normally /sys/fs/cgroup.
Result<std::vector<std::string>> CreateCgroup(const CgroupSpec& spec,
                                              const std::string& root = "/sys/fs/cgroup");
// Removes the directories (once their processes are gone); retries briefly while the kernel
// finishes tearing a group down.
void RemoveCgroup(const std::vector<std::string>& dirs);

}  // namespace airlock::vmlaunch
