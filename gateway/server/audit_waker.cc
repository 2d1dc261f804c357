// AuditWaker: deferred wake-ups of the audit writer, on a worker's thread.
#include "gateway/server/audit_waker.h"

namespace airlock::server {

AuditWaker::AuditWaker(Worker& worker, audit::AuditLog& log)
    : worker_(worker), log_(log), timer_(evtimer_new(worker.base(), OnTimer, this)) {}

void AuditWaker::Register() {
  log_.DeferWakeupsOnThisThread([this](bool urgent) { Schedule(urgent); });
}

void AuditWaker::Schedule(bool urgent) {
  if (urgent) {
    if (posted_) return;
    posted_ = true;
    worker_.Post([this] {
      posted_ = false;
      log_.WakeWriter();
    });
    return;
  }
  if (posted_ || evtimer_pending(timer_.get(), nullptr)) return;
  const timeval delay{0, static_cast<suseconds_t>(kAuditWakeDelay.count())};
  evtimer_add(timer_.get(), &delay);
}

void AuditWaker::OnTimer(evutil_socket_t, short, void* arg) {
  static_cast<AuditWaker*>(arg)->log_.WakeWriter();
}

}  // namespace airlock::server
