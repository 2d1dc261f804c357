// fork/exec with the child's stdout and stderr on pipes.
#include "vmlaunch/process/command.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace airlock::vmlaunch {
namespace {

// Returns {exit ok, stdout, stderr}.
Result<std::pair<std::string, std::string>> Run(const std::vector<std::string>& argv) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return Status::Error("pipe failed");
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return Status::Error("pipe failed");
  }
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    dprintf(STDERR_FILENO, "cannot run %s: %s", args[0], strerror(errno));
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  std::string text[2];
  pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open = 2;
  while (open > 0) {
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || p[i].revents == 0) continue;
      char buf[4096];
      ssize_t n = read(p[i].fd, buf, sizeof(buf));
      if (n > 0) {
        text[i].append(buf, static_cast<size_t>(n));
      } else {
        close(p[i].fd);
        p[i].fd = -1;
        --open;
      }
    }
  }
  for (auto& q : p) {
    if (q.fd >= 0) close(q.fd);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    while (!text[1].empty() && text[1].back() == '\n') text[1].pop_back();
    // The end of a long complaint is where the reason is.
    constexpr size_t kMaxError = 2000;
    if (text[1].size() > kMaxError) text[1] = "..." + text[1].substr(text[1].size() - kMaxError);
    return Status::Error(cmd + " failed" + (text[1].empty() ? "" : ": " + text[1]));
  }
  return std::make_pair(std::move(text[0]), std::move(text[1]));
}

}  // namespace

Status RunCommand(const std::vector<std::string>& argv) { return Run(argv).status(); }

Result<std::string> CaptureCommand(const std::vector<std::string>& argv) {
  auto r = Run(argv);
  if (!r.ok()) return r.status();
  return r->first;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace airlock::vmlaunch
