// Agent: request dispatch, exec streaming, files.
#include "vmlaunch/guest/agent.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "gateway/base/base64.h"
#include "vmlaunch/guest/exec_runner.h"
#include "vmlaunch/process/command.h"
#include "vmlaunch/process/read_file.h"

namespace airlock::vmlaunch {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

json Reply(const json& id, json body) {
  body["id"] = id;
  return body;
}

json Error(const json& id, const std::string& message) { return Reply(id, {{"error", message}}); }

// A string field, or "" when it is missing or not a string (never an exception).
std::string StringField(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

bool ValidName(const std::string& k) {
  if (k.empty() || std::isdigit(static_cast<unsigned char>(k[0]))) return false;
  for (char c : k) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

// Reads {K: V} with string values into `out`; false if it is not that.
bool ReadEnv(const json& j, std::map<std::string, std::string>* out) {
  if (j.is_null()) return true;
  if (!j.is_object()) return false;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string() || !ValidName(k)) return false;
    (*out)[k] = v.get<std::string>();
  }
  return true;
}

// `data` at `path` (its directory made if missing) through a temporary file renamed over it, so
// that nobody reads half a file.
Status WriteFileAtomically(const std::string& path, std::string_view data, mode_t mode) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  const std::string tmp = path + ".airlock-put";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!f) {
      std::filesystem::remove(tmp, ec);
      return Status::Error("cannot write " + path);
    }
  }
  ::chmod(tmp.c_str(), mode);
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::Error("cannot write " + path + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

void ReadEnvFile(const std::string& path, std::map<std::string, std::string>* env) {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    size_t eq = line.find('=');
    if (eq != std::string::npos && eq > 0) (*env)[line.substr(0, eq)] = line.substr(eq + 1);
  }
}

int64_t UptimeMs() {
  double seconds = 0;
  std::ifstream("/proc/uptime") >> seconds;
  return static_cast<int64_t>(seconds * 1000);
}

Agent::Agent(AgentPaths paths) : paths_(std::move(paths)) {
  env_ = {{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
          {"HOME", "/root"},
          {"LANG", "C.UTF-8"}};
  ReadEnvFile(paths_.env_file, &env_);
}

void Agent::Serve(LineChannel& channel) {
  if (!channel.Send({{"event", "ready"}, {"uptime_ms", UptimeMs()}}).ok()) return;
  while (!shutdown_) {
    std::vector<pollfd> fds = {{channel.fd(), POLLIN, 0}};
    int wake = -1;
    auto sooner = [&wake](int ms) {
      if (ms >= 0 && (wake < 0 || ms < wake)) wake = ms;
    };
    for (const auto& [key, r] : running_) {
      r.process->AddPollFds(&fds);
      sooner(r.process->NextWakeMs());
    }
    for (const auto& [name, job] : jobs_) {
      job.process->AddPollFds(&fds);
      sooner(job.process->NextWakeMs());
      for (const auto& w : job.waiters)
        sooner(static_cast<int>(std::max<int64_t>(0, MsUntil(w.deadline))));
    }
    if (::poll(fds.data(), fds.size(), wake) < 0 && errno != EINTR) break;
    if (fds[0].revents) {
      auto got = channel.ReadSome();
      if (got == LineChannel::ReadResult::kEof || got == LineChannel::ReadResult::kError) break;
      while (auto request = channel.Next()) {
        Handle(channel, *request);
        if (shutdown_) break;
      }
    }
    StepCommands(channel);
  }
  // The host is gone (or asked for the end): nobody will read what the execs say. Detached
  // jobs live on until shutdown.
  running_.clear();
  if (shutdown_) jobs_.clear();
}

void Agent::StepCommands(LineChannel& ch) {
  for (auto it = running_.begin(); it != running_.end();) {
    Running& r = it->second;
    r.process->Step([&](OutputStream s, std::string_view data) {
      (void)ch.Send(Reply(r.id, {{"stream", s == OutputStream::kStdout ? "stdout" : "stderr"},
                                 {"data", Base64Encode(data)}}));
    });
    if (!r.process->finished()) {
      ++it;
      continue;
    }
    const ExecOutcome& o = r.process->outcome();
    json done = {{"exit_code", o.exit_code},
                 {"signal", o.signal},
                 {"duration_ms", o.duration_ms},
                 {"timed_out", o.timed_out}};
    if (o.cancelled) done["cancelled"] = true;
    (void)ch.Send(Reply(r.id, done));
    it = running_.erase(it);
  }
  for (auto& [name, job] : jobs_) {
    job.process->Step({});
    for (auto w = job.waiters.begin(); w != job.waiters.end();) {
      if (!job.process->finished() && MsUntil(w->deadline) > 0) {
        ++w;
        continue;
      }
      (void)ch.Send(Reply(w->id, JobJson(name, job)));
      w = job.waiters.erase(w);
    }
  }
}

json Agent::JobJson(const std::string& name, const Job& job) const {
  std::string command;
  for (const auto& a : job.argv) command += (command.empty() ? "" : " ") + ShellQuote(a);
  json j = {{"job", name},
            {"pid", job.process->pid()},
            {"command", command},
            {"output", job.output},
            {"running", !job.process->finished()}};
  if (job.process->finished()) {
    j["exit_code"] = job.process->outcome().exit_code;
    j["signal"] = job.process->outcome().signal;
  }
  return j;
}

void Agent::Handle(LineChannel& ch, const json& req) {
  const json id = req.contains("id") ? req["id"] : json(nullptr);
  if (req.contains("invalid")) {
    (void)ch.Send(Error(id, req["invalid"].get<std::string>()));
    return;
  }
  const std::string op = StringField(req, "op");
  if (op == "ping") {
    (void)ch.Send(Reply(id, {{"ok", true}, {"uptime_ms", UptimeMs()}}));
  } else if (op == "configure") {
    std::map<std::string, std::string> add;
    if (!ReadEnv(req.value("env", json()), &add)) {
      (void)ch.Send(Error(id, "env must map variable names to strings"));
      return;
    }
    for (auto& [k, v] : add) env_[k] = v;
    if (!paths_.profile.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(paths_.profile).parent_path(), ec);
      std::ofstream f(paths_.profile);
      for (const auto& [k, v] : env_) f << "export " << k << "=" << ShellQuote(v) << "\n";
    }
    (void)ch.Send(Reply(id, {{"ok", true}}));
  } else if (op == "identity") {
    Status s = Identity(req);
    (void)ch.Send(s.ok() ? Reply(id, {{"ok", true}, {"uptime_ms", UptimeMs()}})
                         : Error(id, s.message()));
  } else if (op == "exec") {
    Exec(ch, id, req);
  } else if (op == "trust") {
    const auto& ca = req.value("ca", json());
    const auto& given = req.value("roots", json());
    if (!ca.is_string() || !(given.is_null() || given.is_string())) {
      (void)ch.Send(Error(id, "trust needs the CA (and any roots) as PEM text"));
      return;
    }
    // Both read once: a snapshot's template keeps them for every VM restored from it. The
    // image's CA is at the bundle's path until the first bundle replaces it.
    if (!own_roots_) own_roots_ = ReadFile(paths_.system_roots);
    if (!image_ca_) image_ca_ = ReadFile(paths_.ca_bundle);
    if (given.is_null() && own_roots_->empty()) {
      // Nothing written: the host sends roots of its own.
      (void)ch.Send(Reply(id, {{"ok", true}, {"roots", false}}));
      return;
    }
    const std::string bundle = CaBundle({given.is_string() ? given.get<std::string>() : *own_roots_,
                                         *image_ca_, ca.get<std::string>()});
    Status s = WriteFileAtomically(paths_.ca_bundle, bundle, 0644);
    (void)ch.Send(s.ok() ? Reply(id, {{"ok", true}, {"roots", true}}) : Error(id, s.message()));
  } else if (op == "put") {
    const std::string path = StringField(req, "path");
    const auto& data = req.value("data", json());
    auto bytes = data.is_string() ? Base64Decode(data.get<std::string>()) : std::nullopt;
    if (path.empty() || path[0] != '/' || !bytes) {
      (void)ch.Send(Error(id, "put needs an absolute path and base64 data"));
      return;
    }
    const auto& mode = req.value("mode", json(0644));
    Status s = WriteFileAtomically(
        path, *bytes,
        static_cast<mode_t>(mode.is_number_integer() ? mode.get<int64_t>() : 0644) & 07777);
    (void)ch.Send(s.ok() ? Reply(id, {{"ok", true}}) : Error(id, s.message()));
  } else if (op == "get") {
    const std::string path = StringField(req, "path");
    struct stat st {};
    if (path.empty() || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      (void)ch.Send(Error(id, "no such file: " + path));
      return;
    }
    if (static_cast<size_t>(st.st_size) > kMaxFile) {
      (void)ch.Send(Error(id, path + " is larger than 64 MiB"));
      return;
    }
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    (void)ch.Send(
        Reply(id, {{"ok", true}, {"data", Base64Encode(ss.str())}, {"mode", st.st_mode & 07777}}));
  } else if (op == "shutdown") {
    shutdown_ = true;
    (void)ch.Send(Reply(id, {{"ok", true}}));
  } else if (op == "cancel") {
    // A running command ends with "cancelled"; nothing else answers the cancel.
    auto it = running_.find(id.dump());
    bool waited = false;
    for (auto& [name, job] : jobs_) {  // a `wait` cancelled: it answers now
      for (auto& w : job.waiters) {
        if (w.id == id) {
          w.deadline = Clock::now();
          waited = true;
        }
      }
    }
    if (it != running_.end()) {
      it->second.process->Cancel();
    } else if (!waited) {
      (void)ch.Send(Error(id, "nothing is running"));
    }
  } else if (op == "jobs") {
    json list = json::array();
    for (const auto& [name, job] : jobs_) list.push_back(JobJson(name, job));
    (void)ch.Send(Reply(id, {{"ok", true}, {"jobs", list}}));
  } else if (op == "wait" || op == "kill") {
    const auto& name = req.value("job", json());
    auto it = name.is_string() ? jobs_.find(name.get<std::string>()) : jobs_.end();
    if (it == jobs_.end()) {
      (void)ch.Send(Error(id, "no such job (see the jobs request)"));
      return;
    }
    if (op == "kill") {
      const auto& sig = req.value("signal", json(SIGKILL));
      if (!sig.is_number_integer() || sig.get<int>() < 1 || sig.get<int>() > 64) {
        (void)ch.Send(Error(id, "signal must be a number from 1 to 64"));
        return;
      }
      if (!it->second.process->finished()) ::kill(-it->second.process->pid(), sig.get<int>());
      (void)ch.Send(Reply(id, {{"ok", true}}));
      return;
    }
    const auto& timeout = req.value("timeout_ms", json(0));
    if (!timeout.is_number_integer() || timeout.get<int64_t>() < 0) {
      (void)ch.Send(Error(id, "timeout_ms must be a number"));
      return;
    }
    const int64_t ms = timeout.get<int64_t>() == 0
                           ? kMaxTimeoutMs
                           : std::min(timeout.get<int64_t>(), kMaxTimeoutMs);
    it->second.waiters.push_back({id, Clock::now() + std::chrono::milliseconds(ms)});
  } else {
    (void)ch.Send(Error(id, "unknown op '" + op + "'"));
  }
}

Status Agent::Identity(const json& req) {
  // The clock and the random pool first: the network scripts below already use both.
  if (const auto& t = req.value("time_unix_ns", json()); t.is_number_integer()) {
    const int64_t ns = t.get<int64_t>();
    timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    if (::clock_settime(CLOCK_REALTIME, &ts) != 0) return Status::Error("cannot set the clock");
  }
  if (const auto& seed = req.value("seed", json()); !seed.is_null()) {
    auto bytes = seed.is_string() ? Base64Decode(seed.get<std::string>()) : std::nullopt;
    if (!bytes || bytes->size() < 32 || bytes->size() > 512) {
      return Status::Error("seed must be 32 to 512 bytes of base64");
    }
    // Never skipped: a guest that cannot reseed must not pass for a unique one.
    if (!paths_.reseed) return Status::Error("this agent has no way to reseed");
    if (Status s = paths_.reseed(*bytes); !s.ok()) return s;
  }
  if (!req.contains("hostname")) return Status::Ok();  // only the clock (after a resume)
  GuestIdentity id;
  for (auto [key, field] : {std::pair{"hostname", &id.hostname},
                            {"address", &id.address},
                            {"gateway", &id.gateway},
                            {"proxy", &id.proxy},
                            {"mac", &id.mac}}) {
    const auto& v = req.value(key, json(""));
    if (!v.is_string()) return Status::Error(std::string(key) + " must be a string");
    *field = v.get<std::string>();
  }
  return TakeIdentity(id);
}

Status Agent::TakeIdentity(const GuestIdentity& id) {
  if (paths_.apply_identity) {
    if (Status s = paths_.apply_identity(id); !s.ok()) {
      return Status::Error("taking on the identity failed: " + s.message());
    }
  }
  for (auto& [k, v] : ProxyEnvironment(id.proxy)) env_[k] = v;
  return Status::Ok();
}

void Agent::Exec(LineChannel& ch, const json& id, const json& req) {
  ExecRequest r;
  const auto& argv = req.value("argv", json());
  if (!argv.is_array() || argv.empty()) {
    (void)ch.Send(Error(id, "exec needs argv, a non-empty list of strings"));
    return;
  }
  for (const auto& a : argv) {
    if (!a.is_string()) {
      (void)ch.Send(Error(id, "exec needs argv, a non-empty list of strings"));
      return;
    }
    r.argv.push_back(a.get<std::string>());
  }
  std::map<std::string, std::string> env = env_;
  if (!ReadEnv(req.value("env", json()), &env)) {
    (void)ch.Send(Error(id, "env must map variable names to strings"));
    return;
  }
  for (const auto& [k, v] : env) r.env.push_back(k + "=" + v);
  const auto& cwd = req.value("cwd", json(env.count("HOME") ? env["HOME"] : std::string("/")));
  if (!cwd.is_string()) {
    (void)ch.Send(Error(id, "cwd must be a string"));
    return;
  }
  r.cwd = cwd.get<std::string>();
  if (req.contains("stdin")) {
    auto in =
        req["stdin"].is_string() ? Base64Decode(req["stdin"].get<std::string>()) : std::nullopt;
    if (!in) {
      (void)ch.Send(Error(id, "stdin must be base64"));
      return;
    }
    r.stdin_data = std::move(*in);
  }
  const auto& timeout = req.value("timeout_ms", json(0));
  if (!timeout.is_number_unsigned() && !timeout.is_number_integer()) {
    (void)ch.Send(Error(id, "timeout_ms must be a number"));
    return;
  }
  r.timeout =
      std::chrono::milliseconds(std::clamp<int64_t>(timeout.get<int64_t>(), 0, kMaxTimeoutMs));
  const bool detach = req.value("detach", json(false)) == json(true);
  if (detach) {
    // The oldest finished job makes room (its output file stays).
    for (auto it = jobs_.begin(); jobs_.size() >= kMaxJobs && it != jobs_.end(); ++it) {
      if (it->second.process->finished() && it->second.waiters.empty()) {
        jobs_.erase(it);
        break;
      }
    }
    if (jobs_.size() >= kMaxJobs) {
      (void)ch.Send(Error(id, "too many jobs (" + std::to_string(kMaxJobs) + ")"));
      return;
    }
    const std::string name = "job-" + std::to_string(next_job_++);
    std::error_code ec;
    std::filesystem::create_directories(paths_.jobs_dir, ec);
    r.output_file = paths_.jobs_dir + "/" + name + ".log";
    r.timeout = std::chrono::milliseconds(0);
    auto p = ExecProcess::Start(r);
    if (!p.ok()) {
      SendStartError(ch, id, p.status());
      return;
    }
    Job& job = jobs_[name];
    job.argv = r.argv;
    job.output = r.output_file;
    job.process = std::move(p).value();
    json reply = JobJson(name, job);
    reply["ok"] = true;
    (void)ch.Send(Reply(id, reply));
    return;
  }
  if (running_.size() >= kMaxRunning) {
    (void)ch.Send(Error(id, "busy: " + std::to_string(kMaxRunning) + " commands run already"));
    return;
  }
  if (running_.count(id.dump())) {
    (void)ch.Send(Error(id, "a command with this id runs already"));
    return;
  }
  auto p = ExecProcess::Start(r);
  if (!p.ok()) {
    SendStartError(ch, id, p.status());
    return;
  }
  running_[id.dump()] = {id, std::move(p).value()};
}

void Agent::SendStartError(LineChannel& ch, const json& id, const Status& status) {
  const bool denied = status.code() == StatusCode::kPermissionDenied;
  json error = Error(id, status.message());
  error["exit_code"] = denied ? 126 : 127;
  (void)ch.Send(error);
}

}  // namespace airlock::vmlaunch
