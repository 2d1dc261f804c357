// Credential helpers (see helper_process.h).
#include "gateway/credentials/helper_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

extern char** environ;

namespace airlock::credentials {
namespace {

constexpr size_t kMaxOutput = 64 << 10;

class SpawnActions {
 public:
  SpawnActions() { posix_spawn_file_actions_init(&a_); }
  ~SpawnActions() { posix_spawn_file_actions_destroy(&a_); }
  posix_spawn_file_actions_t* get() { return &a_; }

 private:
  posix_spawn_file_actions_t a_;
};

class SpawnAttr {
 public:
  SpawnAttr() { posix_spawnattr_init(&a_); }
  ~SpawnAttr() { posix_spawnattr_destroy(&a_); }
  posix_spawnattr_t* get() { return &a_; }

 private:
  posix_spawnattr_t a_;
};

}  // namespace

Result<std::string> RunHelper(const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout) {
  const std::string& program = argv.at(0);  // the loader requires a program
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return Status::Error(std::string("cannot create a pipe: ") + std::strerror(errno));
  }
  SpawnActions actions;
  posix_spawn_file_actions_addopen(actions.get(), 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(actions.get(), pipe_fds[1], 1);
  posix_spawn_file_actions_addopen(actions.get(), 2, "/dev/null", O_WRONLY, 0);
  // Nothing else of the gateway's (sockets, the audit log) reaches the helper, whether or not
  // it was opened close-on-exec.
  posix_spawn_file_actions_addclosefrom_np(actions.get(), 3);
  SpawnAttr attr;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(attr.get(), &none);
  posix_spawnattr_setsigdefault(attr.get(), &all);
  posix_spawnattr_setpgroup(attr.get(), 0);
  posix_spawnattr_setflags(attr.get(),
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, program.c_str(), actions.get(), attr.get(), args.data(), environ);
  close(pipe_fds[1]);
  if (rc != 0) {
    close(pipe_fds[0]);
    return Status::Error("cannot run " + program + ": " + std::strerror(rc));
  }

  std::string out;
  bool timed_out = false, too_big = false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{pipe_fds[0], POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) == 0) {
      timed_out = true;
      break;
    }
    char buf[4096];
    ssize_t n = read(pipe_fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, n);
    if (out.size() > kMaxOutput) {
      too_big = true;
      break;
    }
  }
  close(pipe_fds[0]);
  if (timed_out || too_big) kill(-pid, SIGKILL);
  // Its output is complete; it must still exit within the deadline.
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) break;
    if (r == 0 && std::chrono::steady_clock::now() >= deadline && !timed_out) {
      timed_out = true;
      kill(-pid, SIGKILL);
    }
    if (r == 0) {
      timespec pause{0, 5'000'000};  // 5 ms between looks; helpers exit right after printing
      nanosleep(&pause, nullptr);
    }
  }
  kill(-pid, SIGKILL);  // whatever the helper left running in its group goes with it
  if (timed_out) {
    return Status::Error(program + " did not finish within " + std::to_string(timeout.count()) +
                         " ms (killed)");
  }
  if (too_big) return Status::Error(program + " printed more than 64 KiB (killed)");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status::Error(program +
                         (WIFEXITED(status)
                              ? " exited with status " + std::to_string(WEXITSTATUS(status))
                              : " was killed by signal " + std::to_string(WTERMSIG(status))) +
                         " (its stderr is discarded; run it by hand to see why)");
  }
  return out;
}

}  // namespace airlock::credentials
