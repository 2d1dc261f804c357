// Long-lived child processes (the VMM) and the liveness checks that `gc` relies on. A process
// is identified by its pid *and* its start time, so a recycled pid is never mistaken for the
// process that a state file names. Stateless functions; safe from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gateway/base/status.h"

namespace airlock::vmlaunch {

struct SpawnOptions {
  std::vector<std::string> argv;
  std::string log_path;                   // stdout and stderr (appended); "" keeps the caller's
  std::vector<std::string> cgroup_procs;  // cgroup.procs files the child joins before exec
  bool die_with_parent = true;            // PR_SET_PDEATHSIG: never outlive the launcher or monitor
};

Result<pid_t> Spawn(const SpawnOptions& options);

// The start time of `pid` in clock ticks since boot (/proc/PID/stat field 22).
std::optional<uint64_t> ProcessStartTime(pid_t pid);
// True if `pid` runs and started at `start_time` (0: any start time).
bool ProcessAlive(pid_t pid, uint64_t start_time);
// SIGTERM, up to `grace` for it to go, then SIGKILL; reaps it if it is our child.
void TerminateProcess(pid_t pid, std::chrono::milliseconds grace);

// Parses "512M", "2G", "1048576" (bytes; K, M, G suffixes, powers of 1024).
std::optional<uint64_t> ParseSize(const std::string& text);
// Parses "30s", "5m", "1h", "250ms", "30" (seconds).
std::optional<std::chrono::milliseconds> ParseDuration(const std::string& text);

}  // namespace airlock::vmlaunch
