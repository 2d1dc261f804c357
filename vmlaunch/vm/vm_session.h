// VmSession: one microVM from create to destroy. Create() fetches the gateway's CA, then takes,
// in order and each recorded before it is taken (VmRecord): a state directory, a /30 lease, a
// tap, the firewall elements, a gateway session for the guest's address, a cgroup, and the VMM;
// then it waits for the guest agent and hands it the CA bundle and the session's variables.
// Destroy() (also run by the destructor, and on any failure part-way) asks the guest to power
// off, stops the VMM and gives everything back.
// The owner is the process that called Create(): the launcher for `run`, the monitor for
// `start`. Single-threaded.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <ostream>
#include <string>

#include "gateway/base/status.h"
#include "vmlaunch/backends/vmm.h"
#include "vmlaunch/vm/agent_client.h"
#include "vmlaunch/vm/vm_record.h"

namespace airlock::vmlaunch {

struct VmOptions {
  std::string backend = "qemu";
  std::string policy;
  std::string control_socket = "/run/airlock/control.sock";
  std::string state_dir = "/run/airlock";
  std::string pool = "100.96.0.0/16";
  uint16_t proxy_port = 3128;
  std::string image = "/var/cache/airlock";  // an image directory or the cache holding one
  std::chrono::seconds ttl{3600};
  int memory_mib = 512;
  int vcpus = 1;
  std::string accel = "auto";
  std::string overlay = "256M";            // the guest's writable space
  bool rootfs = false;                     // attach the image's root disk (if it has one)
  std::map<std::string, std::string> env;  // session variables for every command
  std::chrono::milliseconds boot_timeout{60000};
};

// Where the time went: the launcher's own work apart from the guest's boot.
struct VmTimings {
  int64_t setup_ms = 0;         // create until the VMM was started (lease, tap, rules, session)
  int64_t boot_ms = 0;          // VMM start until the agent said ready
  int64_t guest_kernel_ms = 0;  // the guest's uptime when its agent said ready
  int64_t configure_ms = 0;     // ready until configured
  int64_t ready_ms = 0;         // create until ready for commands
  int64_t teardown_ms = 0;
};

class VmSession {
 public:
  static Result<std::unique_ptr<VmSession>> Create(const VmOptions& options, std::ostream& log);
  ~VmSession();
  VmSession(const VmSession&) = delete;
  VmSession& operator=(const VmSession&) = delete;

  AgentClient& agent() { return *agent_; }
  const VmRecord& record() const { return record_; }
  VmRecord& record() { return record_; }
  const VmTimings& timings() const { return timings_; }
  // Idempotent. `graceful`: ask the guest to power off first (a few seconds at most).
  void Destroy(bool graceful = true);

 private:
  VmSession() = default;
  Status Boot(const VmOptions& options, std::ostream& log);

  VmRecord record_;
  VmTimings timings_;
  std::unique_ptr<Vmm> vmm_;
  std::unique_ptr<AgentClient> agent_;
  bool destroyed_ = false;
};

// Gives back what VMs with a dead owner still hold, and what leases of dead sandboxes hold;
// returns how many it cleaned. `log` gets one line per resource.
int CollectGarbage(const std::string& state_dir, const std::string& pool, std::ostream* log);

}  // namespace airlock::vmlaunch
