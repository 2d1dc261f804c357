// Agent: request dispatch, exec streaming, files.
#include "vmlaunch/guest/agent.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gateway/base/base64.h"
#include "vmlaunch/guest/exec_runner.h"
#include "vmlaunch/process/command.h"

namespace airlock::vmlaunch {
namespace {

using nlohmann::json;

json Reply(const json& id, json body) {
  body["id"] = id;
  return body;
}

json Error(const json& id, const std::string& message) { return Reply(id, {{"error", message}}); }

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

}  // namespace

int64_t UptimeMs() {
  double seconds = 0;
  std::ifstream("/proc/uptime") >> seconds;
  return static_cast<int64_t>(seconds * 1000);
}

Agent::Agent(std::map<std::string, std::string> base_env, std::string profile_path)
    : env_(std::move(base_env)), profile_path_(std::move(profile_path)) {}

void Agent::Serve(LineChannel& channel) {
  if (!channel.Send({{"event", "ready"}, {"uptime_ms", UptimeMs()}}).ok()) return;
  while (!shutdown_) {
    auto request = channel.Receive();
    if (!request.ok()) return;
    Handle(channel, *request);
  }
}

void Agent::Handle(LineChannel& ch, const json& req) {
  const json id = req.contains("id") ? req["id"] : json(nullptr);
  if (req.contains("invalid")) {
    (void)ch.Send(Error(id, req["invalid"].get<std::string>()));
    return;
  }
  const std::string op = req.value("op", "");
  if (op == "ping") {
    (void)ch.Send(Reply(id, {{"ok", true}, {"uptime_ms", UptimeMs()}}));
  } else if (op == "configure") {
    std::map<std::string, std::string> add;
    if (!ReadEnv(req.value("env", json()), &add)) {
      (void)ch.Send(Error(id, "env must map variable names to strings"));
      return;
    }
    for (auto& [k, v] : add) env_[k] = v;
    if (!profile_path_.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(profile_path_).parent_path(), ec);
      std::ofstream f(profile_path_);
      for (const auto& [k, v] : env_) f << "export " << k << "=" << ShellQuote(v) << "\n";
    }
    (void)ch.Send(Reply(id, {{"ok", true}}));
  } else if (op == "exec") {
    Exec(ch, id, req);
  } else if (op == "put") {
    const std::string path = req.value("path", "");
    const auto& data = req.value("data", json());
    auto bytes = data.is_string() ? Base64Decode(data.get<std::string>()) : std::nullopt;
    if (path.empty() || path[0] != '/' || !bytes) {
      (void)ch.Send(Error(id, "put needs an absolute path and base64 data"));
      return;
    }
    std::filesystem::path p(path);
    std::error_code ec;
    std::filesystem::create_directories(p.parent_path(), ec);
    const std::string tmp = path + ".airlock-put";
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      f.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
      if (!f) {
        (void)ch.Send(Error(id, "cannot write " + path));
        std::filesystem::remove(tmp, ec);
        return;
      }
    }
    ::chmod(tmp.c_str(), static_cast<mode_t>(req.value("mode", 0644)) & 07777);
    std::filesystem::rename(tmp, p, ec);
    (void)ch.Send(ec ? Error(id, "cannot write " + path + ": " + ec.message())
                     : Reply(id, {{"ok", true}}));
  } else if (op == "get") {
    const std::string path = req.value("path", "");
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
    (void)ch.Send(Error(id, "nothing is running"));
  } else {
    (void)ch.Send(Error(id, "unknown op '" + op + "'"));
  }
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
  r.cwd = req.value("cwd", env.count("HOME") ? env["HOME"] : std::string("/"));
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
  r.timeout = std::chrono::milliseconds(std::max<int64_t>(0, timeout.get<int64_t>()));

  ExecHooks hooks;
  hooks.on_output = [&](OutputStream s, std::string_view data) {
    (void)ch.Send(Reply(id, {{"stream", s == OutputStream::kStdout ? "stdout" : "stderr"},
                             {"data", Base64Encode(data)}}));
  };
  hooks.control_fd = ch.fd();
  hooks.on_readable = [&] {
    auto got = ch.ReadSome();
    if (got == LineChannel::ReadResult::kEof || got == LineChannel::ReadResult::kError) {
      return true;  // the host is gone: nobody will read the result
    }
    bool cancel = false;
    while (auto m = ch.Next()) {
      if (m->value("op", "") == "cancel") {
        cancel = true;
      } else {
        (void)ch.Send(Error(m->contains("id") ? (*m)["id"] : json(nullptr),
                            "busy: an exec is running (send cancel to stop it)"));
      }
    }
    return cancel;
  };
  auto outcome = RunExec(r, hooks);
  if (!outcome.ok()) {
    const bool denied = outcome.status().code() == StatusCode::kPermissionDenied;
    json error = Error(id, outcome.status().message());
    error["exit_code"] = denied ? 126 : 127;
    (void)ch.Send(error);
    return;
  }
  json done = {{"exit_code", outcome->exit_code},
               {"signal", outcome->signal},
               {"duration_ms", outcome->duration_ms},
               {"timed_out", outcome->timed_out}};
  if (outcome->cancelled) done["cancelled"] = true;
  (void)ch.Send(Reply(id, done));
}

}  // namespace airlock::vmlaunch
