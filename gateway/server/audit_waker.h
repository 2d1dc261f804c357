// AuditWaker: when a worker wakes the audit writer. A record whose work waits for it (a
// connection.open, before the dial) wakes the writer once the worker has handled the events in
// hand; any other record wakes it within kAuditWakeDelay, so that under load the writer runs
// about once a millisecond with everything queued since, instead of preempting the worker for
// each turn of its loop (ARCHITECTURE.md 44). Owned by, and used on, one worker's thread.
#pragma once

#include <chrono>

#include "gateway/audit/audit_log.h"
#include "gateway/server/event_loop.h"

namespace airlock::server {

inline constexpr std::chrono::microseconds kAuditWakeDelay{1000};

class AuditWaker {
 public:
  AuditWaker(Worker& worker, audit::AuditLog& log);
  // Registers with the log for the worker's thread; call once, on that thread.
  void Register();

 private:
  void Schedule(bool urgent);
  static void OnTimer(evutil_socket_t, short, void* arg);

  Worker& worker_;
  audit::AuditLog& log_;
  EventPtr timer_;
  bool posted_ = false;  // a wake-up is posted behind the events in hand
};

}  // namespace airlock::server
