// AgentClient: numbered requests, replies matched by id and checked, exec output decoded as it
// arrives, a deadline on every wait.
#include "vmlaunch/vm/agent_client.h"

#include <unistd.h>

#include <algorithm>

#include "gateway/base/base64.h"
#include "vmlaunch/process/interrupt.h"

namespace airlock::vmlaunch {

using nlohmann::json;
using std::chrono::milliseconds;

AgentClient::AgentClient(int fd, int64_t first_id) : channel_(fd), next_id_(first_id) {}
AgentClient::~AgentClient() { ::close(channel_.fd()); }

Status AgentClient::Break(Status error) {
  broken_ = std::move(error);
  return broken_;
}

Result<std::optional<GuestMessage>> AgentClient::Receive(int timeout_ms) {
  auto m = channel_.Receive(timeout_ms);
  if (!m.ok()) {
    if (channel_.overflowed()) {
      return Break(GuestMessage::Violation("a line longer than " +
                                           std::to_string(LineChannel::kMaxLine >> 20) + " MiB"));
    }
    if (m.status().code() == StatusCode::kTimedOut) return std::optional<GuestMessage>();
    return Break(Status::Error("the guest agent is gone: " + m.status().message()));
  }
  auto message = GuestMessage::From(std::move(m).value());
  if (!message.ok()) return Break(message.status());
  return std::optional<GuestMessage>(std::move(message).value());
}

Result<int64_t> AgentClient::WaitReady(milliseconds timeout, bool restored) {
  if (!broken_.ok()) return broken_;
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout;
  const milliseconds ping_every(restored ? 250 : 1000);
  auto next_ping = restored ? start : start + ping_every;
  while (true) {
    const auto now = std::chrono::steady_clock::now();
    auto left = std::chrono::duration_cast<milliseconds>(deadline - now);
    if (left.count() <= 0) return Break(Status::Error("the guest agent did not start in time"));
    if (Interrupted()) return Status::Error("interrupted while the guest was booting");
    // The greeting is sent once; a ping every second also finds an agent whose greeting went
    // out before the host side of the port was listening.
    if (now >= next_ping) {
      if (channel_.Send({{"op", "ping"}, {"id", 0}}).ok()) ++owed_;
      next_ping = now + ping_every;
    }
    auto m = Receive(static_cast<int>(std::min<int64_t>(left.count(), restored ? 20 : 200)));
    if (!m.ok()) return m.status();
    if (!m->has_value()) continue;
    const GuestMessage& message = **m;
    const bool greeting = message.String("event") == "ready";
    if (!greeting && !(message.Int("id") == 0 && message.Has("uptime_ms"))) {
      return Break(GuestMessage::Violation("something other than its greeting while booting"));
    }
    if (!greeting) --owed_;
    return message.Int("uptime_ms").value_or(0);
  }
}

Result<GuestMessage> AgentClient::Call(json request, milliseconds limit) {
  std::optional<GuestMessage> final_reply;
  Status s = Relay(
      std::move(request),
      [&](const GuestMessage& r) {
        final_reply = r;
        return Status::Ok();
      },
      {}, limit);
  if (!s.ok()) return s;
  if (auto error = final_reply->String("error")) return Status::Error(std::string(*error));
  return std::move(*final_reply);
}

Result<int64_t> AgentClient::Start(json request, ReplyHandler on_reply, milliseconds limit) {
  if (!broken_.ok()) return broken_;
  const int64_t id = next_id_++;
  request["id"] = id;
  if (!channel_.Send(request).ok()) return Break(Status::Error("the guest agent is gone"));
  pending_[id] = {std::move(on_reply), std::chrono::steady_clock::now() + limit};
  return id;
}

Status AgentClient::Cancel(int64_t id) {
  if (!broken_.ok()) return broken_;
  // If the command has ended already, the agent answers that nothing is running.
  if (!channel_.Send({{"op", "cancel"}, {"id", id}}).ok()) {
    return Break(Status::Error("the guest agent is gone"));
  }
  ++owed_;
  return Status::Ok();
}

Status AgentClient::Dispatch(int timeout_ms) {
  if (!broken_.ok()) return broken_;
  const auto now = std::chrono::steady_clock::now();
  for (const auto& [id, p] : pending_) {
    if (now > p.deadline) return Break(Status::Error("the guest agent did not answer in time"));
  }
  // At most a bounded number of messages a call: a guest that floods its output cannot hold
  // the caller (the monitor's loop, a Ctrl-C) for longer.
  for (int wait = timeout_ms, n = 0; n < kMaxPerDispatch; wait = 0, ++n) {
    auto m = Receive(wait);
    if (!m.ok()) return m.status();
    if (!m->has_value()) return Status::Ok();
    const GuestMessage& reply = **m;
    const auto reply_id = reply.Int("id");
    if (!reply_id) {
      return Break(reply.String("event") == "ready"
                       ? Status::Error("the guest agent restarted; the request was lost")
                       : GuestMessage::Violation("a reply without an id"));
    }
    auto it = pending_.find(*reply_id);
    if (it == pending_.end()) {
      // A late answer to a ping or a cancel; anything else answers no request.
      if (owed_ == 0) {
        return Break(GuestMessage::Violation("a reply to no request (id " +
                                             std::to_string(*reply_id) + ")"));
      }
      --owed_;
      continue;
    }
    const bool final_reply = !reply.Has("stream");
    ReplyHandler handler = final_reply ? std::move(it->second.on_reply) : it->second.on_reply;
    if (final_reply) pending_.erase(it);
    if (Status s = handler(reply); !s.ok()) return Break(s);
    if (final_reply) return Status::Ok();  // (its caller may be waiting for just this one)
  }
  return Status::Ok();
}

Status AgentClient::Relay(json request, const std::function<Status(const GuestMessage&)>& on_reply,
                          const std::function<bool()>& cancel, milliseconds limit) {
  auto id = Start(std::move(request), on_reply, limit);
  if (!id.ok()) return id.status();
  bool cancelled = false;
  while (InFlight(*id)) {
    if (!cancelled && ((cancel && cancel()) || Interrupted())) {
      cancelled = true;
      if (Status s = Cancel(*id); !s.ok()) return s;
    }
    if (Status s = Dispatch(200); !s.ok()) return s;
  }
  return Status::Ok();
}

json AgentClient::ExecRequestJson(const ExecSpec& spec) {
  json r = {
      {"op", "exec"}, {"argv", spec.argv}, {"env", spec.env}, {"timeout_ms", spec.timeout.count()}};
  if (!spec.cwd.empty()) r["cwd"] = spec.cwd;
  if (!spec.stdin_data.empty()) r["stdin"] = Base64Encode(spec.stdin_data);
  return r;
}

Status AgentClient::ApplyExecReply(const GuestMessage& reply, ExecResult* result,
                                   const std::function<void(bool, std::string_view)>& on_output) {
  if (auto stream = reply.String("stream")) {
    const bool is_stderr = *stream == "stderr";
    auto data = reply.Bytes("data");
    if (!data) return GuestMessage::Violation("output whose \"data\" is not base64");
    std::string& kept = is_stderr ? result->stderr_data : result->stdout_data;
    const size_t room = ExecResult::kMaxCollected - kept.size();
    if (data->size() > room)
      (is_stderr ? result->stderr_truncated : result->stdout_truncated) = true;
    kept.append(*data, 0, std::min(room, data->size()));
    if (on_output) on_output(is_stderr, *data);
    return Status::Ok();
  }
  auto error = reply.String("error");
  auto exit_code = reply.Int("exit_code");
  if (!error && !exit_code) {
    return GuestMessage::Violation("an exec reply with no output, exit code or error");
  }
  if (error) result->error = std::string(*error);
  result->exit_code = static_cast<int>(exit_code.value_or(127));
  result->signal = static_cast<int>(reply.Int("signal").value_or(0));
  result->duration_ms = reply.Int("duration_ms").value_or(0);
  result->timed_out = reply.Bool("timed_out").value_or(false);
  return Status::Ok();
}

Result<ExecResult> AgentClient::Exec(const ExecSpec& spec,
                                     const std::function<void(bool, std::string_view)>& on_output,
                                     const std::function<bool()>& interrupted) {
  ExecResult result;
  // The agent enforces the timeout; the host waits a little longer before it gives up on it.
  const milliseconds limit = spec.timeout.count() > 0 ? spec.timeout + milliseconds(15000)
                                                      : milliseconds(24LL * 3600 * 1000);
  Status s = Relay(
      ExecRequestJson(spec),
      [&](const GuestMessage& reply) { return ApplyExecReply(reply, &result, on_output); },
      interrupted, limit);
  if (!s.ok()) return s;
  return result;
}

Status AgentClient::Configure(const std::map<std::string, std::string>& env) {
  return Call({{"op", "configure"}, {"env", env}}, milliseconds(10000)).status();
}

Status AgentClient::Quiesce() { return Call({{"op", "ping"}}, milliseconds(10000)).status(); }

Status AgentClient::Identity(const json& fields) {
  json request = fields;
  request["op"] = "identity";
  return Call(std::move(request), milliseconds(30000)).status();
}

Result<bool> AgentClient::Trust(const std::string& ca, const std::optional<std::string>& roots) {
  json request = {{"op", "trust"}, {"ca", ca}};
  if (roots) request["roots"] = *roots;
  auto r = Call(std::move(request), milliseconds(30000));
  if (!r.ok()) return r.status();
  return r->Bool("roots").value_or(false);
}

Status AgentClient::Put(const std::string& path, std::string_view data, int mode) {
  return Call({{"op", "put"}, {"path", path}, {"data", Base64Encode(data)}, {"mode", mode}},
              milliseconds(120000))
      .status();
}

Result<std::string> AgentClient::Get(const std::string& path) {
  auto r = Call({{"op", "get"}, {"path", path}}, milliseconds(120000));
  if (!r.ok()) return r.status();
  auto data = r->Bytes("data");
  if (!data) return Break(GuestMessage::Violation("the content of " + path + " not in base64"));
  return std::move(*data);
}

Status AgentClient::Shutdown() { return Call({{"op", "shutdown"}}, milliseconds(3000)).status(); }

}  // namespace airlock::vmlaunch
