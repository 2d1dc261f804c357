// Link creation with iproute2.
#include "vmlaunch/network/link.h"

#include <sys/wait.h>
#include <unistd.h>

namespace airlock::vmnet {

Status RunCommand(const std::vector<std::string>& argv) {
  int err_pipe[2];
  if (pipe(err_pipe) != 0) return Status::Error("pipe failed");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(err_pipe[1], STDERR_FILENO);
    close(err_pipe[0]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(err_pipe[1]);
  std::string err;
  char buf[512];
  ssize_t n;
  while ((n = read(err_pipe[0], buf, sizeof(buf))) > 0) err.append(buf, static_cast<size_t>(n));
  close(err_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    return Status::Error(cmd + ": " + err);
  }
  return Status::Ok();
}

Status CreateVethLink(const std::string& host_if, const std::string& netns,
                      const net::IpAddress& gateway, const net::IpAddress& guest) {
  const std::string gw = gateway.ToString();
  for (const auto& step : std::vector<std::vector<std::string>>{
           {"ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns},
           {"ip", "addr", "add", gw + "/30", "dev", host_if},
           {"ip", "link", "set", host_if, "up"},
           {"ip", "-n", netns, "link", "set", "lo", "up"},
           {"ip", "-n", netns, "addr", "add", guest.ToString() + "/30", "dev", "eth0"},
           {"ip", "-n", netns, "link", "set", "eth0", "up"},
           {"ip", "-n", netns, "route", "add", "default", "via", gw}}) {
    if (Status s = RunCommand(step); !s.ok()) return s;
  }
  return Status::Ok();
}

Status CreateTapLink(const std::string& name, const net::IpAddress& gateway) {
  for (const auto& step : std::vector<std::vector<std::string>>{
           {"ip", "tuntap", "add", "dev", name, "mode", "tap"},
           {"ip", "addr", "add", gateway.ToString() + "/30", "dev", name},
           {"ip", "link", "set", name, "up"}}) {
    if (Status s = RunCommand(step); !s.ok()) return s;
  }
  return Status::Ok();
}

Status DeleteLink(const std::string& name) { return RunCommand({"ip", "link", "del", name}); }

}  // namespace airlock::vmnet
