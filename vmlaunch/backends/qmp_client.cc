// QmpClient: connect with retries, the greeting and capabilities negotiation, commands matched
// to their answers, migration to and from a file through `exec:` (QEMU 7.2 has no `file:` URI).
#include "vmlaunch/backends/qmp_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "vmlaunch/process/command.h"

namespace airlock::vmlaunch {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

Result<std::unique_ptr<QmpClient>> QmpClient::Connect(const std::string& path,
                                                      milliseconds timeout) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.size() >= sizeof(sun.sun_path)) return Status::Error("path too long: " + path);
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  const auto deadline = Clock::now() + timeout;
  while (true) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Status::Error("socket failed");
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) == 0) {
      std::unique_ptr<QmpClient> client(new QmpClient(fd));
      auto greeting = client->channel_.Receive(static_cast<int>(timeout.count()));
      if (!greeting.ok() || !greeting->contains("QMP")) {
        return Status::Error("QEMU's QMP socket did not greet");
      }
      auto caps = client->Execute("qmp_capabilities");
      if (!caps.ok()) return caps.status();
      return client;
    }
    ::close(fd);
    if (Clock::now() >= deadline) {
      return Status::Error("cannot reach QEMU's QMP socket " + path + ": " + std::strerror(errno));
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
}

QmpClient::~QmpClient() { ::close(channel_.fd()); }

Result<json> QmpClient::Execute(const std::string& command, json arguments) {
  json request = {{"execute", command}};
  if (!arguments.empty()) request["arguments"] = std::move(arguments);
  if (Status s = channel_.Send(request); !s.ok()) return s;
  while (true) {
    auto reply = channel_.Receive(30000);
    if (!reply.ok())
      return Status::Error("QEMU did not answer " + command + ": " + reply.status().message());
    if (reply->contains("return")) return (*reply)["return"];
    if (reply->contains("error")) {
      const json& e = (*reply)["error"];
      const std::string desc = e.is_object() && e.contains("desc") && e["desc"].is_string()
                                   ? e["desc"].get<std::string>()
                                   : e.dump();
      return Status::Error("QEMU refused " + command + ": " + desc);
    }
    // An event ({"event": ...}): not an answer.
  }
}

Status QmpClient::SetIgnoreShared(bool on) {
  return Execute("migrate-set-capabilities",
                 {{"capabilities", {{{"capability", "x-ignore-shared"}, {"state", on}}}}})
      .status();
}

Status QmpClient::SaveTo(const std::string& path, milliseconds timeout) {
  auto started = Execute("migrate", {{"uri", "exec:cat > " + ShellQuote(path)}});
  if (!started.ok()) return started.status();
  const auto deadline = Clock::now() + timeout;
  while (true) {
    auto info = Execute("query-migrate");
    if (!info.ok()) return info.status();
    const std::string status = info->is_object() ? info->value("status", "") : "";
    if (status == "completed") return Status::Ok();
    if (status == "failed" || status == "cancelled" || status.empty()) {
      const std::string why = info->is_object() ? info->value("error-desc", status) : status;
      return Status::Error("saving the VM's state failed: " + why);
    }
    if (Clock::now() >= deadline) {
      (void)Execute("migrate_cancel");
      return Status::Error("saving the VM's state did not finish in time");
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
}

Status QmpClient::LoadFrom(const std::string& path) {
  return Execute("migrate-incoming", {{"uri", "exec:cat " + ShellQuote(path)}}).status();
}

}  // namespace airlock::vmlaunch
