// RunHelper: runs a credential helper (exec and aws_sigv4 sources) and returns what it printed.
// No shell: argv as configured, the gateway's environment, stdin from /dev/null, stderr to
// /dev/null (a helper's diagnostics may hold secrets, so they are kept out of every log), its own
// process group killed whole at the timeout and after it exits (nothing it started outlives it),
// at most 64 KiB of output. Blocking; runs on the
// broker's refresher thread.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "gateway/base/status.h"

namespace airlock::credentials {

Result<std::string> RunHelper(const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout);

}  // namespace airlock::credentials
