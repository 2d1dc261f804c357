// The warm pool: VMs of one image and shape restored ahead of time from its snapshot, without a
// network, each owned by a monitor of its own (state "pooled"). `run` and `start` take one by
// asking its monitor to attach it to their session (VmSession::Attach: lease, tap address,
// firewall elements, gateway session, identity, CA, variables); a monitor attaches once, so a
// pooled VM never serves two sessions. After a take, a background process refills the pool to
// its size, within the host's memory (a VM is added only while MemAvailable keeps a reserve) and
// kPoolMax. A pool's size and options are in <state>/pools/<key>.json; a dead pooled VM is an
// ordinary VM record with a dead owner, so `gc` reclaims it. Single-threaded; pool changes are
// serialised by a lock on the pool's file.
#pragma once

#include <nlohmann/json.hpp>

#include <ostream>
#include <string>
#include <vector>

#include "gateway/base/status.h"
#include "vmlaunch/vm/vm_session.h"

namespace airlock::vmlaunch {

inline constexpr int kPoolMax = 64;
// Memory a refill leaves the host (beyond the guest's own), in MiB.
inline constexpr int64_t kPoolMemoryReserveMib = 1024;

// The key of the pool that VMs of `options` (image and shape) come from; resolves the image and
// the accelerator as Create() would.
Result<std::string> PoolKey(const VmOptions& options);

// Attaches a ready pooled VM of `options`' image and shape to a session with `options`' policy,
// TTL and variables; what its monitor answered (id, guest, session, expires_unix, ...). An error
// with StatusCode::kNotFound if none was ready.
Result<nlohmann::json> TakeFromPool(const VmOptions& options);

// Sets the pool for `options`' image and shape to `size` VMs and adds the ones missing (each
// restored by a monitor of its own; needs the shape's snapshot). Returns how many are ready.
// `size` 0 empties it.
Result<int> FillPool(const VmOptions& options, int size, std::ostream& log);
// Starts a process of its own that refills the pool `options` came from, if it has one.
void RefillPoolInBackground(const VmOptions& options);

struct PoolInfo {
  std::string key;
  int size = 0;
  int ready = 0;
  std::string image;
  nlohmann::json shape;
};
std::vector<PoolInfo> ListPools(const std::string& state_dir);

}  // namespace airlock::vmlaunch
