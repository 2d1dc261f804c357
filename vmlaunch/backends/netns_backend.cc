// The netns backend: set-up steps, each paired with its undo, then the command.
#include "vmlaunch/backends/netns_backend.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>

#include "gateway/control/control_client.h"
#include "vmlaunch/ca_trust.h"
#include "vmlaunch/network/address_pool.h"
#include "vmlaunch/network/link.h"
#include "vmlaunch/network/nft_table.h"
#include "vmlaunch/process/command.h"
#include "vmlaunch/process/read_file.h"

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

std::string NetnsFilesDir(const std::string& state_dir, const std::string& netns) {
  return state_dir + "/netns/" + netns;
}

std::vector<std::string> NetnsEnvironment(const std::string& proxy, const std::string& session,
                                          const std::string& ca_bundle,
                                          const std::map<std::string, std::string>& placeholders,
                                          const std::map<std::string, std::string>& user_env) {
  std::map<std::string, std::string> env = user_env;
  for (const char* name : {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"}) {
    env.try_emplace(name, proxy);
  }
  env.try_emplace("NO_PROXY", "localhost,127.0.0.1");
  env.try_emplace("no_proxy", "localhost,127.0.0.1");
  env.try_emplace("AIRLOCK_SESSION", session);
  if (!ca_bundle.empty()) AddCaTrustEnv(ca_bundle, &env);
  // A placeholder wins over a --env of the same name, as in a microVM: a real secret passed by
  // mistake never reaches the sandbox under a credential's name.
  for (const auto& [name, value] : placeholders) env[name] = value;
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

Result<int> RunInNetns(const NetnsRunOptions& o) {
  if (o.argv.empty()) return Status::Error("no command to run");
  std::string error;
  auto range = net::Cidr::Parse(o.pool, &error);
  if (!range) return Status::Error("--pool: " + error);
  // Declared before the teardown, so that they outlive the undo steps that use them.
  vmnet::AddressPool pool(o.state_dir + "/address-pool.json", *range);
  vmnet::NftTable nft;
  control::ControlClient control(o.control_socket);
  Teardown teardown;

  // The CA first: a gateway that cannot give it is not worth setting anything up for.
  auto ca = FetchGatewayCa(control, std::cerr);
  if (!ca.ok()) return ca.status();

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

  // The CA bundle in a directory of the sandbox's own, which it reads through the shared
  // filesystem: system roots (for passed-through TLS) and the gateway's CA (for inspected TLS).
  std::string bundle;
  if (!ca->empty()) {
    const std::string dir = NetnsFilesDir(o.state_dir, name);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    teardown.Add([dir] {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    });
    if (ec) return Status::Error("cannot create " + dir + ": " + ec.message());
    std::filesystem::permissions(dir, static_cast<std::filesystem::perms>(0755), ec);
    bundle = dir + "/ca.crt";
    if (Status s = WriteFile(bundle, CaBundle({ReadFile(std::string(kSystemRoots)), *ca}),
                             static_cast<std::filesystem::perms>(0644));
        !s.ok()) {
      return s;
    }
  }

  const std::string proxy = "http://" + gw + ":" + std::to_string(o.proxy_port);
  std::vector<std::string> argv = {"ip",      "netns",        "exec",  name,
                                   "unshare", "--pid",        "--uts", "--mount-proc",
                                   "--fork",  "--kill-child", "env"};
  // Placeholders for the credentials the gateway injects: the sandbox sees only these.
  std::map<std::string, std::string> placeholders;
  if (session->contains("placeholders") && (*session)["placeholders"].is_object()) {
    for (const auto& [k, v] : (*session)["placeholders"].items()) {
      if (v.is_string()) placeholders[k] = v.get<std::string>();
    }
  }
  for (auto& kv : NetnsEnvironment(proxy, sid, bundle, placeholders, o.env)) {
    argv.push_back(std::move(kv));
  }
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
