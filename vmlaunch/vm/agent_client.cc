// AgentClient: numbered requests, replies matched by id, exec output decoded as it arrives.
#include "vmlaunch/vm/agent_client.h"

#include <unistd.h>

#include <algorithm>

#include "gateway/base/base64.h"
#include "vmlaunch/process/interrupt.h"

namespace airlock::vmlaunch {

using nlohmann::json;
using std::chrono::milliseconds;

AgentClient::AgentClient(int fd) : channel_(fd) {}
AgentClient::~AgentClient() { ::close(channel_.fd()); }

Result<int64_t> AgentClient::WaitReady(milliseconds timeout) {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout;
  auto next_ping = start + milliseconds(1000);
  while (true) {
    const auto now = std::chrono::steady_clock::now();
    auto left = std::chrono::duration_cast<milliseconds>(deadline - now);
    if (left.count() <= 0) return Status::Error("the guest agent did not start in time");
    if (Interrupted()) return Status::Error("interrupted while the guest was booting");
    // The greeting is sent once; a ping every second also finds an agent whose greeting went
    // out before the host side of the port was listening.
    if (now >= next_ping) {
      (void)channel_.Send({{"op", "ping"}, {"id", 0}});
      next_ping = now + milliseconds(1000);
    }
    auto m = channel_.Receive(static_cast<int>(std::min<int64_t>(left.count(), 200)));
    if (!m.ok() && m.status().message() == "timed out") continue;
    if (!m.ok()) return Status::Error("the guest agent did not start: " + m.status().message());
    if (m->value("event", "") == "ready" || (m->value("id", -1) == 0 && m->contains("uptime_ms"))) {
      return m->value("uptime_ms", int64_t{0});
    }
  }
}

Result<json> AgentClient::Call(json request, milliseconds limit) {
  json final_reply;
  Status s = Relay(
      std::move(request), [&](const json& r) { final_reply = r; }, {}, limit);
  if (!s.ok()) return s;
  if (final_reply.contains("error")) {
    const json& e = final_reply["error"];
    return Status::Error(e.is_string() ? e.get<std::string>() : e.dump());
  }
  return final_reply;
}

Status AgentClient::Relay(json request, const std::function<void(const json&)>& on_reply,
                          const std::function<bool()>& cancel, milliseconds limit) {
  const int64_t id = next_id_++;
  request["id"] = id;
  if (Status s = channel_.Send(request); !s.ok()) return Status::Error("the guest agent is gone");
  const auto deadline = std::chrono::steady_clock::now() + limit;
  bool cancelled = false;
  while (true) {
    if (!cancelled && ((cancel && cancel()) || Interrupted())) {
      cancelled = true;
      (void)channel_.Send({{"op", "cancel"}, {"id", id}});
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::Error("the guest agent did not answer in time");
    }
    auto m = channel_.Receive(200);
    if (!m.ok()) {
      if (m.status().message() == "timed out") continue;
      return Status::Error("the guest agent is gone: " + m.status().message());
    }
    if (!m->contains("id") || (*m)["id"] != id) continue;  // a late reply to an earlier request
    on_reply(*m);
    if (!m->contains("stream")) return Status::Ok();
  }
}

json AgentClient::ExecRequestJson(const ExecSpec& spec) {
  json r = {
      {"op", "exec"}, {"argv", spec.argv}, {"env", spec.env}, {"timeout_ms", spec.timeout.count()}};
  if (!spec.cwd.empty()) r["cwd"] = spec.cwd;
  if (!spec.stdin_data.empty()) r["stdin"] = Base64Encode(spec.stdin_data);
  return r;
}

void AgentClient::ApplyExecReply(const json& reply, ExecResult* result,
                                 const std::function<void(bool, std::string_view)>& on_output) {
  if (reply.contains("stream")) {
    const bool is_stderr = reply.value("stream", "") == "stderr";
    auto data = Base64Decode(reply.value("data", ""));
    if (!data) return;
    std::string& kept = is_stderr ? result->stderr_data : result->stdout_data;
    const size_t room = ExecResult::kMaxCollected - kept.size();
    if (data->size() > room)
      (is_stderr ? result->stderr_truncated : result->stdout_truncated) = true;
    kept.append(*data, 0, std::min(room, data->size()));
    if (on_output) on_output(is_stderr, *data);
    return;
  }
  if (reply.contains("error")) result->error = reply["error"].get<std::string>();
  result->exit_code = reply.value("exit_code", 127);
  result->signal = reply.value("signal", 0);
  result->duration_ms = reply.value("duration_ms", int64_t{0});
  result->timed_out = reply.value("timed_out", false);
}

Result<ExecResult> AgentClient::Exec(const ExecSpec& spec,
                                     const std::function<void(bool, std::string_view)>& on_output,
                                     const std::function<bool()>& interrupted) {
  ExecResult result;
  // The agent enforces the timeout; the host waits a little longer before it gives up on it.
  const milliseconds limit = spec.timeout.count() > 0 ? spec.timeout + milliseconds(15000)
                                                      : milliseconds(24LL * 3600 * 1000);
  Status s = Relay(
      ExecRequestJson(spec), [&](const json& reply) { ApplyExecReply(reply, &result, on_output); },
      interrupted, limit);
  if (!s.ok()) return s;
  return result;
}

Status AgentClient::Configure(const std::map<std::string, std::string>& env) {
  return Call({{"op", "configure"}, {"env", env}}, milliseconds(10000)).status();
}

Status AgentClient::Put(const std::string& path, std::string_view data, int mode) {
  return Call({{"op", "put"}, {"path", path}, {"data", Base64Encode(data)}, {"mode", mode}},
              milliseconds(120000))
      .status();
}

Result<std::string> AgentClient::Get(const std::string& path) {
  auto r = Call({{"op", "get"}, {"path", path}}, milliseconds(120000));
  if (!r.ok()) return r.status();
  auto data = Base64Decode(r->value("data", ""));
  if (!data) return Status::Error("the guest agent sent malformed data for " + path);
  return *data;
}

Status AgentClient::Shutdown() { return Call({{"op", "shutdown"}}, milliseconds(3000)).status(); }

}  // namespace airlock::vmlaunch
