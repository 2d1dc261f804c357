// ExecProcess: fork, setsid, exec; non-blocking pipes, the child's pidfd, the deadlines.
#include "vmlaunch/guest/exec_runner.h"

#include <fcntl.h>
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
using std::chrono::milliseconds;

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

int64_t MsUntil(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t - Clock::now()).count();
}

Result<std::unique_ptr<ExecProcess>> ExecProcess::Start(const ExecRequest& r) {
  if (r.argv.empty() || r.argv[0].empty()) return Status::Error("argv is empty");
  const bool detached = !r.output_file.empty();
  int in_r = -1, in_w = -1, out_r = -1, out_w = -1, err_r = -1, err_w = -1, rep_r = -1, rep_w = -1;
  // Every descriptor the process does not keep is closed on every way out.
  struct Closer {
    std::array<int*, 8> fds;
    ~Closer() {
      for (int* fd : fds) CloseFd(*fd);
    }
  } closer{{&in_r, &in_w, &out_r, &out_w, &err_r, &err_w, &rep_r, &rep_w}};
  for (auto [r_end, w_end] :
       {std::pair{&in_r, &in_w}, {&out_r, &out_w}, {&err_r, &err_w}, {&rep_r, &rep_w}}) {
    if (detached && r_end != &rep_r) continue;
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return Status::Error("pipe failed");
    *r_end = p[0];
    *w_end = p[1];
  }
  if (detached) {
    in_r = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    out_w = ::open(r.output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    err_w = out_w >= 0 ? ::fcntl(out_w, F_DUPFD_CLOEXEC, 0) : -1;
    if (in_r < 0 || out_w < 0 || err_w < 0) {
      return Status::Error("cannot write " + r.output_file + ": " + std::strerror(errno));
    }
  }

  std::unique_ptr<ExecProcess> p(new ExecProcess());
  p->start_ = Clock::now();
  p->detached_ = detached;
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
  p->pid_ = pid;
  p->pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  std::swap(p->in_w_, in_w);
  std::swap(p->out_r_, out_r);
  std::swap(p->err_r_, err_r);
  for (int fd : {p->in_w_, p->out_r_, p->err_r_}) {
    if (fd >= 0) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  p->stdin_data_ = r.stdin_data;
  if (p->stdin_data_.empty()) CloseFd(p->in_w_);
  if (r.timeout.count() > 0) {
    p->has_deadline_ = true;
    p->deadline_ = p->start_ + r.timeout;
  }
  return p;
}

ExecProcess::~ExecProcess() {
  if (!exited_ && pid_ > 0) {  // never leave the command behind
    ::kill(detached_ ? pid_ : -pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  for (int* fd : {&in_w_, &out_r_, &err_r_, &pidfd_}) CloseFd(*fd);
}

void ExecProcess::AddPollFds(std::vector<pollfd>* fds) const {
  if (finished_) return;
  for (auto [fd, ev] : {std::pair{out_r_, POLLIN}, {err_r_, POLLIN}, {in_w_, POLLOUT}}) {
    if (fd >= 0) fds->push_back({fd, static_cast<short>(ev), 0});
  }
  if (!exited_ && pidfd_ >= 0) fds->push_back({pidfd_, POLLIN, 0});
}

int ExecProcess::NextWakeMs() const {
  if (finished_) return -1;
  if (exited_) return static_cast<int>(std::max<int64_t>(0, MsUntil(drain_deadline_)));
  if (has_deadline_ && !outcome_.timed_out) {
    return static_cast<int>(std::clamp<int64_t>(MsUntil(deadline_) + 1, 0, 1000));
  }
  return pidfd_ >= 0 ? -1 : 100;  // (without a pidfd the exit is found by polling)
}

void ExecProcess::Cancel() {
  if (exited_ || outcome_.cancelled) return;
  outcome_.cancelled = true;
  ::kill(detached_ ? pid_ : -pid_, SIGKILL);
}

void ExecProcess::Step(const OutputHandler& on_output) {
  if (finished_) return;
  if (!exited_ && has_deadline_ && !outcome_.timed_out && Clock::now() >= deadline_) {
    outcome_.timed_out = true;
    ::kill(detached_ ? pid_ : -pid_, SIGKILL);
  }
  for (int* fd : {&out_r_, &err_r_}) {
    // A few reads a step, so that a command that floods its output cannot starve the others
    // (or its own timeout).
    for (int reads = 0; *fd >= 0 && reads < 4; ++reads) {
      char buf[65536];
      ssize_t k = ::read(*fd, buf, sizeof(buf));
      if (k > 0) {
        if (on_output) {
          on_output(fd == &out_r_ ? OutputStream::kStdout : OutputStream::kStderr,
                    std::string_view(buf, static_cast<size_t>(k)));
        }
        if (static_cast<size_t>(k) < sizeof(buf)) break;
      } else if (k < 0 && errno == EAGAIN) {
        break;
      } else if (!(k < 0 && errno == EINTR)) {
        CloseFd(*fd);
      }
    }
  }
  if (in_w_ >= 0) {
    ssize_t k = ::write(in_w_, stdin_data_.data() + stdin_off_, stdin_data_.size() - stdin_off_);
    if (k > 0) stdin_off_ += static_cast<size_t>(k);
    if ((k < 0 && errno != EAGAIN && errno != EINTR) || stdin_off_ == stdin_data_.size()) {
      CloseFd(in_w_);
    }
  }
  if (!exited_) {
    if (::waitpid(pid_, &wait_status_, WNOHANG) == pid_) {
      exited_ = true;
      end_ = Clock::now();
      // What the command left behind in its group (a detached command's group is its own).
      if (!detached_) ::kill(-pid_, SIGKILL);
      CloseFd(in_w_);
      CloseFd(pidfd_);
      // Something it started may still hold the pipes: give the output a moment to arrive.
      drain_deadline_ = Clock::now() + milliseconds(500);
    }
  }
  if (exited_ && ((out_r_ < 0 && err_r_ < 0) || Clock::now() >= drain_deadline_)) Finish();
}

void ExecProcess::Finish() {
  finished_ = true;
  CloseFd(out_r_);
  CloseFd(err_r_);
  outcome_.duration_ms = std::chrono::duration_cast<milliseconds>(end_ - start_).count();
  if (WIFSIGNALED(wait_status_)) {
    outcome_.signal = WTERMSIG(wait_status_);
    outcome_.exit_code = 128 + outcome_.signal;
  } else {
    outcome_.exit_code = WEXITSTATUS(wait_status_);
  }
  if (outcome_.timed_out) outcome_.exit_code = 124;
}

Result<ExecOutcome> RunExec(const ExecRequest& request, const OutputHandler& on_output,
                            int control_fd, const std::function<bool()>& on_control) {
  auto p = ExecProcess::Start(request);
  if (!p.ok()) return p.status();
  ExecProcess& e = **p;
  while (!e.finished()) {
    std::vector<pollfd> fds;
    e.AddPollFds(&fds);
    const bool watch = control_fd >= 0 && !e.outcome().cancelled;
    if (watch) fds.push_back({control_fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), e.NextWakeMs()) < 0 && errno != EINTR) break;
    if (watch && (fds.back().revents & (POLLIN | POLLHUP | POLLERR)) && on_control &&
        on_control()) {
      e.Cancel();
    }
    e.Step(on_output);
  }
  return e.outcome();
}

}  // namespace airlock::vmlaunch
