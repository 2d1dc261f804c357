// RunMonitor: accept, read one request, relay; check the TTL and the VMM between requests and
// while an exec runs. Requests are relayed one at a time; those that arrive meanwhile wait in
// order, except `stop`, which ends the running command and the VM at once.
#include "vmlaunch/vm/monitor.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <optional>

#include "vmlaunch/guest/line_channel.h"
#include "vmlaunch/process/interrupt.h"
#include "vmlaunch/process/process.h"

namespace airlock::vmlaunch {

using nlohmann::json;
using std::chrono::milliseconds;

namespace {

Result<int> ListenUnix(const std::string& path) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof(sun.sun_path)) return Status::Error("path too long: " + path);
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  ::unlink(path.c_str());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  mode_t old = ::umask(077);
  bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) == 0 &&
            ::listen(fd, 16) == 0;
  ::umask(old);
  if (!ok) {
    if (fd >= 0) ::close(fd);
    return Status::Error("cannot listen on " + path + ": " + std::strerror(errno));
  }
  return fd;
}

// The exit code a client reports when the monitor, not the command, failed (as `vmlaunch run`).
constexpr int kMonitorError = 125;

// True if the client hung up (or sent more than its one request).
bool ClientGone(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLIN));
}

}  // namespace

int RunMonitor(VmSession& vm, std::ostream& log) {
  const VmRecord& r = vm.record();
  auto listener = ListenUnix(r.dir + "/monitor.sock");
  if (!listener.ok()) {
    log << "monitor: " << listener.status().message() << "\n";
    return 1;
  }
  const int listen_fd = *listener;
  const int vmm_fd = static_cast<int>(::syscall(SYS_pidfd_open, r.vmm_pid, 0));
  std::string why_end;
  auto vm_gone = [&] {
    if (!ProcessAlive(r.vmm_pid, r.vmm_start)) return true;
    int status;
    return ::waitpid(r.vmm_pid, &status, WNOHANG) == r.vmm_pid;
  };
  auto check_end = [&]() -> bool {
    if (Interrupted()) {
      why_end = "signal " + std::to_string(InterruptSignal());
    } else if (r.expires_unix > 0 && NowUnix() >= r.expires_unix) {
      why_end = "TTL expired";
    } else if (vm_gone()) {
      why_end = "the VM exited";
    } else if (!vm.agent().health().ok()) {
      why_end = vm.agent().health().message();
    }
    return !why_end.empty();
  };
  log << "monitor: " << r.id << " ready (pid " << ::getpid() << ")\n" << std::flush;
  struct Client {
    int fd;
    json request;
  };
  // One waiting client, with its request read (up to 10 s for a client that connects and says
  // nothing); nullopt if none was waiting or it said nothing useful.
  auto accept_client = [&]() -> std::optional<Client> {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return std::nullopt;
    auto request = LineChannel(fd).Receive(10000);
    if (!request.ok()) {
      ::close(fd);
      return std::nullopt;
    }
    return Client{fd, *request};
  };
  std::deque<Client> waiting;  // requests that arrived while another was relayed, in order
  int stop_client = -1;
  // Polled while a request is relayed: a `stop` ends the running command at once; anything else
  // waits its turn.
  auto stop_arrived = [&] {
    pollfd p{listen_fd, POLLIN, 0};
    while (stop_client < 0 && ::poll(&p, 1, 0) > 0 && (p.revents & POLLIN)) {
      auto c = accept_client();
      if (!c) continue;
      if (c->request.value("op", "") == "stop") {
        stop_client = c->fd;
        why_end = "stop requested";
      } else {
        waiting.push_back(std::move(*c));
      }
    }
    return stop_client >= 0;
  };
  while (stop_client < 0 && !check_end()) {
    std::optional<Client> next;
    if (!waiting.empty()) {
      next = std::move(waiting.front());
      waiting.pop_front();
    } else {
      pollfd p[2] = {{listen_fd, POLLIN, 0}, {vmm_fd, POLLIN, 0}};
      int wait_ms = 1000;
      if (r.expires_unix > 0) {
        wait_ms =
            static_cast<int>(std::clamp<int64_t>((r.expires_unix - NowUnix()) * 1000, 0, 1000));
      }
      if (::poll(p, vmm_fd >= 0 ? 2 : 1, wait_ms) <= 0 || !(p[0].revents & POLLIN)) continue;
      next = accept_client();
      if (!next) continue;
    }
    const int client = next->fd;
    const json& request = next->request;
    LineChannel channel(client);
    const json client_id = request.contains("id") ? request["id"] : json(nullptr);
    const std::string op = request.value("op", "");
    auto answer = [&](json reply) {
      if (client_id.is_null()) {
        reply.erase("id");  // the agent's numbering is the monitor's own
      } else {
        reply["id"] = client_id;
      }
      (void)channel.Send(reply);
    };
    if (op == "stop") {
      stop_client = client;
      why_end = "stop requested";
      break;
    }
    if (op == "status") {
      answer({{"ok", true},
              {"vm", r.id},
              {"guest", r.guest},
              {"session", r.session_id},
              {"expires_unix", r.expires_unix}});
    } else if (op == "exec" || op == "put" || op == "get") {
      json forward = request;
      forward.erase("id");
      const int64_t timeout_ms = forward.value("timeout_ms", int64_t{0});
      const milliseconds limit = op != "exec"      ? milliseconds(120000)
                                 : timeout_ms == 0 ? milliseconds(24LL * 3600 * 1000)
                                                   : milliseconds(timeout_ms + 15000);
      Status s = vm.agent().Relay(
          forward,
          [&](const GuestMessage& reply) {
            json relayed = reply.json();
            if (!reply.Has("stream") && !why_end.empty()) {  // say why the command was cut short
              relayed["error"] =
                  "the command was ended because the VM is going away (" + why_end + ")";
            }
            answer(std::move(relayed));
            return Status::Ok();
          },
          [&] { return ClientGone(client) || check_end() || stop_arrived(); }, limit);
      if (!s.ok()) answer({{"error", s.message()}, {"exit_code", kMonitorError}});
    } else {
      answer({{"error", "unknown request '" + op + "' (exec, put, get, status, stop)"}});
    }
    ::close(client);
  }
  for (const auto& c : waiting) {  // they learn why from the hang-up
    ::close(c.fd);
  }
  log << "monitor: " << r.id << ": " << why_end << "; tearing down\n" << std::flush;
  ::close(listen_fd);
  if (vmm_fd >= 0) ::close(vmm_fd);
  vm.Destroy(/*graceful=*/!vm_gone());
  log << "monitor: " << r.id << " torn down in " << vm.timings().teardown_ms << " ms\n"
      << std::flush;
  if (stop_client >= 0) {
    LineChannel channel(stop_client);
    (void)channel.Send({{"ok", true}, {"teardown_ms", vm.timings().teardown_ms}});
    ::close(stop_client);
  }
  return 0;
}

Result<GuestMessage> MonitorRequest(const std::string& vm_dir, const json& request,
                                    const std::function<Status(const GuestMessage&)>& on_reply) {
  const std::string path = vm_dir + "/monitor.sock";
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::strncpy(sun.sun_path, path.c_str(), sizeof(sun.sun_path) - 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) {
    if (fd >= 0) ::close(fd);
    return Status::Error("cannot reach the VM's monitor at " + path +
                         " (is the VM running? `vmlaunch ls`)");
  }
  LineChannel channel(fd);
  std::optional<GuestMessage> final_reply;
  Status s = channel.Send(request);
  while (s.ok()) {
    auto m = channel.Receive(200);
    if (!m.ok() && m.status().code() == StatusCode::kTimedOut) {
      // Hanging up is how a client cancels: the monitor then kills the command.
      if (Interrupted()) s = Status::Error("interrupted");
      continue;
    }
    if (!m.ok()) {
      s = Status::Error("the monitor hung up: " + m.status().message());
      break;
    }
    auto reply = GuestMessage::From(std::move(m).value());
    if (!reply.ok()) {
      s = reply.status();
      break;
    }
    if (on_reply) s = on_reply(*reply);
    if (s.ok() && !reply->Has("stream")) {
      final_reply = std::move(reply).value();
      break;
    }
  }
  ::close(fd);
  if (!s.ok()) return s;
  return std::move(*final_reply);
}

}  // namespace airlock::vmlaunch
