// RunMonitor: one poll loop over the listening socket, every client, the agent and the VMM:
// requests are read without blocking, relayed to the agent side by side (replies routed back by
// the agent's id), and the TTL and the VMM are checked every round. `stop` ends every running
// command and the VM at once.
#include "vmlaunch/vm/monitor.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>
#include <linux/close_range.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <vector>

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
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
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

// The longest a command (or a wait) may run, as the agent clamps it: 30 days.
constexpr uint64_t kMaxTimeoutMs = uint64_t{30} * 24 * 3600 * 1000;

// The exit code a client reports when the monitor, not the command, failed (as `vmlaunch run`).
constexpr int kMonitorError = 125;

}  // namespace

namespace {

// What the monitor holds for a client that reads slower than its command writes; past it the
// client is let go (and its command cancelled), so that one stalled reader never stalls the
// monitor, its other clients or the TTL.
constexpr size_t kMaxQueuedPerClient = 16u << 20;
// How long a client that has its final reply queued has to read it.
constexpr milliseconds kFlushGrace(30000);

// One client connection: its request (read without blocking the others), then, for a request
// relayed to the agent, the agent's id for it, and the replies not yet written to it.
struct Client {
  explicit Client(int fd_in) : fd(fd_in), channel(fd_in) {}
  int fd;
  LineChannel channel;
  std::chrono::steady_clock::time_point request_deadline;
  std::optional<json> request;
  uint64_t serial = 0;
  int64_t agent_id = -1;  // in flight at the agent
  std::string out;        // queued replies, written up to out_sent (the socket is non-blocking)
  size_t out_sent = 0;
  bool answered = false;  // its final reply is queued: closed once it is written
  std::chrono::steady_clock::time_point flush_deadline;
  bool gone = false;  // hung up or let go: closed, and replies still owed are dropped

  size_t Queued() const { return out.size() - out_sent; }
  void Queue(std::string_view line) { out.append(line); }
  // Writes what the socket takes now.
  void Flush() {
    while (Queued() > 0 && !gone) {
      const ssize_t n = ::send(fd, out.data() + out_sent, Queued(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        out_sent += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;
      } else {
        gone = true;
      }
    }
    // What is written goes, a large part at a time (not on every write: that would copy the
    // rest of a long queue again and again).
    if (Queued() == 0) {
      out.clear();
      out_sent = 0;
    } else if (out_sent > (1u << 20) && out_sent * 2 > out.size()) {
      out.erase(0, out_sent);
      out_sent = 0;
    }
  }
};

// The options a pooled VM is attached with, from an `attach` request (the launcher's own).
Result<VmOptions> AttachOptions(const json& request, const VmRecord& r) {
  VmOptions o;
  const Status usage = Status::Error(
      "attach needs policy (and may give control_socket, proxy_port, ttl_seconds, env, "
      "standby_after_ms, standby_dir)");
  const json& policy = request.value("policy", json());
  const json& control = request.value("control_socket", json(o.control_socket));
  const json& port = request.value("proxy_port", json(o.proxy_port));
  const json& ttl = request.value("ttl_seconds", json(3600));
  const json& env = request.value("env", json::object());
  const json& standby = request.value("standby_after_ms", json(0));
  const json& standby_dir = request.value("standby_dir", json(o.standby_dir));
  auto in_range = [](const json& v, int64_t max) {
    return v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= max;
  };
  if (!policy.is_string() || !control.is_string() || !in_range(port, 65535) ||
      !in_range(ttl, int64_t{10} * 365 * 24 * 3600) || !env.is_object() ||
      !in_range(standby, int64_t{10} * 365 * 24 * 3600 * 1000) || !standby_dir.is_string() ||
      !standby_dir.get<std::string>().starts_with("/")) {
    return usage;
  }
  o.standby_dir = standby_dir.get<std::string>();
  o.policy = policy.get<std::string>();
  o.control_socket = control.get<std::string>();
  o.proxy_port = static_cast<uint16_t>(port.get<int64_t>());
  o.ttl = std::chrono::seconds(ttl.get<int64_t>());
  o.standby_after = milliseconds(standby.get<int64_t>());
  for (const auto& [k, v] : env.items()) {
    if (!v.is_string()) return usage;
    o.env[k] = v.get<std::string>();
  }
  o.backend = r.backend;
  o.state_dir = r.state_dir;
  o.pool = r.pool;
  return o;
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
  int vmm_fd = static_cast<int>(::syscall(SYS_pidfd_open, r.vmm_pid, 0));
  std::string why_end;
  auto vm_gone = [&] {
    if (vm.suspended()) return false;  // (no VMM while on standby, by design)
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
    } else if (!vm.suspended() && !vm.agent().health().ok()) {
      why_end = vm.agent().health().message();
    }
    return !why_end.empty();
  };
  // Standby: the VM is suspended once no request has been in flight for standby_after_ms, and
  // resumed by the next request that needs the guest.
  auto last_active = std::chrono::steady_clock::now();
  auto resume = [&]() -> Status {
    if (!vm.suspended()) return Status::Ok();
    Status s = vm.Resume(log);
    if (!s.ok()) {
      why_end = "resuming failed: " + s.message();
      return s;
    }
    if (vmm_fd >= 0) ::close(vmm_fd);
    vmm_fd = static_cast<int>(::syscall(SYS_pidfd_open, r.vmm_pid, 0));
    return Status::Ok();
  };
  log << "monitor: " << r.id << " " << r.state << " (pid " << ::getpid() << ")\n" << std::flush;
  // By a serial of their own, not by descriptor: a descriptor number is reused as soon as a
  // client that hung up is closed, while the agent may still answer its command.
  std::map<uint64_t, std::unique_ptr<Client>> clients;
  uint64_t next_serial = 1;
  int stop_client = -1;
  auto answer = [](Client& c, json reply) {
    if (c.gone || c.answered || !c.request) return;
    const json& id = c.request->contains("id") ? (*c.request)["id"] : json(nullptr);
    if (id.is_null()) {
      reply.erase("id");  // the agent's numbering is the monitor's own
    } else {
      reply["id"] = id;
    }
    c.Queue(LineChannel::Frame(reply));
    if (c.Queued() > kMaxQueuedPerClient) {
      c.gone = true;  // not reading: let go, its command cancelled
      return;
    }
    c.Flush();
  };
  auto finish = [&](Client& c, json reply) {
    answer(c, std::move(reply));
    c.answered = true;
    c.flush_deadline = std::chrono::steady_clock::now() + kFlushGrace;
  };
  auto describe = [&r]() -> json {
    return {{"ok", true},
            {"vm", r.id},
            {"state", r.state},
            {"guest", r.guest},
            {"session", r.session_id},
            {"expires_unix", r.expires_unix}};
  };
  // A request read in full: answered at once, or relayed to the agent.
  auto serve = [&](Client& c) {
    const json& request = *c.request;
    const json& op_value = request.value("op", json(""));
    const std::string op = op_value.is_string() ? op_value.get<std::string>() : "";
    if (op == "stop") {
      stop_client = c.fd;
      why_end = "stop requested";
    } else if (op == "retire") {
      // A pool that shrinks lets go of its VM only if nobody has taken it meanwhile: this
      // loop serves one request at a time, so an attach before it wins.
      if (r.state != "pooled") {
        finish(c, {{"error", "the VM was taken already"}});
        return;
      }
      stop_client = c.fd;
      why_end = "retired from its pool";
    } else if (op == "status") {
      finish(c, describe());
    } else if (op == "attach") {
      if (r.state != "pooled") {
        finish(c, {{"error", "the VM was taken already"}});
        return;
      }
      auto options = AttachOptions(request, r);
      Status s = options.ok() ? vm.Attach(*options, log) : options.status();
      if (!s.ok()) {
        finish(c, {{"error", s.message()}});
        // Half attached is no state to serve anyone from: give it all back.
        if (r.state != "pooled") why_end = "attaching failed: " + s.message();
        return;
      }
      log << "monitor: " << r.id << " attached to session " << r.session_id << "\n" << std::flush;
      json reply = describe();
      reply["attach_ms"] = vm.timings().ready_ms;
      finish(c, std::move(reply));
    } else if (op == "exec" || op == "put" || op == "get" || op == "jobs" || op == "wait" ||
               op == "kill") {
      if (Status s = resume(); !s.ok()) {
        finish(c, {{"error", s.message()}, {"exit_code", kMonitorError}});
        return;
      }
      if (r.state != "running") {
        finish(c, {{"error", "the VM is " + r.state + ", not attached to a session"},
                   {"exit_code", kMonitorError}});
        return;
      }
      json forward = request;
      forward.erase("id");
      const json& timeout = forward.value("timeout_ms", json(0));
      // (Clamped: the agent clamps the same way, and a deadline must not overflow.)
      const uint64_t timeout_ms =
          timeout.is_number_unsigned() ? std::min(timeout.get<uint64_t>(), kMaxTimeoutMs) : 0;
      const bool long_wait =
          (op == "exec" && forward.value("detach", json(false)) != json(true)) || op == "wait";
      // The agent answers within the command's timeout; the host waits a little longer.
      const milliseconds limit = !long_wait
                                     ? milliseconds(120000)
                                     : milliseconds(static_cast<int64_t>(
                                           (timeout_ms == 0 ? kMaxTimeoutMs : timeout_ms) + 15000));
      const uint64_t serial = c.serial;
      auto id = vm.agent().Start(
          forward,
          [&clients, &finish, &answer, serial](const GuestMessage& reply) {
            auto it = clients.find(serial);
            if (it == clients.end()) return Status::Ok();
            if (reply.Has("stream")) {
              answer(*it->second, reply.json());
            } else {
              it->second->agent_id = -1;
              finish(*it->second, reply.json());
            }
            return Status::Ok();
          },
          limit);
      if (!id.ok()) {
        finish(c, {{"error", id.status().message()}, {"exit_code", kMonitorError}});
        return;
      }
      c.agent_id = *id;
    } else {
      finish(c,
             {{"error", "unknown request '" + op +
                            "' (exec, put, get, jobs, wait, kill, status, attach, retire, stop)"}});
    }
  };

  while (stop_client < 0 && !check_end()) {
    const bool awake = !vm.suspended();
    std::vector<pollfd> fds = {{listen_fd, POLLIN, 0}};
    if (awake) fds.push_back({vm.agent().fd(), POLLIN, 0});
    if (awake && vmm_fd >= 0) fds.push_back({vmm_fd, POLLIN, 0});
    const size_t fixed = fds.size();
    std::vector<uint64_t> polled;  // the clients of fds[fixed...], in order
    for (const auto& [serial, c] : clients) {
      // An answered client is only written to: what it sends (a half-close) is not a hang-up
      // while its reply is still on its way.
      const short in = c->answered ? 0 : POLLIN | POLLRDHUP;
      fds.push_back({c->fd, static_cast<short>(in | (c->Queued() > 0 ? POLLOUT : 0)), 0});
      polled.push_back(serial);
    }
    int wait_ms = 1000;
    if (r.expires_unix > 0) {
      wait_ms = static_cast<int>(std::clamp<int64_t>((r.expires_unix - NowUnix()) * 1000, 0, 1000));
    }
    // Idle means no client and no reply owed by the agent (a hung-up client's cancelled exec).
    if (!clients.empty() || (awake && !vm.agent().Idle())) {
      last_active = std::chrono::steady_clock::now();
    }
    if (awake && r.state == "running" && r.standby_after_ms > 0) {
      const auto idle =
          std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - last_active)
              .count();
      if (idle >= r.standby_after_ms) {
        if (Status s = vm.Suspend(log); !s.ok()) {
          why_end = "suspending failed: " + s.message();
          break;
        }
        if (vmm_fd >= 0) ::close(vmm_fd);
        vmm_fd = -1;
        continue;
      }
      wait_ms = static_cast<int>(std::min<int64_t>(wait_ms, r.standby_after_ms - idle));
    }
    if (awake && vm.agent().HasBuffered()) wait_ms = 0;
    if (::poll(fds.data(), fds.size(), wait_ms) < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      for (int fd;
           (fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0;) {
        auto c = std::make_unique<Client>(fd);
        c->serial = next_serial++;
        // A client that connects and says nothing is let go after 10 s.
        c->request_deadline = std::chrono::steady_clock::now() + milliseconds(10000);
        clients[c->serial] = std::move(c);
      }
    }
    for (size_t i = fixed; i < fds.size(); ++i) {
      auto it = clients.find(polled[i - fixed]);
      if (it == clients.end() || fds[i].revents == 0) continue;
      Client& c = *it->second;
      if (fds[i].revents & POLLOUT) c.Flush();
      if (c.answered) {
        if (fds[i].revents & (POLLHUP | POLLERR)) c.gone = true;
        continue;
      }
      if (!(fds[i].revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR))) continue;
      if (!c.request) {
        auto got = c.channel.ReadSome();
        if (auto request = c.channel.Next()) {
          c.request = std::move(request);
          serve(c);
        } else if (got == LineChannel::ReadResult::kEof || got == LineChannel::ReadResult::kError) {
          c.gone = true;
        }
      } else if (!c.gone) {
        // Anything from a client after its request is a hang-up (or more than its one request):
        // it cancels its command.
        c.gone = true;
      }
    }
    if (stop_client >= 0) break;
    // Whatever the agent said: up to a bounded number of replies a round, so clients are served
    // in turn.
    for (int i = 0; i < 64 && !vm.suspended() && vm.agent().health().ok(); ++i) {
      if (!vm.agent().Dispatch(0).ok()) break;
      pollfd p{vm.agent().fd(), POLLIN, 0};
      if (!vm.agent().HasBuffered() && ::poll(&p, 1, 0) <= 0) break;
    }
    const auto now = std::chrono::steady_clock::now();
    for (auto it = clients.begin(); it != clients.end();) {
      Client& c = *it->second;
      if (!c.request && now >= c.request_deadline) c.gone = true;
      if (c.answered && (c.Queued() == 0 || now >= c.flush_deadline)) c.gone = true;
      if (!c.gone) {
        ++it;
        continue;
      }
      if (c.agent_id >= 0 && !vm.suspended() && vm.agent().InFlight(c.agent_id)) {
        (void)vm.agent().Cancel(c.agent_id);
        c.agent_id = -1;
      }
      ::close(c.fd);
      it = clients.erase(it);
    }
  }
  if (why_end.empty()) why_end = "the monitor's loop failed";
  // Every command still running is cut short; its client hears why (a guest that broke the
  // protocol: just that).
  const bool guest_broke = !vm.suspended() && !vm.agent().health().ok();
  for (auto& [serial, c] : clients) {
    if (c->fd == stop_client) continue;
    if (c->request && c->agent_id >= 0) {
      finish(*c, {{"error", guest_broke ? why_end
                                        : "the command was ended because the VM is going away (" +
                                              why_end + ")"},
                  {"exit_code", kMonitorError}});
    }
  }
  // What is queued gets a short while to reach its clients (the tail of a command's output,
  // the reason it was cut short); a client that does not read it by then loses it.
  const auto drain_deadline = std::chrono::steady_clock::now() + milliseconds(2000);
  while (std::chrono::steady_clock::now() < drain_deadline) {
    std::vector<pollfd> pending;
    std::vector<Client*> owners;
    for (auto& [serial, c] : clients) {
      if (c->fd == stop_client || c->gone || c->Queued() == 0) continue;
      pending.push_back({c->fd, POLLOUT, 0});
      owners.push_back(c.get());
    }
    if (pending.empty()) break;
    if (::poll(pending.data(), pending.size(), 100) < 0 && errno != EINTR) break;
    for (size_t i = 0; i < pending.size(); ++i) {
      if (pending[i].revents & (POLLHUP | POLLERR)) owners[i]->gone = true;
      if (pending[i].revents & POLLOUT) owners[i]->Flush();
    }
  }
  for (auto& [serial, c] : clients) {
    if (c->fd != stop_client) ::close(c->fd);
  }
  log << "monitor: " << r.id << ": " << why_end << "; tearing down\n" << std::flush;
  ::close(listen_fd);
  if (vmm_fd >= 0) ::close(vmm_fd);
  vm.Destroy(/*graceful=*/!vm.suspended() && !vm_gone());
  log << "monitor: " << r.id << " torn down in " << vm.timings().teardown_ms << " ms\n"
      << std::flush;
  if (stop_client >= 0) {
    LineChannel channel(stop_client);
    (void)channel.Send({{"ok", true}, {"teardown_ms", vm.timings().teardown_ms}});
    ::close(stop_client);
  }
  return 0;
}

Result<json> SpawnMonitor(const VmOptions& vm) {
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return Status::Error("pipe failed");
  pid_t pid = fork();
  if (pid < 0) {
    ::close(report[0]);
    ::close(report[1]);
    return Status::Error("fork failed");
  }
  if (pid == 0) {
    // The monitor: a session of its own, so that the caller's terminal and process group
    // signals do not reach it.
    ::close(report[0]);
    // Nothing of the caller's but the report pipe: a lock (a pool's fill) or a socket the
    // caller holds must not live on in the monitor.
    if (report[1] > 3) ::close_range(3, static_cast<unsigned>(report[1]) - 1, 0);
    ::close_range(static_cast<unsigned>(report[1]) + 1, ~0u, 0);
    ::setsid();
    InstallInterruptHandlers();
    // Let go of the caller's terminal or pipes at once: whoever ran `start` must not wait on
    // the monitor. Its log goes to the VM's directory once that exists.
    std::error_code ec;
    std::filesystem::create_directories(vm.state_dir, ec);
    const std::string early_log = vm.state_dir + "/monitor-" + std::to_string(getpid()) + ".log";
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    int log = ::open(early_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    if (null_fd > STDERR_FILENO) ::close(null_fd);
    if (log > STDERR_FILENO) ::close(log);
    std::ostringstream boot_log;
    auto session = VmSession::Create(vm, boot_log);
    std::cerr << boot_log.str() << std::flush;
    json hello = {{"log", boot_log.str()}};
    if (!session.ok()) {
      hello["error"] = session.status().message();
    } else {
      const auto& r = (*session)->record();
      const auto& t = (*session)->timings();
      hello.update({{"id", r.id},
                    {"state", r.state},
                    {"guest", r.guest},
                    {"session", r.session_id},
                    {"monitor_pid", getpid()},
                    {"expires_unix", r.expires_unix},
                    {"start", t.start},
                    {"timings_ms",
                     {{"launcher_setup", t.setup_ms},
                      {"boot", t.boot_ms},
                      {"guest_kernel", t.guest_kernel_ms},
                      {"create_to_ready", t.ready_ms}}}});
    }
    // The error may quote the guest's console: any bytes.
    std::string line = hello.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    (void)!::write(report[1], line.data(), line.size());
    ::close(report[1]);
    if (!session.ok()) {
      std::filesystem::remove(early_log, ec);
      _exit(1);
    }
    std::filesystem::rename(early_log, (*session)->record().dir + "/monitor.log", ec);
    int code = RunMonitor(**session, std::cerr);
    session.value().reset();
    _exit(code);
  }
  ::close(report[1]);
  std::string line;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(report[0], buf, sizeof(buf))) > 0) line.append(buf, static_cast<size_t>(n));
  ::close(report[0]);
  auto hello = json::parse(line, nullptr, false);
  if (hello.is_discarded() || !hello.is_object()) {
    return Status::Error("the monitor died while starting");
  }
  std::cerr << hello.value("log", "");
  hello.erase("log");
  if (hello.contains("error")) return Status::Error(hello["error"].get<std::string>());
  return hello;
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
