// The microVM commands: option checks, then VmSession / the monitor / the records.
#include "vmlaunch/cli/vm_commands.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "gateway/crypto/digest.h"
#include "vmlaunch/process/interrupt.h"
#include "vmlaunch/process/process.h"
#include "vmlaunch/process/read_file.h"
#include "vmlaunch/vm/monitor.h"

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

Status CheckVmOptions(const VmOptions& vm) {
  if (vm.policy.empty()) return Status::Error("--policy is required");
  if (vm.memory_mib < 64) return Status::Error("--memory: at least 64M");
  if (vm.vcpus < 1 || vm.vcpus > 32) return Status::Error("--cpus: 1 to 32");
  if (!ParseSize(vm.overlay)) return Status::Error("--overlay '" + vm.overlay + "': use e.g. 256M");
  return Status::Ok();
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
  if (vm.memory_mib < 64) return Fail("--memory: at least 64M");
  if (vm.vcpus < 1 || vm.vcpus > 32) return Fail("--cpus: 1 to 32");
  if (!ParseSize(vm.overlay)) return Fail("--overlay '" + vm.overlay + "': use e.g. 256M");
  if (vm.backend != "qemu") return Fail("snapshots need the qemu backend for now");
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
  auto session = VmSession::Create(vm, std::cerr);
  if (!session.ok()) return Fail(session.status().message());
  VmSession& v = **session;
  for (const auto& [local, guest] : puts) {
    struct stat st {};
    ::stat(local.c_str(), &st);
    if (Status s = v.agent().Put(guest, ReadFile(local), st.st_mode & 0777); !s.ok()) {
      return Fail("--put " + local + ": " + s.message());
    }
  }
  const auto exec_start = std::chrono::steady_clock::now();
  auto result = v.agent().Exec(*spec, LiveOutput(c.json));
  const auto exec_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - exec_start)
                           .count();
  if (!result.ok()) return Fail(result.status().message());
  json files = json::array();
  int status = 0;
  for (const auto& [guest, local] : gets) {
    auto data = v.agent().Get(guest);
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
  const std::string id = v.record().id;
  v.Destroy();
  if (c.json) {
    json j = ContractJson(*result);
    j["files"] = files;
    j["vm"] = id;
    const auto& t = v.timings();
    j["start"] = t.start;
    j["timings_ms"] = {{"launcher_setup", t.setup_ms},      {"boot", t.boot_ms},
                       {"guest_kernel", t.guest_kernel_ms}, {"configure", t.configure_ms},
                       {"create_to_ready", t.ready_ms},     {"exec_round_trip", exec_ms},
                       {"teardown", t.teardown_ms}};
    Print(j);
  }
  int code = ExitStatus(*result);
  return status != 0 && code == 0 ? status : code;
}

int CmdStart(VmOptions vm, bool json_mode) {
  if (Status s = CheckVmOptions(vm); !s.ok()) return Fail(s.message());
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return Fail("pipe failed");
  std::cout.flush();
  pid_t pid = fork();
  if (pid < 0) return Fail("fork failed");
  if (pid == 0) {
    // The monitor: a session of its own, so that the caller's terminal and process group
    // signals do not reach it.
    ::close(report[0]);
    ::setsid();
    InstallInterruptHandlers();
    // Let go of the caller's terminal or pipes at once: whoever ran `start` must not wait on
    // the monitor. Its log goes to the VM's directory once that exists.
    std::error_code ec;
    fs::create_directories(vm.state_dir, ec);
    const std::string early_log = vm.state_dir + "/monitor-" + std::to_string(getpid()) + ".log";
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    int log = ::open(early_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    std::ostringstream boot_log;
    auto session = VmSession::Create(vm, boot_log);
    std::cerr << boot_log.str() << std::flush;
    json hello = {{"log", boot_log.str()}};
    if (!session.ok()) {
      hello["error"] = session.status().message();
    } else {
      const auto& r = (*session)->record();
      const auto& t = (*session)->timings();
      hello.update({{"id", r.id},
                    {"guest", r.guest},
                    {"session", r.session_id},
                    {"monitor_pid", getpid()},
                    {"expires_unix", r.expires_unix},
                    {"start", t.start},
                    {"timings_ms",
                     {{"launcher_setup", t.setup_ms},
                      {"boot", t.boot_ms},
                      {"guest_kernel", t.guest_kernel_ms},
                      {"create_to_ready", t.ready_ms}}}});
    }
    // The error may quote the guest's console: any bytes.
    std::string line = hello.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    (void)!::write(report[1], line.data(), line.size());
    ::close(report[1]);
    if (!session.ok()) {
      fs::remove(early_log, ec);
      _exit(1);
    }
    fs::rename(early_log, (*session)->record().dir + "/monitor.log", ec);
    int code = RunMonitor(**session, std::cerr);
    session.value().reset();
    _exit(code);
  }
  ::close(report[1]);
  std::string line;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(report[0], buf, sizeof(buf))) > 0) line.append(buf, static_cast<size_t>(n));
  ::close(report[0]);
  auto hello = json::parse(line, nullptr, false);
  if (hello.is_discarded() || !hello.is_object()) return Fail("the monitor died while starting");
  std::cerr << hello.value("log", "");
  hello.erase("log");
  if (hello.contains("error")) return Fail(hello["error"].get<std::string>());
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
  ExecResult result;
  auto live = LiveOutput(c.json);
  auto final_reply = MonitorRequest(
      state_dir + "/vms/" + id, AgentClient::ExecRequestJson(*spec),
      [&](const GuestMessage& reply) { return AgentClient::ApplyExecReply(reply, &result, live); });
  if (!final_reply.ok()) return Fail(final_reply.status().message());
  if (c.json) Print(ContractJson(result));
  return ExitStatus(result);
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
