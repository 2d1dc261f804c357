// Helper programs (iproute2, apt-get, dpkg-deb, lz4, cpio, ...) run quietly as child processes.
// Each call forks, waits and returns; safe from any thread that does not itself reap children.
#pragma once

#include <string>
#include <vector>

#include "gateway/base/status.h"

namespace airlock::vmlaunch {

// Runs argv; its stderr becomes the error message on failure.
Status RunCommand(const std::vector<std::string>& argv);
// Runs argv and returns its stdout.
Result<std::string> CaptureCommand(const std::vector<std::string>& argv);
// Quotes a string for `sh -c`.
std::string ShellQuote(const std::string& s);

}  // namespace airlock::vmlaunch
