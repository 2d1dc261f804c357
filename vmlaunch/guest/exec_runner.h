// RunExec: the guest agent's execution contract for one command. The command runs in a session
// and process group of its own with the given argv, environment, working directory and stdin;
// its stdout and stderr are handed to the caller as they arrive. A timeout kills the whole
// process group (SIGKILL) and says so; when the command ends, whatever it left running in its
// group is killed too, so an exec never leaks processes into the next one. Blocking; runs on
// the caller's thread and polls one extra descriptor (the agent's channel) for a cancel request.
#pragma once

#include <chrono>
#include <functional>
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
};

struct ExecOutcome {
  int exit_code = 0;  // 128 + signal if killed by one; 124 on timeout (as timeout(1) does)
  int signal = 0;     // the signal that ended the command, 0 if it exited
  int64_t duration_ms = 0;
  bool timed_out = false;
  bool cancelled = false;
};

enum class OutputStream { kStdout, kStderr };

struct ExecHooks {
  std::function<void(OutputStream, std::string_view)> on_output;
  // Polled for input while the command runs (-1: none); on_readable returns true to cancel.
  int control_fd = -1;
  std::function<bool()> on_readable;
};

// An error only if the command could not be started (its reason says why: no such file,
// permission denied, bad directory); the exit code is then 127 or 126 by shell convention.
Result<ExecOutcome> RunExec(const ExecRequest& request, const ExecHooks& hooks);

}  // namespace airlock::vmlaunch
