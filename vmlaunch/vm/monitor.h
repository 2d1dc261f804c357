// The monitor: the small process that owns a persistent or pooled VM (`vmlaunch start`,
// `vmlaunch pool fill`). It serves <dir>/monitor.sock (0600): each connection carries one
// request — exec (detached or not), put, get, jobs, wait, kill (relayed to the guest agent,
// replies streamed back), status, attach (a pooled VM given to a session, once), retire (a
// pooled VM stopped only if not taken), or stop — and serves many connections at once: execs in
// one VM run side by side. It tears the VM down when the TTL expires, when the VMM exits, on
// SIGTERM, on stop, or on retire; a client that hangs up mid-exec
// cancels that exec. A guest that breaks the agent protocol or stops answering
// (AgentClient::health) ends the VM too: the clients hear why, the monitor tears down.
// Single-threaded poll loop.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

#include "gateway/base/status.h"
#include "vmlaunch/vm/guest_message.h"
#include "vmlaunch/vm/vm_session.h"

namespace airlock::vmlaunch {

// Serves until the VM is gone; returns the process exit status.
int RunMonitor(VmSession& vm, std::ostream& log);

// Forks a monitor (a session of its own, its log in the VM's directory) that creates the VM
// with `options` and serves it; returns what it reported once the VM was up: id, state, guest,
// session, monitor_pid, expires_unix, start, timings_ms. The caller does not wait for it after.
Result<nlohmann::json> SpawnMonitor(const VmOptions& options);

// The client side: sends `request` to the monitor of the VM in `vm_dir` and hands every reply
// to `on_reply` until the final one, which it returns. Replies carry what the guest sent, so
// each is checked (GuestMessage); an error from `on_reply` ends the request (hanging up cancels
// it).
Result<GuestMessage> MonitorRequest(const std::string& vm_dir, const nlohmann::json& request,
                                    const std::function<Status(const GuestMessage&)>& on_reply);

}  // namespace airlock::vmlaunch
