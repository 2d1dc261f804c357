// AgentClient: the host's side of the guest-agent protocol (vmlaunch/guest/agent.h) over a
// connected stream: wait for the agent's greeting, configure, exec with streamed output, put,
// get, shutdown. Requests are numbered; replies are matched by id. Blocking; one owner thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/base/status.h"
#include "vmlaunch/guest/line_channel.h"

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
  // Takes ownership of `fd`.
  explicit AgentClient(int fd);
  ~AgentClient();
  AgentClient(const AgentClient&) = delete;
  AgentClient& operator=(const AgentClient&) = delete;

  int fd() const { return channel_.fd(); }
  // Waits for {"event":"ready"}; returns the guest's uptime then (its own boot time).
  Result<int64_t> WaitReady(std::chrono::milliseconds timeout);
  Status Configure(const std::map<std::string, std::string>& env);
  // Streams output through `on_output(is_stderr, data)` when given, and collects it too.
  // `interrupted()` is polled; when it returns true the exec is cancelled.
  Result<ExecResult> Exec(const ExecSpec& spec,
                          const std::function<void(bool, std::string_view)>& on_output = {},
                          const std::function<bool()>& interrupted = {});
  Status Put(const std::string& path, std::string_view data, int mode);
  Result<std::string> Get(const std::string& path);
  Status Shutdown();

  // One raw request: sends it with a fresh id, then hands every reply to `on_reply` until the
  // final one (any reply that is not a stream chunk). For the monitor, which relays requests.
  Status Relay(nlohmann::json request, const std::function<void(const nlohmann::json&)>& on_reply,
               const std::function<bool()>& cancel, std::chrono::milliseconds limit);

  static nlohmann::json ExecRequestJson(const ExecSpec& spec);
  // Folds one exec reply into `result`: a stream chunk (returned decoded, with its stream) or
  // the final status.
  static void ApplyExecReply(const nlohmann::json& reply, ExecResult* result,
                             const std::function<void(bool, std::string_view)>& on_output);

 private:
  Result<nlohmann::json> Call(nlohmann::json request, std::chrono::milliseconds limit);

  LineChannel channel_;
  int64_t next_id_ = 1;
};

}  // namespace airlock::vmlaunch
