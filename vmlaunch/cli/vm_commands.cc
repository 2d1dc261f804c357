// The microVM commands: option checks, then VmSession / the monitor / the records.
#include "vmlaunch/cli/vm_commands.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "gateway/base/base64.h"
#include "gateway/crypto/digest.h"
#include "vmlaunch/process/interrupt.h"
#include "vmlaunch/process/process.h"
#include "vmlaunch/process/read_file.h"
#include "vmlaunch/vm/monitor.h"
#include "vmlaunch/vm/pool.h"

namespace airlock::vmlaunch {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kLauncherError = 125;  // as `docker run`: vmlaunch itself failed

int Fail(const std::string& message) {
  std::cerr << "vmlaunch: " << message << "\n";
  return kLauncherError;
}

std::string ReadAll(std::istream& in) {
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "a:b" split at the first ':'.
bool SplitPair(const std::string& s, std::string* a, std::string* b) {
  size_t colon = s.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) return false;
  *a = s.substr(0, colon);
  *b = s.substr(colon + 1);
  return true;
}

// The command's spec from the CLI options, or an error message.
Result<ExecSpec> MakeExecSpec(const CommandOptions& c) {
  ExecSpec spec;
  spec.argv = c.argv;
  if (spec.argv.empty()) return Status::Error("no command given (put it after --)");
  std::string error;
  if (!ParseEnv(c.env, &spec.env, &error)) return Status::Error(error);
  spec.cwd = c.cwd;
  auto timeout = ParseDuration(c.timeout);
  if (!timeout) return Status::Error("--timeout '" + c.timeout + "': use e.g. 30s, 5m, 1h, 0");
  spec.timeout = *timeout;
  if (c.forward_stdin) spec.stdin_data = ReadAll(std::cin);
  return spec;
}

json ContractJson(const ExecResult& r) {
  json j = {{"stdout", r.stdout_data}, {"stderr", r.stderr_data},      {"exit_code", r.exit_code},
            {"signal", r.signal},      {"duration_ms", r.duration_ms}, {"timed_out", r.timed_out}};
  if (!r.error.empty()) j["error"] = r.error;
  if (r.stdout_truncated) j["stdout_truncated"] = true;
  if (r.stderr_truncated) j["stderr_truncated"] = true;
  return j;
}

void Print(const json& j) {
  std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
}

// Streams output live (when not collecting for --json).
std::function<void(bool, std::string_view)> LiveOutput(bool json_mode) {
  if (json_mode) return {};
  return [](bool is_stderr, std::string_view data) {
    auto& out = is_stderr ? std::cerr : std::cout;
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.flush();
  };
}

int ExitStatus(const ExecResult& r) {
  if (!r.error.empty()) std::cerr << "vmlaunch: " << r.error << "\n";
  if (r.timed_out) std::cerr << "vmlaunch: the command timed out and was killed\n";
  return r.exit_code;
}

Status CheckShape(const VmOptions& vm) {
  if (vm.memory_mib < 64) return Status::Error("--memory: at least 64M");
  if (vm.vcpus < 1 || vm.vcpus > 32) return Status::Error("--cpus: 1 to 32");
  if (!ParseSize(vm.overlay)) return Status::Error("--overlay '" + vm.overlay + "': use e.g. 256M");
  return Status::Ok();
}

Status CheckVmOptions(const VmOptions& vm) {
  if (vm.policy.empty()) return Status::Error("--policy is required");
  return CheckShape(vm);
}

// Where `run` runs its command: a VM of its own in this process, or a pooled VM through its
// monitor. stop() gives the VM back and returns how long that took.
struct RunTarget {
  std::function<Status(const std::string&, std::string_view, int)> put;
  std::function<Result<ExecResult>(const ExecSpec&,
                                   const std::function<void(bool, std::string_view)>&)>
      exec;
  std::function<Result<std::string>(const std::string&)> get;
  std::function<int64_t()> stop;
};

RunTarget SessionTarget(VmSession& vm) {
  return {[&vm](const std::string& path, std::string_view data, int mode) {
            return vm.agent().Put(path, data, mode);
          },
          [&vm](const ExecSpec& spec, const std::function<void(bool, std::string_view)>& live) {
            return vm.agent().Exec(spec, live);
          },
          [&vm](const std::string& path) { return vm.agent().Get(path); },
          [&vm] {
            vm.Destroy();
            return vm.timings().teardown_ms;
          }};
}

// A final reply's error, if it has one.
Status ReplyStatus(const Result<GuestMessage>& reply) {
  if (!reply.ok()) return reply.status();
  if (auto error = reply->String("error")) return Status::Error(std::string(*error));
  return Status::Ok();
}

RunTarget MonitorTarget(const std::string& dir) {
  return {[dir](const std::string& path, std::string_view data, int mode) {
            return ReplyStatus(MonitorRequest(
                dir, {{"op", "put"}, {"path", path}, {"data", Base64Encode(data)}, {"mode", mode}},
                {}));
          },
          [dir](const ExecSpec& spec,
                const std::function<void(bool, std::string_view)>& live) -> Result<ExecResult> {
            ExecResult result;
            auto reply =
                MonitorRequest(dir, AgentClient::ExecRequestJson(spec), [&](const GuestMessage& r) {
                  return AgentClient::ApplyExecReply(r, &result, live);
                });
            if (!reply.ok()) return reply.status();
            return result;
          },
          [dir](const std::string& path) -> Result<std::string> {
            auto reply = MonitorRequest(dir, {{"op", "get"}, {"path", path}}, {});
            if (Status s = ReplyStatus(reply); !s.ok()) return s;
            auto data = reply->Bytes("data");
            if (!data) return GuestMessage::Violation("the content of " + path + " not in base64");
            return std::move(*data);
          },
          [dir]() -> int64_t {
            auto reply = MonitorRequest(dir, {{"op", "stop"}}, {});
            return reply.ok() ? reply->Int("teardown_ms").value_or(0) : 0;
          }};
}

}  // namespace

bool ParseEnv(const std::vector<std::string>& env, std::map<std::string, std::string>* out,
              std::string* error) {
  for (const auto& kv : env) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      *error = "--env '" + kv + "': use NAME=VALUE";
      return false;
    }
    (*out)[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return true;
}

int CmdImageBuild(const ImageOptions& options) {
  auto image = BuildImage(options, std::cerr);
  if (!image.ok()) return Fail(image.status().message());
  std::cout << image->dir << "\n";
  return 0;
}

int CmdImageSnapshot(VmOptions vm) {
  if (Status s = CheckShape(vm); !s.ok()) return Fail(s.message());
  if (vm.backend == "netns") return Fail("a netns sandbox has no machine to snapshot");
  InstallInterruptHandlers();
  vm.start = VmStart::kTemplate;
  vm.ttl = std::chrono::seconds(0);
  auto session = VmSession::Create(vm, std::cerr);
  if (!session.ok()) return Fail(session.status().message());
  const int64_t boot_ms = (*session)->timings().ready_ms;
  Status s = (*session)->SaveSnapshot(std::cerr);
  (*session)->Destroy(/*graceful=*/false);
  if (!s.ok()) return Fail(s.message());
  std::cerr << "vmlaunch: the template booted in " << boot_ms << " ms; `run` and `start` of this "
            << "image and shape now restore it (--cold boots instead)\n";
  return 0;
}

int CmdRun(VmOptions vm, const CommandOptions& c) {
  if (Status s = CheckVmOptions(vm); !s.ok()) return Fail(s.message());
  auto spec = MakeExecSpec(c);
  if (!spec.ok()) return Fail(spec.status().message());
  std::vector<std::pair<std::string, std::string>> puts, gets;
  for (const auto& p : c.put) {
    std::string local, guest;
    if (!SplitPair(p, &local, &guest) || guest[0] != '/') {
      return Fail("--put '" + p + "': use LOCAL:/ABSOLUTE/GUEST/PATH");
    }
    if (!fs::is_regular_file(local)) return Fail("--put: no such file: " + local);
    puts.emplace_back(local, guest);
  }
  for (const auto& g : c.get) {
    std::string guest, local;
    if (!SplitPair(g, &guest, &local) || guest[0] != '/') {
      return Fail("--get '" + g + "': use /ABSOLUTE/GUEST/PATH:LOCAL");
    }
    gets.emplace_back(guest, local);
  }
  vm.ttl = std::max(vm.ttl, std::chrono::duration_cast<std::chrono::seconds>(spec->timeout) +
                                std::chrono::seconds(300));
  InstallInterruptHandlers();
  // The VM: a warm one from the pool when one of this image and shape is ready (its monitor
  // then runs everything), else one of our own, restored or booted here.
  std::unique_ptr<VmSession> own;
  json timings;
  std::string id, start_kind;
  RunTarget target;
  auto taken = vm.start == VmStart::kAuto ? TakeFromPool(vm) : Result<json>(Status::Error(""));
  if (taken.ok()) {
    id = (*taken)["id"].get<std::string>();
    start_kind = "pooled";
    timings = (*taken)["timings_ms"];
    target = MonitorTarget(vm.state_dir + "/vms/" + id);
    RefillPoolInBackground(vm);
  } else {
    auto session = VmSession::Create(vm, std::cerr);
    if (!session.ok()) return Fail(session.status().message());
    own = std::move(session).value();
    id = own->record().id;
    target = SessionTarget(*own);
  }
  for (const auto& [local, guest] : puts) {
    struct stat st {};
    ::stat(local.c_str(), &st);
    if (Status s = target.put(guest, ReadFile(local), st.st_mode & 0777); !s.ok()) {
      target.stop();
      return Fail("--put " + local + ": " + s.message());
    }
  }
  const auto exec_start = std::chrono::steady_clock::now();
  auto result = target.exec(*spec, LiveOutput(c.json));
  const auto exec_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - exec_start)
                           .count();
  if (!result.ok()) {
    target.stop();
    return Fail(result.status().message());
  }
  json files = json::array();
  int status = 0;
  for (const auto& [guest, local] : gets) {
    auto data = target.get(guest);
    if (!data.ok()) {
      std::cerr << "vmlaunch: --get " << guest << ": " << data.status().message() << "\n";
      files.push_back({{"path", guest}, {"error", data.status().message()}});
      status = kLauncherError;
      continue;
    }
    std::ofstream(local, std::ios::binary | std::ios::trunc) << *data;
    files.push_back({{"path", guest},
                     {"saved_to", local},
                     {"size", data->size()},
                     {"sha256", crypto::Sha256Hex(*data)}});
  }
  const int64_t teardown_ms = target.stop();
  if (c.json) {
    json j = ContractJson(*result);
    j["files"] = files;
    j["vm"] = id;
    if (own) {
      const auto& t = own->timings();
      start_kind = t.start;
      timings = {{"launcher_setup", t.setup_ms},
                 {"boot", t.boot_ms},
                 {"guest_kernel", t.guest_kernel_ms},
                 {"configure", t.configure_ms},
                 {"create_to_ready", t.ready_ms}};
    }
    j["start"] = start_kind;
    timings["exec_round_trip"] = exec_ms;
    timings["teardown"] = teardown_ms;
    j["timings_ms"] = timings;
    Print(j);
  }
  int code = ExitStatus(*result);
  return status != 0 && code == 0 ? status : code;
}

int CmdStart(VmOptions vm, bool json_mode) {
  if (Status s = CheckVmOptions(vm); !s.ok()) return Fail(s.message());
  json hello;
  // A warm VM from the pool when one of this image and shape is ready.
  auto taken = vm.start == VmStart::kAuto ? TakeFromPool(vm) : Result<json>(Status::Error(""));
  if (taken.ok()) {
    hello = *taken;
    RefillPoolInBackground(vm);
  } else {
    std::cout.flush();
    auto spawned = SpawnMonitor(vm);
    if (!spawned.ok()) return Fail(spawned.status().message());
    hello = *spawned;
  }
  if (json_mode) {
    Print(hello);
  } else {
    std::cout << hello["id"].get<std::string>() << "\n";
  }
  return 0;
}

int CmdExec(const std::string& state_dir, const std::string& id, const CommandOptions& c) {
  auto spec = MakeExecSpec(c);
  if (!spec.ok()) return Fail(spec.status().message());
  InstallInterruptHandlers();
  if (c.detach) {
    json request = AgentClient::ExecRequestJson(*spec);
    request["detach"] = true;
    auto reply = MonitorRequest(state_dir + "/vms/" + id, request, {});
    if (Status s = ReplyStatus(reply); !s.ok()) return Fail(s.message());
    json job = reply->json();
    job.erase("ok");
    if (c.json) {
      Print(job);
    } else {
      std::cout << reply->String("job").value_or("") << "\n";
    }
    return 0;
  }
  ExecResult result;
  auto live = LiveOutput(c.json);
  auto final_reply = MonitorRequest(
      state_dir + "/vms/" + id, AgentClient::ExecRequestJson(*spec),
      [&](const GuestMessage& reply) { return AgentClient::ApplyExecReply(reply, &result, live); });
  if (!final_reply.ok()) return Fail(final_reply.status().message());
  if (c.json) Print(ContractJson(result));
  return ExitStatus(result);
}

int CmdJob(const std::string& state_dir, const std::string& id, const std::string& op,
           const std::string& job, int signal, const std::string& timeout) {
  json request = {{"op", op}};
  if (op != "jobs") request["job"] = job;
  if (op == "kill") request["signal"] = signal;
  if (op == "wait") {
    auto t = ParseDuration(timeout);
    if (!t) return Fail("--timeout '" + timeout + "': use e.g. 30s, 5m, 0");
    request["timeout_ms"] = t->count();
  }
  InstallInterruptHandlers();
  auto reply = MonitorRequest(state_dir + "/vms/" + id, request, {});
  if (Status s = ReplyStatus(reply); !s.ok()) return Fail(s.message());
  json out = reply->json();
  out.erase("ok");
  if (op == "jobs") out = out.value("jobs", json::array());
  if (op != "kill") Print(out);
  // `wait` exits as the job did (1 if it still runs).
  if (op == "wait") {
    return reply->Bool("running").value_or(false)
               ? 1
               : static_cast<int>(reply->Int("exit_code").value_or(0));
  }
  return 0;
}

int CmdPoolFill(VmOptions vm, int size) {
  if (Status s = CheckShape(vm); !s.ok()) return Fail(s.message());
  auto ready = FillPool(vm, size, std::cerr);
  if (!ready.ok()) return Fail(ready.status().message());
  std::cerr << "vmlaunch pool: " << *ready << " of " << size << " ready\n";
  return *ready == size ? 0 : 1;
}

int CmdPoolList(const std::string& state_dir, bool json_mode) {
  json rows = json::array();
  for (const auto& p : ListPools(state_dir)) {
    rows.push_back({{"key", p.key},
                    {"size", p.size},
                    {"ready", p.ready},
                    {"image", p.image},
                    {"options", p.shape}});
  }
  if (json_mode) {
    Print(rows);
    return 0;
  }
  std::printf("%-22s %5s %5s %7s %5s %s\n", "POOL", "SIZE", "READY", "MEMORY", "CPUS", "IMAGE");
  // (The options come from a pool's file: read without assuming their types.)
  auto number = [](const json& options, const char* key) {
    const json& v = options.is_object() ? options.value(key, json(0)) : json(0);
    return v.is_number_integer() ? v.get<int>() : 0;
  };
  for (const auto& row : rows) {
    std::printf("%-22s %5d %5d %6dM %5d %s\n", row["key"].get<std::string>().c_str(),
                row["size"].get<int>(), row["ready"].get<int>(),
                number(row["options"], "memory_mib"), number(row["options"], "vcpus"),
                row["image"].get<std::string>().c_str());
  }
  return 0;
}

int CmdStop(const std::string& state_dir, const std::string& id) {
  const std::string dir = state_dir + "/vms/" + id;
  auto record = VmRecord::Load(dir + "/state.json");
  if (!record.ok()) return Fail("no VM " + id + " (see `vmlaunch ls`)");
  auto reply = MonitorRequest(dir, {{"op", "stop"}}, {});
  if (reply.ok() && reply->Bool("ok").value_or(false)) {
    std::cerr << "vmlaunch: " << id << " stopped (teardown "
              << reply->Int("teardown_ms").value_or(0) << " ms)\n";
    return 0;
  }
  // No monitor to ask: give back what the record names.
  if (record->OwnerAlive()) return Fail("the monitor of " + id + " did not answer");
  ReleaseVm(*record, &std::cerr);
  std::cerr << "vmlaunch: " << id << " had no monitor; its resources were released\n";
  return 0;
}

int CmdList(const std::string& state_dir, bool json_mode) {
  const int64_t now = NowUnix();
  json rows = json::array();
  for (const auto& r : ListVms(state_dir)) {
    const bool alive = r.OwnerAlive();
    rows.push_back(
        {{"id", r.id},
         {"state", alive ? r.state : "orphaned"},
         {"backend", r.backend},
         {"policy", r.policy},
         {"guest", r.guest},
         {"session", r.session_id},
         {"age_s", r.created_unix ? now - r.created_unix : 0},
         {"ttl_left_s", r.expires_unix ? std::max<int64_t>(0, r.expires_unix - now) : -1},
         {"owner_pid", r.owner_pid},
         {"vmm_pid", r.vmm_pid}});
  }
  if (json_mode) {
    Print(rows);
    return 0;
  }
  std::printf("%-14s %-9s %-12s %-16s %-16s %7s %8s\n", "ID", "STATE", "BACKEND", "POLICY", "GUEST",
              "AGE", "TTL");
  for (const auto& row : rows) {
    std::printf("%-14s %-9s %-12s %-16s %-16s %6llds %7llds\n",
                row["id"].get<std::string>().c_str(), row["state"].get<std::string>().c_str(),
                row["backend"].get<std::string>().c_str(), row["policy"].get<std::string>().c_str(),
                row["guest"].get<std::string>().c_str(),
                static_cast<long long>(row["age_s"].get<int64_t>()),
                static_cast<long long>(row["ttl_left_s"].get<int64_t>()));
  }
  return 0;
}

int CmdGc(const std::string& state_dir, const std::string& pool) {
  int n = CollectGarbage(state_dir, pool, &std::cerr);
  std::cerr << "vmlaunch gc: " << n << " leftover(s) cleaned\n";
  return 0;
}

}  // namespace airlock::vmlaunch
