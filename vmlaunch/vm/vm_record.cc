// VmRecord: JSON in and out; the ordered release.
#include "vmlaunch/vm/vm_record.h"

#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gateway/control/control_client.h"
#include "vmlaunch/backends/vmm.h"
#include "vmlaunch/network/address_pool.h"
#include "vmlaunch/network/link.h"
#include "vmlaunch/network/nft_table.h"
#include "vmlaunch/process/process.h"
#include "vmlaunch/process/read_file.h"
#include "vmlaunch/vm/cgroup.h"

namespace airlock::vmlaunch {

namespace fs = std::filesystem;
using nlohmann::json;

#define AIRLOCK_VM_RECORD_FIELDS(X)                                                                \
  X(id)                                                                                            \
  X(backend)                                                                                       \
  X(dir)                                                                                           \
  X(state_dir)                                                                                     \
  X(policy)                                                                                        \
  X(control_socket)                                                                                \
  X(pool)                                                                                          \
  X(created_unix)                                                                                  \
  X(expires_unix) X(owner_pid) X(owner_start) X(vmm_pid) X(vmm_start) X(block) X(guest) X(gateway) \
      X(tap) X(nft_link) X(session_id) X(cgroups) X(memory_mib) X(vcpus) X(accel) X(shape)         \
          X(image) X(staged_snapshot) X(standby_after_ms) X(standby_file) X(state)

Status VmRecord::Save() const {
  json j;
#define AIRLOCK_TO_JSON(f) j[#f] = f;
  AIRLOCK_VM_RECORD_FIELDS(AIRLOCK_TO_JSON)
#undef AIRLOCK_TO_JSON
  const std::string tmp = file() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << j.dump(2) << "\n";
    f.flush();
    if (!f) return Status::Error("cannot write " + tmp);
  }
  std::error_code ec;
  fs::rename(tmp, file(), ec);
  return ec ? Status::Error("cannot write " + file() + ": " + ec.message()) : Status::Ok();
}

Result<VmRecord> VmRecord::Load(const std::string& path) {
  auto j = json::parse(ReadFile(path), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Error("unreadable VM record " + path);
  VmRecord r;
#define AIRLOCK_FROM_JSON(f) \
  if (j.contains(#f)) j[#f].get_to(r.f);
  AIRLOCK_VM_RECORD_FIELDS(AIRLOCK_FROM_JSON)
#undef AIRLOCK_FROM_JSON
  return r;
}

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool VmRecord::OwnerAlive() const { return ProcessAlive(owner_pid, owner_start); }

std::vector<VmRecord> ListVms(const std::string& state_dir) {
  std::vector<VmRecord> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(state_dir + "/vms", ec)) {
    auto r = VmRecord::Load(e.path().string() + "/state.json");
    if (r.ok()) {
      out.push_back(*r);
    } else if (e.is_directory()) {
      // A directory whose record never got written: only the directory to give back.
      VmRecord bare;
      bare.id = e.path().filename().string();
      bare.dir = e.path().string();
      bare.state = "broken";
      out.push_back(bare);
    }
  }
  return out;
}

void ReleaseVm(const VmRecord& r, std::ostream* log) {
  auto note = [log, &r](const std::string& what) {
    if (log) *log << "  " << r.id << ": " << what << "\n";
  };
  if (r.vmm_pid > 0 && ProcessAlive(r.vmm_pid, r.vmm_start)) {
    TerminateProcess(r.vmm_pid, std::chrono::milliseconds(2000));
    note("stopped the VMM (pid " + std::to_string(r.vmm_pid) + ")");
  }
  if (!r.cgroups.empty()) {
    RemoveCgroup(r.cgroups);
    note("removed its cgroup");
  }
  if (!r.session_id.empty() && !r.control_socket.empty()) {
    auto s = control::ControlClient(r.control_socket).DeleteSession(r.session_id);
    note(s.ok() ? "ended gateway session " + r.session_id
                : "could not end gateway session " + r.session_id + ": " + s.status().message());
  }
  auto guest = net::IpAddress::Parse(r.guest);
  if (r.nft_link && guest) {
    vmnet::NftTable nft;
    if (nft.RemoveLink(r.tap, *guest).ok()) note("removed its firewall elements");
  }
  if (!r.tap.empty() && vmnet::DeleteLink(r.tap).ok()) note("deleted tap " + r.tap);
  std::string error;
  auto range = net::Cidr::Parse(r.pool, &error);
  auto block = net::IpAddress::Parse(r.block);
  if (range && block) {
    vmnet::AddressPool pool(r.state_dir + "/address-pool.json", *range);
    if (pool.Release(*block).ok()) note("released lease " + r.block + "/30");
  }
  std::error_code ec;
  if (!r.standby_file.empty()) {
    const bool removed = fs::remove(r.standby_file, ec);
    if (fs::remove(SavedMemoryPath(r.standby_file), ec) || removed) {
      note("removed its standby state " + r.standby_file);
    }
  }
  if (!r.staged_snapshot.empty() && fs::remove_all(r.staged_snapshot, ec) > 0) {
    note("removed the unfinished snapshot " + r.staged_snapshot);
  }
  if (!r.dir.empty() && fs::remove_all(r.dir, ec) > 0) note("removed " + r.dir);
}

}  // namespace airlock::vmlaunch
