// Pausing a listener that cannot accept (see accept_pause.h).
#include "gateway/server/accept_pause.h"

#include <cerrno>
#include <cstring>

#include "gateway/oplog/operator_log.h"

namespace airlock::server {

AcceptPause::AcceptPause(evconnlistener* listener, evconnlistener_cb accept, void* arg,
                         std::string name)
    : listener_(listener),
      accept_(accept),
      arg_(arg),
      name_(std::move(name)),
      resume_(evtimer_new(evconnlistener_get_base(listener), OnResume, this)) {
  evconnlistener_set_cb(listener_, OnAccept, this);
  evconnlistener_set_error_cb(listener_, OnError);
}

void AcceptPause::OnAccept(evconnlistener* l, evutil_socket_t fd, sockaddr* sa, int len,
                           void* arg) {
  auto* self = static_cast<AcceptPause*>(arg);
  if (self->pauses_ > 0) {
    oplog::Log(oplog::Level::kInfo, "gateway.accept_resumed",
               {oplog::F("listener", self->name_), oplog::F("pauses", self->pauses_)});
    self->pauses_ = 0;
  }
  self->accept_(l, fd, sa, len, self->arg_);
}

void AcceptPause::OnError(evconnlistener*, void* arg) {
  const int error = errno;  // accept(2)'s: nothing ran in between
  auto* self = static_cast<AcceptPause*>(arg);
  const bool resources = error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
  if (!resources) {
    oplog::Log(oplog::Level::kWarn, "gateway.accept_failed",
               {oplog::F("listener", self->name_), oplog::F("errno", std::strerror(error))});
    return;
  }
  if (self->pauses_ == 0) {
    oplog::Log(
        oplog::Level::kError, "gateway.accept_paused",
        {oplog::F("listener", self->name_), oplog::F("errno", std::strerror(error)),
         oplog::F("pause_ms", static_cast<uint64_t>(kPause.count())),
         oplog::F("hint", error == EMFILE ? "the open-file limit is reached: raise LimitNOFILE"
                                          : "the system is out of descriptors or memory")});
  }
  self->Pause();
}

void AcceptPause::Pause() {
  ++pauses_;
  evconnlistener_disable(listener_);
  timeval pause = ToTimeval(kPause);
  if (!resume_ || evtimer_add(resume_.get(), &pause) != 0) {
    // No timer: never leave the listener off (the busy loop is the lesser harm).
    evconnlistener_enable(listener_);
  }
}

void AcceptPause::OnResume(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<AcceptPause*>(arg);
  if (evconnlistener_enable(self->listener_) != 0) {
    oplog::Log(oplog::Level::kError, "gateway.accept_failed",
               {oplog::F("listener", self->name_), oplog::F("errno", std::strerror(errno))});
    self->Pause();  // tried again after another pause
  }
}

}  // namespace airlock::server
