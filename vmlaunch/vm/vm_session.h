// VmSession: one microVM from create to destroy. Create() fetches the gateway's CA, then takes,
// in order and each recorded before it is taken (VmRecord): a state directory, a /30 lease, a
// tap, the firewall elements, a gateway session for the guest's address, a cgroup, and the VMM;
// then it waits for the guest agent and hands it the CA bundle and the session's variables.
// The VMM either boots the kernel (cold) or restores the image's snapshot for the VM's shape
// (vm/snapshot.h); a restored guest is then told its identity (clock, entropy, hostname, MAC,
// address, route, proxy) before anything else runs in it. A pooled VM is restored without a
// network and gets all of that later, when Attach() gives it to a session.
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
#include "vmlaunch/vm/snapshot.h"
#include "vmlaunch/vm/vm_record.h"

namespace airlock::vmlaunch {

enum class VmStart {
  kAuto,      // restore the image's snapshot for this shape when there is one, else boot cold
  kCold,      // always boot the kernel
  kTemplate,  // boot without a network, to be saved as the shape's snapshot (SaveSnapshot)
  kPooled,    // restore without a network and wait for Attach (the warm pool)
};

struct VmOptions {
  VmStart start = VmStart::kAuto;
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
  // A persistent VM idle this long is suspended to disk (0: never); see VmSession::Suspend.
  std::chrono::milliseconds standby_after{0};
  std::string standby_dir = "/var/lib/airlock/standby";  // where suspended VMs' state goes
};

// Where the time went: the launcher's own work apart from the guest's boot.
struct VmTimings {
  std::string start = "cold";   // how the guest came up: "cold", "restored" or "pooled"
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
  // A template (VmStart::kTemplate) becomes its shape's snapshot; the VM is paused afterwards
  // and only good for Destroy(false).
  Status SaveSnapshot(std::ostream& log);
  // Gives a pooled VM (VmStart::kPooled) to a session: the network, the gateway session, the
  // guest's identity, CA and variables, as Create() does for a VM of its own. `options` carries
  // the session's policy, TTL and variables; the shape is the pool's.
  Status Attach(const VmOptions& options, std::ostream& log);
  // Standby: Suspend saves the whole VM (memory, devices, its running processes) to a file and
  // stops the VMM, keeping the tap, firewall elements, gateway session and cgroup; Resume
  // restores it from that file on the same tap and sets the guest's clock (and reseeds it).
  // Each does nothing if the VM is already in that state.
  Status Suspend(std::ostream& log);
  Status Resume(std::ostream& log);
  bool suspended() const { return record_.state == "standby"; }
  // Idempotent. `graceful`: ask the guest to power off first (a few seconds at most).
  void Destroy(bool graceful = true);

 private:
  VmSession() = default;
  Status Boot(const VmOptions& options, std::ostream& log);
  // The lease, the tap's address, the firewall elements and the gateway session.
  Status TakeNetwork(const VmOptions& options, const std::string& gateway_ca);
  // Starts the VMM (restoring `spec_`'s snapshot if it names one) and waits for the agent.
  Status LaunchVmm(const VmOptions& options);
  // The restored guest's identity, then the CA bundle and the session's variables.
  Status Personalize(const VmOptions& options, std::ostream& log);
  // A template or pooled VM runs, while it waits, what an attach and a first exec will run:
  // the CA bundle (without a gateway's CA), one command, and for a pooled VM its own name,
  // clock and entropy.
  Status WarmUp(bool pooled);

  VmRecord record_;
  VmTimings timings_;
  VmOptions options_;
  VmSpec spec_;
  std::unique_ptr<Vmm> vmm_;
  std::unique_ptr<AgentClient> agent_;
  int64_t next_agent_id_ = 1;  // the id the next agent client starts from (see Suspend)
  std::string gateway_ca_;     // PEM, "" if the gateway has none
  std::map<std::string, std::string> placeholders_;  // the gateway session's, for the guest
  // A template's: where its snapshot goes, its shape, and the files it is saved to first.
  std::string snapshot_image_dir_;
  VmShape shape_;
  Snapshot staged_;
  bool restored_ = false;  // the guest came from a snapshot: it must be told its identity
  bool destroyed_ = false;
};

// Gives back what VMs with a dead owner still hold, and what leases of dead sandboxes hold;
// returns how many it cleaned. `log` gets one line per resource.
int CollectGarbage(const std::string& state_dir, const std::string& pool, std::ostream* log);

}  // namespace airlock::vmlaunch
