// ExecProcess: the guest agent's execution contract for one command. The command runs in a
// session and process group of its own with the given argv, environment, working directory and
// stdin; its stdout and stderr are handed to the caller as they arrive. A timeout kills the whole
// process group (SIGKILL) and says so; when the command ends, whatever it left running in its
// group is killed too, so an exec never leaks processes into the next one. Non-blocking: the
// agent polls the descriptors of every running command in one loop (AddPollFds, then Step), so
// several run at once. A detached command instead writes its output to a file, keeps running
// after its exec has answered, and is only reaped (Job). RunExec is the blocking form, for one
// command on the caller's thread. All on the agent's one thread.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/base/status.h"

namespace airlock::vmlaunch {

struct ExecRequest {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // K=V, the complete environment
  std::string cwd = "/";
  std::string stdin_data;
  std::chrono::milliseconds timeout{0};  // 0: none
  std::string output_file;               // detached: stdout and stderr go here, stdin is /dev/null
};

struct ExecOutcome {
  int exit_code = 0;  // 128 + signal if killed by one; 124 on timeout (as timeout(1) does)
  int signal = 0;     // the signal that ended the command, 0 if it exited
  int64_t duration_ms = 0;
  bool timed_out = false;
  bool cancelled = false;
};

enum class OutputStream { kStdout, kStderr };
using OutputHandler = std::function<void(OutputStream, std::string_view)>;

class ExecProcess {
 public:
  // An error only if the command could not be started (its reason says why: no such file,
  // permission denied, bad directory); the exit code is then 127 or 126 by shell convention.
  static Result<std::unique_ptr<ExecProcess>> Start(const ExecRequest& request);
  // Kills the group if it still runs, and reaps.
  ~ExecProcess();
  ExecProcess(const ExecProcess&) = delete;
  ExecProcess& operator=(const ExecProcess&) = delete;

  // The descriptors to poll now.
  void AddPollFds(std::vector<pollfd>* fds) const;
  // Milliseconds until this command's next deadline (its timeout, or the end of draining its
  // output), -1 if none.
  int NextWakeMs() const;
  // Does whatever is ready without blocking: output to `on_output`, stdin, the exit, the
  // timeout. Call after every poll.
  void Step(const OutputHandler& on_output);
  // Kills the group; the command then ends with cancelled set.
  void Cancel();
  bool finished() const { return finished_; }
  const ExecOutcome& outcome() const { return outcome_; }
  pid_t pid() const { return pid_; }

 private:
  ExecProcess() = default;
  void Finish();

  pid_t pid_ = -1;
  int in_w_ = -1, out_r_ = -1, err_r_ = -1, pidfd_ = -1;
  std::string stdin_data_;
  size_t stdin_off_ = 0;
  bool detached_ = false;
  bool exited_ = false, finished_ = false;
  int wait_status_ = 0;
  std::chrono::steady_clock::time_point start_, deadline_, drain_deadline_, end_;
  bool has_deadline_ = false;
  ExecOutcome outcome_;
};

// Milliseconds from now until `t` (negative once it has passed).
int64_t MsUntil(std::chrono::steady_clock::time_point t);

// Starts and runs one command to its end on the caller's thread. `control_fd` (-1: none) is
// polled too; when it is readable `on_control` runs, and returning true cancels the command.
Result<ExecOutcome> RunExec(const ExecRequest& request, const OutputHandler& on_output,
                            int control_fd = -1, const std::function<bool()>& on_control = {});

}  // namespace airlock::vmlaunch
