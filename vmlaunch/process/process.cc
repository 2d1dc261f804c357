// Spawn with a log file, a cgroup and a parent-death signal; /proc-based liveness.
#include "vmlaunch/process/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace airlock::vmlaunch {

Result<pid_t> Spawn(const SpawnOptions& o) {
  if (o.argv.empty()) return Status::Error("nothing to spawn");
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return Status::Error("pipe failed");
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return Status::Error(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    close(report[0]);
    auto fail = [&](const std::string& what) {
      std::string msg = what + ": " + std::strerror(errno);
      (void)!write(report[1], msg.data(), msg.size());
      _exit(127);
    };
    setpgid(0, 0);
    if (o.die_with_parent) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
    }
    for (const auto& procs : o.cgroup_procs) {
      int fd = open(procs.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0 || write(fd, "0", 1) != 1) fail("cannot join " + procs);
      close(fd);
    }
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    if (!o.log_path.empty()) {
      int log = open(o.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (log < 0) fail("cannot open " + o.log_path);
      dup2(log, STDOUT_FILENO);
      dup2(log, STDERR_FILENO);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    std::vector<char*> args;
    for (const auto& a : o.argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    fail("cannot run " + o.argv[0]);
  }
  close(report[1]);
  char buf[512];
  ssize_t n = read(report[0], buf, sizeof(buf));
  close(report[0]);
  if (n > 0) {
    waitpid(pid, nullptr, 0);
    return Status::Error(std::string(buf, static_cast<size_t>(n)));
  }
  return pid;
}

std::optional<uint64_t> ProcessStartTime(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(f, stat)) return std::nullopt;
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
    if (i == 3 && field == "Z") return std::nullopt;  // a zombie has already gone
    if (i == 22) return std::stoull(field);
  }
  return std::nullopt;
}

bool ProcessAlive(pid_t pid, uint64_t start_time) {
  auto t = ProcessStartTime(pid);
  return t && (start_time == 0 || *t == start_time);
}

void TerminateProcess(pid_t pid, std::chrono::milliseconds grace) {
  if (pid <= 0) return;
  auto reaped = [pid] {
    int status;
    pid_t r = waitpid(pid, &status, WNOHANG);
    return r == pid || (r < 0 && errno == ECHILD && !ProcessAlive(pid, 0));
  };
  if (kill(pid, SIGTERM) != 0 && errno == ESRCH) {
    reaped();
    return;
  }
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (reaped()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  for (int i = 0; i < 500 && !reaped(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

namespace {

// Digits, then a unit; at most 15 digits so that the number and its scaling cannot overflow.
bool NumberThenUnit(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  return digits > 0 && digits <= 15;
}

}  // namespace

std::optional<uint64_t> ParseSize(const std::string& text) {
  if (!NumberThenUnit(text)) return std::nullopt;
  size_t used = 0;
  uint64_t n = std::stoull(text, &used);
  std::string unit = text.substr(used);
  if (unit == "" || unit == "B") return n;
  if (unit == "K" || unit == "KiB" || unit == "k") return n << 10;
  if (unit == "M" || unit == "MiB") return n << 20;
  if (unit == "G" || unit == "GiB") return n << 30;
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  if (!NumberThenUnit(text)) return std::nullopt;
  size_t used = 0;
  int64_t n = std::stoll(text, &used);
  std::string unit = text.substr(used);
  if (unit == "ms") return std::chrono::milliseconds(n);
  if (unit == "" || unit == "s") return std::chrono::seconds(n);
  if (unit == "m") return std::chrono::minutes(n);
  if (unit == "h") return std::chrono::hours(n);
  return std::nullopt;
}

}  // namespace airlock::vmlaunch
