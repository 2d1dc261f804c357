// AcceptPause: a listener's answer to accept(2) failing for want of resources (EMFILE, ENFILE,
// ENOBUFS, ENOMEM). The connection stays in the backlog and the listening socket stays
// readable, so libevent would call accept again at once, forever: a busy loop at full CPU that
// starves the connections already open. Instead the listener is disabled for a moment and the
// operator told once per pause (`gateway.accept_paused`, with errno). Lives on the thread that
// runs the listener's event base.
#pragma once

#include <chrono>
#include <string>

#include "gateway/server/event_loop.h"

namespace airlock::server {

class AcceptPause {
 public:
  static constexpr std::chrono::milliseconds kPause{100};

  // `name` says which listener in the log ("proxy", "transparent").
  AcceptPause(event_base* base, evconnlistener* listener, std::string name);
  AcceptPause(const AcceptPause&) = delete;
  AcceptPause& operator=(const AcceptPause&) = delete;

  // accept(2) failed with `error` (the listener's error callback): pauses the listener for
  // kPause when the error is a want of resources; logs any other.
  void Failed(int error);
  bool paused() const { return paused_; }

 private:
  static void OnResume(evutil_socket_t, short, void* arg);

  evconnlistener* const listener_;
  const std::string name_;
  EventPtr resume_;
  bool paused_ = false;
};

}  // namespace airlock::server
