// VmSession: the ordered, recorded set-up; the ordered release; garbage collection.
#include "vmlaunch/vm/vm_session.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gateway/base/base64.h"
#include "gateway/control/control_client.h"
#include "gateway/crypto/random.h"
#include "vmlaunch/backends/netns_backend.h"
#include "vmlaunch/ca_trust.h"
#include "vmlaunch/image/image_builder.h"
#include "vmlaunch/network/address_pool.h"
#include "vmlaunch/network/link.h"
#include "vmlaunch/network/nft_table.h"
#include "vmlaunch/process/command.h"
#include "vmlaunch/process/interrupt.h"
#include "vmlaunch/process/process.h"
#include "vmlaunch/vm/accel.h"
#include "vmlaunch/vm/cgroup.h"

namespace airlock::vmlaunch {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t).count();
}

// The VMM's own memory on top of the guest's: QEMU's code, TCG's translation cache, buffers.
constexpr uint64_t kVmmOverheadBytes = 256u << 20;

std::string ProxyUrl(const VmRecord& r, const VmOptions& o) {
  return "http://" + r.gateway + ":" + std::to_string(o.proxy_port);
}

// The part of an `identity` request every restored or resumed guest needs: the host's clock
// and fresh entropy from the host.
nlohmann::json ClockAndSeed() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return {{"time_unix_ns", std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()},
          {"seed", Base64Encode(crypto::RandomHex(64))}};
}

}  // namespace

Result<std::unique_ptr<VmSession>> VmSession::Create(const VmOptions& o, std::ostream& log) {
  std::unique_ptr<VmSession> vm(new VmSession());
  Status s = vm->Boot(o, log);
  if (!s.ok()) {
    vm->Destroy(false);
    return s;
  }
  return vm;
}

Status VmSession::Boot(const VmOptions& o, std::ostream& log) {
  const auto start = Clock::now();
  options_ = o;
  std::string error;
  auto range = net::Cidr::Parse(o.pool, &error);
  if (!range) return Status::Error("--pool: " + error);
  auto image = LoadImage(o.image);
  if (!image.ok()) return image.status();
  if (o.rootfs && image->rootfs.empty()) {
    return Status::Error(
        "--rootfs: the image has no root disk (build it with `vmlaunch image "
        "build --rootfs`)");
  }
  auto vmm = MakeVmm(o.backend);
  if (!vmm.ok()) return vmm.status();
  vmm_ = std::move(vmm).value();
  std::string accel = "kvm";
  if (o.backend == "qemu") {
    auto a = ResolveAccel(o.accel, *image, o.state_dir, log);
    if (!a.ok()) return a.status();
    accel = *a;
  }
  const VmShape shape{.backend = o.backend,
                      .accel = accel,
                      .memory_mib = o.memory_mib,
                      .vcpus = o.vcpus,
                      .overlay = o.overlay,
                      .rootfs = o.rootfs};
  std::optional<Snapshot> snapshot;
  if (o.start == VmStart::kAuto || o.start == VmStart::kPooled) {
    auto found = FindSnapshot(image->dir, shape);
    if (found.ok()) {
      snapshot = *found;
    } else if (o.start == VmStart::kPooled) {
      return found.status();
    }
  }
  const bool networked = o.start == VmStart::kAuto || o.start == VmStart::kCold;
  // The gateway's CA first: a gateway that cannot give it is not worth booting for.
  if (networked) {
    control::ControlClient control(o.control_socket);
    auto ca = FetchGatewayCa(control, log);
    if (!ca.ok()) return ca.status();
    gateway_ca_ = *ca;
  }
  // VMs whose owner died before they were given back would otherwise hold addresses and names.
  CollectGarbage(o.state_dir, o.pool, nullptr);
  const auto setup_start = Clock::now();  // the launcher's own work (not the one-off probe)

  VmRecord& r = record_;
  r.id = "vm-" + crypto::RandomHex(4);
  r.backend = o.backend;
  r.state_dir = o.state_dir;
  r.dir = o.state_dir + "/vms/" + r.id;
  r.control_socket = o.control_socket;
  r.pool = o.pool;
  r.created_unix = NowUnix();
  r.owner_pid = getpid();
  r.owner_start = ProcessStartTime(getpid()).value_or(0);
  r.memory_mib = o.memory_mib;
  r.vcpus = o.vcpus;
  r.accel = accel;
  r.shape = SnapshotKey(shape, image->dir);  // (the pool key: this image in this shape)
  r.image = image->dir;
  r.standby_after_ms = o.standby_after.count();
  std::error_code ec;
  fs::create_directories(r.dir, ec);
  if (ec) return Status::Error("cannot create " + r.dir + ": " + ec.message());
  fs::permissions(r.dir, fs::perms::owner_all, ec);
  if (Status s = r.Save(); !s.ok()) return s;

  // The tap is named after the VM, so a name is never reused while a leftover of a crashed VM
  // may still hold it. A VM without a network yet gets it bare: no address, down, in no set of
  // the firewall, so nothing it sends goes anywhere.
  r.tap = "al" + r.id;  // "alvm-" + 8 hex: 13 characters, under IFNAMSIZ
  if (networked) {
    if (Status s = TakeNetwork(o, ""); !s.ok()) return s;
  } else {
    if (Status s = r.Save(); !s.ok()) return s;
    if (Status s = vmnet::CreateTapLink(r.tap, std::nullopt); !s.ok()) return s;
  }

  auto cg =
      CreateCgroup({.name = r.id,
                    .memory_bytes = (static_cast<uint64_t>(o.memory_mib) << 20) + kVmmOverheadBytes,
                    .pids_max = 256});
  if (cg.ok()) {
    r.cgroups = *cg;
    if (Status s = r.Save(); !s.ok()) return s;
  } else {
    log << "vmlaunch: running the VMM without a cgroup of its own: " << cg.status().message()
        << "\n";
  }

  VmSpec& spec = spec_;
  spec.id = r.id;
  spec.dir = r.dir;
  spec.kernel = image->kernel;
  spec.initrd = image->initrd;
  if (o.rootfs) spec.rootfs = image->rootfs;
  spec.tap = r.tap;
  // A locally administered unicast MAC derived from the VM's id.
  spec.mac = "52:41:" + r.id.substr(3, 2) + ":" + r.id.substr(5, 2) + ":" + r.id.substr(7, 2) +
             ":" + r.id.substr(9, 2);
  spec.memory_mib = o.memory_mib;
  spec.vcpus = o.vcpus;
  spec.accel = accel;
  spec.verbose_console = std::getenv("VMLAUNCH_CONSOLE_VERBOSE") != nullptr;
  for (const auto& dir : r.cgroups) spec.cgroup_procs.push_back(dir + "/cgroup.procs");
  spec.kernel_args = "airlock.overlay=" + o.overlay + (o.rootfs ? " airlock.rootfs=1" : "");
  // A cold boot's guest takes its identity from the kernel's command line.
  const std::string cold_identity = " airlock.ip=" + r.guest + "/30 airlock.gw=" + r.gateway +
                                    " airlock.proxy=" + ProxyUrl(r, o) +
                                    " airlock.hostname=" + r.id;
  if (o.start == VmStart::kTemplate) {
    // The template's memory goes straight into the snapshot's file.
    const Snapshot target = SnapshotFor(image->dir, shape);
    snapshot_image_dir_ = image->dir;
    shape_ = shape;
    const std::string staged = target.dir + ".new-" + r.id;
    staged_ = {
        .dir = staged, .memory = staged + "/memory", .state = staged + "/state", .key = target.key};
    r.staged_snapshot = staged_.dir;
    if (Status s = r.Save(); !s.ok()) return s;
    fs::create_directories(staged_.dir, ec);
    if (ec) return Status::Error("cannot create " + staged_.dir + ": " + ec.message());
    spec.memory_file = staged_.memory;
    spec.memory_shared = true;
  } else if (snapshot) {
    spec.memory_file = snapshot->memory;
    spec.restore_state = snapshot->state;
    spec.restore_memory_from_file = true;
  } else {
    spec.kernel_args += cold_identity;
  }
  timings_.setup_ms = MsSince(setup_start);
  Status launched = LaunchVmm(o);
  if (!launched.ok() && snapshot && o.start == VmStart::kAuto && !Interrupted()) {
    // A snapshot that does not restore (saved by a QEMU that has since changed in a way its
    // fingerprint missed, a damaged file) is no reason to fail: boot cold.
    log << "vmlaunch: restoring the snapshot failed (" << launched.message() << "); booting cold\n";
    agent_.reset();
    if (r.vmm_pid > 0) TerminateProcess(r.vmm_pid, milliseconds(500));
    vmm_ = std::move(MakeVmm(o.backend)).value();
    spec.memory_file.clear();
    spec.restore_state.clear();
    spec.restore_memory_from_file = false;
    spec.kernel_args += cold_identity;
    launched = LaunchVmm(o);
  }
  if (!launched.ok()) return launched;
  if (o.start == VmStart::kTemplate || o.start == VmStart::kPooled) {
    if (Status s = WarmUp(o.start == VmStart::kPooled); !s.ok()) return s;
    r.state = o.start == VmStart::kTemplate ? "template" : "pooled";
    timings_.ready_ms = MsSince(start);
    return r.Save();
  }
  if (Status s = Personalize(o, log); !s.ok()) return s;
  timings_.ready_ms = MsSince(start);
  return Status::Ok();
}

Status VmSession::TakeNetwork(const VmOptions& o, const std::string& gateway_ca) {
  if (!gateway_ca.empty()) gateway_ca_ = gateway_ca;
  VmRecord& r = record_;
  std::string error;
  auto range = net::Cidr::Parse(o.pool, &error);
  if (!range) return Status::Error("--pool: " + error);
  r.policy = o.policy;
  r.control_socket = o.control_socket;  // (a pooled VM's session is made where its taker says)
  r.expires_unix = o.ttl.count() > 0 ? NowUnix() + o.ttl.count() : 0;
  vmnet::AddressPool pool(o.state_dir + "/address-pool.json", *range);
  auto lease = pool.Allocate(r.id, getpid());
  if (!lease.ok()) return lease.status();
  r.block = lease->block.ToString();
  r.gateway = lease->gateway().ToString();
  r.guest = lease->guest().ToString();
  if (Status s = r.Save(); !s.ok()) return s;
  // A pooled VM's tap exists already, bare: it gets its address now.
  Status tap = r.state == "attaching" ? vmnet::AddressTapLink(r.tap, lease->gateway())
                                      : vmnet::CreateTapLink(r.tap, lease->gateway());
  if (!tap.ok()) return tap;

  r.nft_link = true;
  if (Status s = r.Save(); !s.ok()) return s;
  vmnet::NftTable nft;
  if (Status s = nft.AddLink(r.tap, lease->guest()); !s.ok()) {
    return Status::Error(s.message() + " (is the airlock table installed? `vmlaunch net install`)");
  }

  control::ControlClient control(o.control_socket);
  auto session = control.CreateSession({{"policy", o.policy},
                                        {"source", r.guest},
                                        {"token", false},
                                        {"ttl_seconds", o.ttl.count()},
                                        {"labels", {{"backend", o.backend}, {"vm", r.id}}}});
  if (!session.ok()) return session.status();
  r.session_id = (*session)["id"].get<std::string>();
  // Placeholders for the credentials the gateway injects: the guest sees only these names.
  placeholders_.clear();
  if (session->contains("placeholders") && (*session)["placeholders"].is_object()) {
    for (const auto& [k, v] : (*session)["placeholders"].items()) {
      if (v.is_string()) placeholders_[k] = v.get<std::string>();
    }
  }
  return r.Save();
}

Status VmSession::LaunchVmm(const VmOptions& o) {
  VmRecord& r = record_;
  const auto spawned = Clock::now();
  restored_ = !spec_.restore_state.empty();
  auto pid = vmm_->Launch(spec_);
  if (!pid.ok()) return pid.status();
  r.vmm_pid = *pid;
  r.vmm_start = ProcessStartTime(*pid).value_or(0);
  if (Status s = r.Save(); !s.ok()) return s;
  auto fd = vmm_->ConnectAgent(spec_, o.boot_timeout);
  if (!fd.ok()) return fd.status();
  agent_ = std::make_unique<AgentClient>(*fd, next_agent_id_);
  Result<int64_t> uptime = agent_->WaitReady(o.boot_timeout, restored_);
  if (!uptime.ok()) {
    // The directory goes at teardown: say here what the guest (or QEMU) said last.
    std::string text;
    for (const char* file : {"/console.log", "/vmm.log"}) {
      std::ifstream in(r.dir + file);
      std::deque<std::string> tail;
      for (std::string line; std::getline(in, line);) {
        tail.push_back(line);
        if (tail.size() > 12) tail.pop_front();
      }
      if (tail.empty()) continue;
      text += std::string("; ") + (file[1] == 'c' ? "the guest console" : "QEMU") + " ended with:";
      for (const auto& line : tail) text += "\n  | " + line;
    }
    return Status::Error(uptime.status().message() + (text.empty() ? "" : text));
  }
  timings_.boot_ms = MsSince(spawned);
  timings_.guest_kernel_ms = restored_ ? 0 : *uptime;
  timings_.start = restored_ ? "restored" : "cold";
  return Status::Ok();
}

Status VmSession::Personalize(const VmOptions& o, std::ostream&) {
  VmRecord& r = record_;
  const auto configure = Clock::now();
  if (restored_) {
    // Everything that makes this VM unlike the others restored from the same snapshot, before
    // any command of the session runs: the clock, fresh entropy, the name and the network.
    nlohmann::json identity = ClockAndSeed();
    identity.update({{"hostname", r.id},
                     {"address", r.guest + "/30"},
                     {"gateway", r.gateway},
                     {"proxy", ProxyUrl(r, o)},
                     {"mac", spec_.mac}});
    if (Status s = agent_->Identity(identity); !s.ok()) {
      return s;
    }
  }
  std::map<std::string, std::string> env = o.env;
  env["AIRLOCK_SESSION"] = r.session_id;
  env["AIRLOCK_VM"] = r.id;
  for (const auto& [k, v] : placeholders_) env[k] = v;
  // Every command trusts the gateway's CA (inspected TLS) beside the usual roots.
  if (!gateway_ca_.empty()) {
    if (Status s = InstallGuestCa(*agent_, gateway_ca_); !s.ok()) return s;
    AddCaTrustEnv(std::string(kGuestCaPath), &env);
  }
  if (Status s = agent_->Configure(env); !s.ok()) return s;
  timings_.configure_ms = MsSince(configure);
  r.state = "running";
  return r.Save();
}

Status VmSession::WarmUp(bool pooled) {
  // A template's agent reads the CA bundle's parts once and keeps them in the snapshot. Under
  // TCG a restored guest translates each code path anew the first time it runs it: a pooled VM
  // runs its attach's paths now (its own name, clock, entropy and MAC, eth0 up without an
  // address), so that they are translated before a session waits on them. Nothing of any
  // session is in the VM yet; the attach sets the clock, reseeds, and writes the bundle again
  // with the gateway's CA.
  if (pooled) {
    nlohmann::json identity = ClockAndSeed();
    identity.update({{"hostname", record_.id}, {"mac", spec_.mac}});
    if (Status s = agent_->Identity(identity); !s.ok()) return s;
  }
  if (Status s = InstallGuestCa(*agent_, ""); !s.ok()) return s;
  auto done = agent_->Exec({.argv = {"true"}, .timeout = std::chrono::seconds(30)});
  if (!done.ok()) return done.status();
  if (done->exit_code != 0) return Status::Error("the guest cannot run `true`");
  return Status::Ok();
}

Status VmSession::SaveSnapshot(std::ostream& log) {
  if (record_.state != "template") return Status::Error("only a template VM can be saved");
  const auto start = Clock::now();
  if (Status s = agent_->Quiesce(); !s.ok()) return s;
  if (Status s = vmm_->Save(spec_, staged_.state); !s.ok()) return s;
  // The paused template's memory file is complete once QEMU is gone.
  agent_.reset();
  TerminateProcess(record_.vmm_pid, milliseconds(2000));
  if (Status s = CommitSnapshot(staged_, snapshot_image_dir_, shape_); !s.ok()) return s;
  record_.staged_snapshot.clear();
  (void)record_.Save();
  log << "vmlaunch: snapshot " << staged_.key << " saved in " << MsSince(start) << " ms\n";
  return Status::Ok();
}

Status VmSession::Suspend(std::ostream& log) {
  if (record_.state == "standby") return Status::Ok();
  if (record_.state != "running") return Status::Error("only a running VM can be suspended");
  // A reply still owed would come, after the resume, to a client that never asked for it.
  if (!agent_->Idle()) return Status::Error("the guest still owes replies; not suspended");
  const auto start = Clock::now();
  std::error_code ec;
  fs::create_directories(options_.standby_dir, ec);
  fs::permissions(options_.standby_dir, fs::perms::owner_all, ec);  // guest memory: root's only
  const std::string file = options_.standby_dir + "/" + record_.id + ".state";
  record_.standby_file = file;
  if (Status s = record_.Save(); !s.ok()) return s;
  // Nothing stale in the channel, then everything (a restored VM's memory is a private copy of
  // the snapshot's file: it is saved too, so the saved state stands alone).
  VmSpec save = spec_;
  save.memory_shared = false;
  if (Status s = agent_->Quiesce(); !s.ok()) return s;
  if (Status s = vmm_->Save(save, file); !s.ok()) return s;
  next_agent_id_ = agent_->next_id();
  agent_.reset();
  TerminateProcess(record_.vmm_pid, milliseconds(2000));
  record_.vmm_pid = 0;
  record_.vmm_start = 0;
  record_.state = "standby";
  if (Status s = record_.Save(); !s.ok()) return s;
  log << "monitor: " << record_.id << " suspended to " << file << " in " << MsSince(start)
      << " ms\n"
      << std::flush;
  return Status::Ok();
}

Status VmSession::Resume(std::ostream& log) {
  if (record_.state == "running") return Status::Ok();
  if (record_.state != "standby") return Status::Error("the VM is not on standby");
  const auto start = Clock::now();
  vmm_ = std::move(MakeVmm(record_.backend)).value();
  spec_.restore_state = record_.standby_file;
  spec_.restore_memory_from_file = false;
  // All of the memory is in the saved state: nothing of a snapshot is needed any more.
  if (!spec_.memory_file.empty()) spec_.memory_named = true;
  spec_.memory_file.clear();
  if (Status s = LaunchVmm(options_); !s.ok()) return s;
  // The guest slept: its clock is behind.
  if (Status s = agent_->Identity(ClockAndSeed()); !s.ok()) return s;
  std::error_code ec;
  fs::remove(record_.standby_file, ec);
  fs::remove(SavedMemoryPath(record_.standby_file), ec);
  record_.standby_file.clear();
  record_.state = "running";
  if (Status s = record_.Save(); !s.ok()) return s;
  log << "monitor: " << record_.id << " resumed in " << MsSince(start) << " ms\n" << std::flush;
  return Status::Ok();
}

Status VmSession::Attach(const VmOptions& o, std::ostream& log) {
  if (record_.state != "pooled") return Status::Error("the VM was taken already");
  const auto start = Clock::now();
  // From here on it is no pool's: if attaching fails half way, the monitor gives it all back.
  record_.state = "attaching";
  if (Status s = record_.Save(); !s.ok()) return s;
  control::ControlClient control(o.control_socket);
  auto ca = FetchGatewayCa(control, log);
  if (!ca.ok()) return ca.status();
  if (Status s = TakeNetwork(o, *ca); !s.ok()) return s;
  options_.standby_after = o.standby_after;
  options_.standby_dir = o.standby_dir;
  record_.standby_after_ms = o.standby_after.count();
  if (Status s = Personalize(o, log); !s.ok()) return s;
  timings_.start = "pooled";
  timings_.setup_ms = 0;
  timings_.boot_ms = 0;
  timings_.ready_ms = MsSince(start);
  return Status::Ok();
}

VmSession::~VmSession() { Destroy(); }

void VmSession::Destroy(bool graceful) {
  if (destroyed_) return;
  destroyed_ = true;
  const auto start = Clock::now();
  record_.state = "stopping";
  if (!record_.dir.empty()) (void)record_.Save();
  if (graceful && agent_ && record_.vmm_pid > 0) {
    // The guest syncs and resets; the VMM then exits by itself.
    if (agent_->Shutdown().ok()) {
      for (int i = 0; i < 200 && ProcessAlive(record_.vmm_pid, record_.vmm_start); ++i) {
        std::this_thread::sleep_for(milliseconds(10));
        int status;
        waitpid(record_.vmm_pid, &status, WNOHANG);
      }
    }
  }
  agent_.reset();
  ReleaseVm(record_, nullptr);
  timings_.teardown_ms = MsSince(start);
}

int CollectGarbage(const std::string& state_dir, const std::string& pool_range, std::ostream* log) {
  int cleaned = 0;
  for (const auto& r : ListVms(state_dir)) {
    if (r.state != "broken" && r.OwnerAlive()) continue;
    if (log) *log << "vmlaunch gc: " << r.id << " (owner pid " << r.owner_pid << " is gone)\n";
    ReleaseVm(r, log);
    ++cleaned;
  }
  // Leases whose owner died without a VM record: sandboxes of the netns backend.
  std::string error;
  auto range = net::Cidr::Parse(pool_range, &error);
  if (!range) return cleaned;
  vmnet::AddressPool pool(state_dir + "/address-pool.json", *range);
  auto leases = pool.List();
  if (!leases.ok()) return cleaned;
  for (const auto& lease : *leases) {
    if (lease.pid > 0 && (kill(lease.pid, 0) == 0 || errno == EPERM)) continue;
    if (log)
      *log << "vmlaunch gc: lease " << lease.block.ToString() << " of " << lease.owner << " (pid "
           << lease.pid << " is gone)\n";
    if (lease.owner.rfind("al-ns-", 0) == 0) {
      const std::string host_if = NetnsHostLink(*range, lease.block);
      vmnet::NftTable nft;
      (void)nft.RemoveLink(host_if, lease.guest());
      (void)vmnet::DeleteLink(host_if);
      (void)RunCommand({"ip", "netns", "delete", lease.owner});
      std::error_code ec;
      fs::remove_all("/etc/netns/" + lease.owner, ec);
      fs::remove_all(NetnsFilesDir(state_dir, lease.owner), ec);
    }
    (void)pool.Release(lease.block);
    ++cleaned;
  }
  return cleaned;
}

}  // namespace airlock::vmlaunch
