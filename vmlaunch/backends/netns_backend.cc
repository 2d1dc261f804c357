// The netns backend: set-up steps, each paired with its undo, then the command.
#include "vmlaunch/backends/netns_backend.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>

#include "vmlaunch/control_client.h"
#include "vmlaunch/network/address_pool.h"
#include "vmlaunch/network/link.h"
#include "vmlaunch/network/nft_table.h"
#include "vmlaunch/process/command.h"

namespace airlock::vmlaunch {
namespace {

pid_t g_child = 0;

void ForwardSignal(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

// Undo steps, run in reverse order when the sandbox ends (however it ends).
class Teardown {
 public:
  void Add(std::function<void()> undo) { undo_.push_back(std::move(undo)); }
  ~Teardown() {
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) (*it)();
  }

 private:
  std::vector<std::function<void()>> undo_;
};

}  // namespace

std::string NetnsHostLink(const net::Cidr& pool, const net::IpAddress& block) {
  return "alh" + std::to_string((block.v4() - pool.base().v4()) / 4);
}

Result<int> RunInNetns(const NetnsRunOptions& o) {
  if (o.argv.empty()) return Status::Error("no command to run");
  std::string error;
  auto range = net::Cidr::Parse(o.pool, &error);
  if (!range) return Status::Error("--pool: " + error);
  // Declared before the teardown, so that they outlive the undo steps that use them.
  vmnet::AddressPool pool(o.state_dir + "/address-pool.json", *range);
  vmnet::NftTable nft;
  ControlClient control(o.control_socket);
  Teardown teardown;

  std::string name = "al-ns-" + std::to_string(getpid());
  auto lease = pool.Allocate(name, getpid());
  if (!lease.ok()) return lease.status();
  teardown.Add([&pool, block = lease->block] { (void)pool.Release(block); });
  const std::string gw = lease->gateway().ToString();
  const std::string guest = lease->guest().ToString();
  const std::string host_if = NetnsHostLink(*range, lease->block);

  if (Status s = RunCommand({"ip", "netns", "add", name}); !s.ok()) return s;
  teardown.Add([name] { (void)RunCommand({"ip", "netns", "delete", name}); });
  teardown.Add([host_if] { (void)vmnet::DeleteLink(host_if); });  // harmless if never made
  if (Status s = vmnet::CreateVethLink(host_if, name, lease->gateway(), lease->guest()); !s.ok()) {
    return s;
  }
  // `ip netns exec` bind-mounts /etc/netns/NAME/* over /etc.
  const std::string etc = "/etc/netns/" + name;
  std::filesystem::create_directories(etc);
  teardown.Add([etc] { std::filesystem::remove_all(etc); });
  std::ofstream(etc + "/resolv.conf") << "nameserver " << gw << "\n";

  if (Status s = nft.AddLink(host_if, lease->guest()); !s.ok()) return s;
  teardown.Add([&nft, host_if, addr = lease->guest()] { (void)nft.RemoveLink(host_if, addr); });

  auto session = control.CreateSession({{"policy", o.policy},
                                        {"source", guest},
                                        {"token", false},
                                        {"ttl_seconds", o.ttl.count()},
                                        {"labels", {{"backend", "netns"}, {"netns", name}}}});
  if (!session.ok()) return session.status();
  std::string sid = (*session)["id"].get<std::string>();
  teardown.Add([&control, sid] { (void)control.DeleteSession(sid); });

  const std::string proxy = "http://" + gw + ":" + std::to_string(o.proxy_port);
  std::vector<std::string> argv = {"ip",
                                   "netns",
                                   "exec",
                                   name,
                                   "unshare",
                                   "--pid",
                                   "--uts",
                                   "--mount-proc",
                                   "--fork",
                                   "--kill-child",
                                   "env",
                                   "HTTP_PROXY=" + proxy,
                                   "HTTPS_PROXY=" + proxy,
                                   "http_proxy=" + proxy,
                                   "https_proxy=" + proxy,
                                   "NO_PROXY=localhost,127.0.0.1",
                                   "no_proxy=localhost,127.0.0.1",
                                   "AIRLOCK_SESSION=" + sid};
  argv.insert(argv.end(), o.env.begin(), o.env.end());
  argv.insert(argv.end(), o.argv.begin(), o.argv.end());
  g_child = fork();
  if (g_child == 0) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  struct sigaction sa {};
  sa.sa_handler = ForwardSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  int status = 0;
  while (waitpid(g_child, &status, 0) < 0 && errno == EINTR) {
  }
  g_child = 0;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace airlock::vmlaunch
