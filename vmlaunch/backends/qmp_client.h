// QmpClient: QEMU's machine protocol over the VM's QMP socket (-qmp unix:...,server=on), for
// what the command line cannot do: start an incoming migration (restoring a snapshot or a VM on
// standby) and save a running VM's state to a file. QEMU is the launcher's own child, but its
// answers are still checked: a missing field or an error reply is an error, never an abort.
// Blocking, every wait has a deadline; one owner thread.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "gateway/base/status.h"
#include "vmlaunch/guest/line_channel.h"

namespace airlock::vmlaunch {

class QmpClient {
 public:
  // Connects (retrying until QEMU has made the socket, up to `timeout`) and negotiates.
  static Result<std::unique_ptr<QmpClient>> Connect(const std::string& socket_path,
                                                    std::chrono::milliseconds timeout);
  ~QmpClient();
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // One command; its "return" value, or QEMU's error description. Events are skipped.
  Result<nlohmann::json> Execute(const std::string& command,
                                 nlohmann::json arguments = nlohmann::json::object());
  // Turns QEMU's `x-ignore-shared` migration capability on or off: with it, guest memory that
  // lives in a shared file is left out of the stream (the file is the snapshot's memory).
  Status SetIgnoreShared(bool on);
  // Saves the VM's state to `path` (a migration to a file); the VM is paused afterwards.
  Status SaveTo(const std::string& path, std::chrono::milliseconds timeout);
  // Loads the state in `path` into a QEMU started with `-incoming defer`; the guest runs as soon
  // as the load completes.
  Status LoadFrom(const std::string& path);

 private:
  explicit QmpClient(int fd) : channel_(fd) {}
  LineChannel channel_;
};

}  // namespace airlock::vmlaunch
