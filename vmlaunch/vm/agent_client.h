// AgentClient: the host's side of the guest-agent protocol (vmlaunch/guest/agent.h) over a
// connected stream: wait for the agent's greeting, configure, exec with streamed output, put,
// get, shutdown. Requests are numbered; replies are matched by id, so several requests can be
// in flight at once (the monitor relays its clients' execs side by side: Start and Dispatch);
// the blocking calls are built on the same two. The guest is hostile: every
// message is checked (GuestMessage) and every wait has a deadline; a guest that breaks the
// protocol (a malformed, oversize or unasked-for message) or stays silent past a deadline gets
// an error, and the client is then broken for good so that the VM is torn down without asking
// the guest anything more. Blocking; one owner thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/base/status.h"
#include "vmlaunch/guest/line_channel.h"
#include "vmlaunch/vm/guest_message.h"

namespace airlock::vmlaunch {

struct ExecSpec {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  std::string cwd;  // "" : the agent's default ($HOME)
  std::string stdin_data;
  std::chrono::milliseconds timeout{0};
};

// The execution contract's result of one command.
struct ExecResult {
  // What the host keeps of each stream (for --json and files); live output is never cut.
  static constexpr size_t kMaxCollected = 16u << 20;
  std::string stdout_data, stderr_data;
  bool stdout_truncated = false, stderr_truncated = false;  // more than kMaxCollected came
  int exit_code = 0;
  int signal = 0;
  int64_t duration_ms = 0;
  bool timed_out = false;
  std::string error;  // set if the command could not start (exit_code 126/127)
};

class AgentClient {
 public:
  // Takes ownership of `fd`. Request ids start at `first_id`: a client that takes over from
  // another (a VM resumed from standby) goes on from where that one stopped, so that no id is
  // used twice with the same agent.
  explicit AgentClient(int fd, int64_t first_id = 1);
  ~AgentClient();
  AgentClient(const AgentClient&) = delete;
  AgentClient& operator=(const AgentClient&) = delete;

  int fd() const { return channel_.fd(); }
  // OK until the guest breaks the protocol, goes away or misses a deadline; then that error,
  // which every later call returns at once.
  const Status& health() const { return broken_; }
  // Waits for {"event":"ready"} (or the answer to a ping); returns the guest's uptime then (its
  // own boot time). `restored`: the guest was running already (restored from a snapshot or
  // resumed), so its greeting went out long ago: ping at once and often.
  Result<int64_t> WaitReady(std::chrono::milliseconds timeout, bool restored = false);
  Status Configure(const std::map<std::string, std::string>& env);
  // A ping answered: every reply the agent owed before it has been read (replies come in
  // order), so nothing stale is left in the channel (before a VM is saved).
  Status Quiesce();
  // The agent's `identity` request with `fields` (vmlaunch/guest/agent.h).
  Status Identity(const nlohmann::json& fields);
  // The `trust` request: the guest puts its CA bundle together with `ca`, and its own system
  // roots or `roots` when given. False: the guest has no roots and wrote nothing.
  Result<bool> Trust(const std::string& ca, const std::optional<std::string>& roots);
  // Streams output through `on_output(is_stderr, data)` when given, and collects it too.
  // `interrupted()` is polled; when it returns true the exec is cancelled.
  Result<ExecResult> Exec(const ExecSpec& spec,
                          const std::function<void(bool, std::string_view)>& on_output = {},
                          const std::function<bool()>& interrupted = {});
  Status Put(const std::string& path, std::string_view data, int mode);
  Result<std::string> Get(const std::string& path);
  Status Shutdown();

  // One raw request: sends it with a fresh id, then hands every reply to `on_reply` until the
  // final one (any reply that is not a stream chunk); an error from `on_reply` is a protocol
  // violation. `cancel` is polled; when it returns true the request is cancelled.
  Status Relay(nlohmann::json request, const std::function<Status(const GuestMessage&)>& on_reply,
               const std::function<bool()>& cancel, std::chrono::milliseconds limit);

  // Asynchronous use. Start sends `request` with a fresh id (returned) and hands each of its
  // replies to `on_reply` as Dispatch reads them, the final one last; the agent must finish it
  // within `limit`. Cancel asks the agent to end request `id`.
  using ReplyHandler = std::function<Status(const GuestMessage&)>;
  Result<int64_t> Start(nlohmann::json request, ReplyHandler on_reply,
                        std::chrono::milliseconds limit);
  Status Cancel(int64_t id);
  // Reads what has arrived (waiting up to `timeout_ms` for the first message) and routes each
  // reply to its request's handler, up to and including the first final reply. An error breaks the
  // client (see health()).
  Status Dispatch(int timeout_ms);
  bool InFlight(int64_t id) const { return pending_.count(id) != 0; }
  // No request is waiting for its final reply.
  bool Idle() const { return pending_.empty(); }
  int64_t next_id() const { return next_id_; }
  // True if a message has been read but not dispatched yet (polling the descriptor would not
  // tell).
  bool HasBuffered() const { return channel_.HasMessage(); }

  static nlohmann::json ExecRequestJson(const ExecSpec& spec);
  // Folds one exec reply into `result`: a stream chunk (decoded, passed to `on_output`) or the
  // final status; a violation if it is neither.
  static Status ApplyExecReply(const GuestMessage& reply, ExecResult* result,
                               const std::function<void(bool, std::string_view)>& on_output);

 private:
  Result<GuestMessage> Call(nlohmann::json request, std::chrono::milliseconds limit);
  // The next message within `timeout_ms`, checked; nullopt if none came. Any error breaks the
  // client.
  Result<std::optional<GuestMessage>> Receive(int timeout_ms);
  // Records `error` as the client's last word and returns it.
  Status Break(Status error);

  static constexpr int kMaxPerDispatch = 64;
  struct Pending {
    ReplyHandler on_reply;
    std::chrono::steady_clock::time_point deadline;
  };
  LineChannel channel_;
  int64_t next_id_;
  std::map<int64_t, Pending> pending_;
  // Pings and cancels sent that the agent may still answer: a reply to an earlier request is
  // skipped only while one of these is owed; any other reply to no request is a flood.
  int64_t owed_ = 0;
  Status broken_;
};

}  // namespace airlock::vmlaunch
