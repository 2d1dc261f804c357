// RunExec: fork, setsid, exec; a poll loop over stdout, stderr, stdin, the child's pidfd and the
// control descriptor.
#include "vmlaunch/guest/exec_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

extern char** environ;

namespace airlock::vmlaunch {
namespace {

using Clock = std::chrono::steady_clock;

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

[[noreturn]] void ExecChild(const ExecRequest& r, int in, int out, int err, int report) {
  ::setsid();
  ::dup2(in, STDIN_FILENO);
  ::dup2(out, STDOUT_FILENO);
  ::dup2(err, STDERR_FILENO);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD}) ::signal(s, SIG_DFL);
  int code = 0;
  const char* step = "chdr";
  if (::chdir(r.cwd.c_str()) != 0) {
    code = errno;
  } else {
    step = "exec";
    std::vector<char*> args, envp;
    for (const auto& a : r.argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    for (const auto& e : r.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    environ = envp.data();  // execvp searches the PATH of the command's own environment
    ::execvp(args[0], args.data());
    code = errno;
  }
  // Tell the parent why (the pipe is close-on-exec, so success sends nothing).
  char msg[8];
  std::memcpy(msg, &code, sizeof(code));
  std::memcpy(msg + 4, step, 4);
  (void)!::write(report, msg, sizeof(msg));
  _exit(127);
}

}  // namespace

Result<ExecOutcome> RunExec(const ExecRequest& r, const ExecHooks& hooks) {
  if (r.argv.empty() || r.argv[0].empty()) return Status::Error("argv is empty");
  int in_r = -1, in_w = -1, out_r = -1, out_w = -1, err_r = -1, err_w = -1, rep_r = -1, rep_w = -1,
      pidfd = -1;
  // Every descriptor is closed on every way out.
  struct Closer {
    std::array<int*, 9> fds;
    ~Closer() {
      for (int* fd : fds) CloseFd(*fd);
    }
  } closer{{&in_r, &in_w, &out_r, &out_w, &err_r, &err_w, &rep_r, &rep_w, &pidfd}};
  for (auto [r_end, w_end] :
       {std::pair{&in_r, &in_w}, {&out_r, &out_w}, {&err_r, &err_w}, {&rep_r, &rep_w}}) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return Status::Error("pipe failed");
    *r_end = p[0];
    *w_end = p[1];
  }

  const auto start = Clock::now();
  pid_t pid = ::fork();
  if (pid < 0) return Status::Error(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) ExecChild(r, in_r, out_w, err_w, rep_w);
  CloseFd(in_r);
  CloseFd(out_w);
  CloseFd(err_w);
  CloseFd(rep_w);

  char msg[8];
  ssize_t got = ::read(rep_r, msg, sizeof(msg));
  if (got == static_cast<ssize_t>(sizeof(msg))) {
    int code;
    std::memcpy(&code, msg, sizeof(code));
    ::waitpid(pid, nullptr, 0);
    std::string what =
        std::memcmp(msg + 4, "chdr", 4) == 0 ? "cannot enter " + r.cwd : "cannot run " + r.argv[0];
    return Status::Error(what + ": " + std::strerror(code), code == EACCES || code == EPERM
                                                                ? StatusCode::kPermissionDenied
                                                                : StatusCode::kError);
  }
  pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));

  for (int fd : {in_w, out_r, err_r}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  size_t stdin_off = 0;
  if (r.stdin_data.empty()) CloseFd(in_w);

  ExecOutcome outcome;
  bool exited = false;
  int wait_status = 0;
  Clock::time_point drain_deadline{}, end{};
  const auto deadline = start + r.timeout;
  while (out_r >= 0 || err_r >= 0 || !exited) {
    auto now = Clock::now();
    if (!exited && r.timeout.count() > 0 && now >= deadline && !outcome.timed_out) {
      outcome.timed_out = true;
      ::kill(-pid, SIGKILL);
    }
    // After the command has ended, something it started may still hold the pipes: give the
    // output a moment to arrive, then stop reading.
    if (exited && now >= drain_deadline) break;
    pollfd p[5];
    int n = 0;
    auto add = [&](int fd, short ev) {
      if (fd >= 0) p[n++] = pollfd{fd, ev, 0};
    };
    add(out_r, POLLIN);
    add(err_r, POLLIN);
    add(in_w, POLLOUT);
    if (!exited) add(pidfd, POLLIN);
    if (!outcome.cancelled) add(hooks.control_fd, POLLIN);
    int wait_ms = 1000;
    if (exited) {
      wait_ms = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(drain_deadline - now).count());
    } else if (r.timeout.count() > 0 && !outcome.timed_out) {
      wait_ms = static_cast<int>(std::clamp<int64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1, 0,
          1000));
    }
    if (::poll(p, static_cast<nfds_t>(n), wait_ms) < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      if (p[i].revents == 0) continue;
      int fd = p[i].fd;
      if (fd == out_r || fd == err_r) {
        char buf[65536];
        ssize_t k = ::read(fd, buf, sizeof(buf));
        if (k > 0) {
          hooks.on_output(fd == out_r ? OutputStream::kStdout : OutputStream::kStderr,
                          std::string_view(buf, static_cast<size_t>(k)));
        } else if (k == 0 || errno != EAGAIN) {
          CloseFd(fd == out_r ? out_r : err_r);
        }
      } else if (fd == in_w) {
        ssize_t k = ::write(in_w, r.stdin_data.data() + stdin_off, r.stdin_data.size() - stdin_off);
        if (k > 0) stdin_off += static_cast<size_t>(k);
        if ((k < 0 && errno != EAGAIN) || stdin_off == r.stdin_data.size()) CloseFd(in_w);
      } else if (fd == pidfd) {
        ::waitpid(pid, &wait_status, 0);
        exited = true;
        end = Clock::now();
        ::kill(-pid, SIGKILL);  // what the command left behind in its group
        CloseFd(in_w);
        drain_deadline = Clock::now() + std::chrono::milliseconds(500);
      } else if (fd == hooks.control_fd && hooks.on_readable && hooks.on_readable()) {
        outcome.cancelled = true;
        ::kill(-pid, SIGKILL);
      }
    }
  }
  if (!exited) {  // poll failed: never leave the command behind
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, &wait_status, 0);
    end = Clock::now();
  }
  outcome.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(end - start).count();
  if (WIFSIGNALED(wait_status)) {
    outcome.signal = WTERMSIG(wait_status);
    outcome.exit_code = 128 + outcome.signal;
  } else {
    outcome.exit_code = WEXITSTATUS(wait_status);
  }
  if (outcome.timed_out) outcome.exit_code = 124;
  return outcome;
}

}  // namespace airlock::vmlaunch
