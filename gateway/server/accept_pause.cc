// Pausing a listener that cannot accept (see accept_pause.h).
#include "gateway/server/accept_pause.h"

#include <cerrno>
#include <cstring>

#include "gateway/oplog/operator_log.h"

namespace airlock::server {

AcceptPause::AcceptPause(event_base* base, evconnlistener* listener, std::string name)
    : listener_(listener), name_(std::move(name)), resume_(evtimer_new(base, OnResume, this)) {}

void AcceptPause::Failed(int error) {
  const bool resources = error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
  if (!resources) {
    oplog::Log(oplog::Level::kWarn, "gateway.accept_failed",
               {oplog::F("listener", name_), oplog::F("errno", std::strerror(error))});
    return;
  }
  if (paused_ || !resume_) return;
  paused_ = true;
  evconnlistener_disable(listener_);
  timeval pause = ToTimeval(kPause);
  evtimer_add(resume_.get(), &pause);
  oplog::Log(oplog::Level::kError, "gateway.accept_paused",
             {oplog::F("listener", name_), oplog::F("errno", std::strerror(error)),
              oplog::F("pause_ms", static_cast<uint64_t>(kPause.count())),
              oplog::F("hint", error == EMFILE ? "the open-file limit is reached: raise LimitNOFILE"
                                               : "the system is out of descriptors or memory")});
}

void AcceptPause::OnResume(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<AcceptPause*>(arg);
  self->paused_ = false;
  evconnlistener_enable(self->listener_);
}

}  // namespace airlock::server
