// VmRecord: everything a VM holds on the host, in <state>/vms/<id>/state.json. The record is
// written *before* each resource is taken (write-ahead), so whoever finds it after a crash (the
// `gc` command) can give back exactly what was taken: the VMM process, its cgroup, the gateway
// session, the nftables elements, the tap, the address lease and the directory. The owner (the
// launcher for `run`, the monitor for `start`) is named by pid and start time. Plain data plus
// file helpers; not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "gateway/base/status.h"

namespace airlock::vmlaunch {

struct VmRecord {
  std::string id;
  std::string backend;
  std::string dir;
  std::string state_dir;
  std::string policy;
  std::string control_socket;
  std::string pool;  // the address range, for releasing the lease
  int64_t created_unix = 0;
  int64_t expires_unix = 0;  // 0: no TTL
  pid_t owner_pid = 0;
  uint64_t owner_start = 0;
  pid_t vmm_pid = 0;
  uint64_t vmm_start = 0;
  std::string block;    // the leased /30 ("" until leased)
  std::string guest;    // the guest's address
  std::string gateway;  // the host side of the link
  std::string tap;      // "" until created
  bool nft_link = false;
  std::string session_id;
  std::vector<std::string> cgroups;
  int memory_mib = 0;
  int vcpus = 0;
  std::string accel;
  std::string shape;  // the snapshot key of its shape (without the VMM): pools match on it
  std::string image;  // the image directory it runs
  std::string staged_snapshot;     // a template's snapshot files before they are committed
  int64_t standby_after_ms = 0;    // idle time before the monitor suspends it (0: never)
  std::string standby_file;        // its saved state while on standby
  std::string state = "creating";  // creating, template, pooled, running, standby, stopping

  std::string file() const { return dir + "/state.json"; }
  Status Save() const;
  static Result<VmRecord> Load(const std::string& path);
  bool OwnerAlive() const;
};

// Seconds since the epoch, the unit of created_unix and expires_unix.
int64_t NowUnix();

// All records under <state_dir>/vms.
std::vector<VmRecord> ListVms(const std::string& state_dir);

// Gives back what `record` holds, last taken first; each step tolerates a resource that is
// already gone. Notes what it did on `log` (one line per resource) when given.
void ReleaseVm(const VmRecord& record, std::ostream* log);

}  // namespace airlock::vmlaunch
