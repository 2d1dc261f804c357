// AcceptPause: a listener's answer to accept(2) failing for want of resources (EMFILE, ENFILE,
// ENOBUFS, ENOMEM). The connection stays in the backlog and the listening socket stays
// readable, so libevent would call accept again at once, forever: a busy loop at full CPU that
// starves the connections already open (the limit is the whole process's, so one listener's
// clients can make another's spin). Instead the listener is disabled for a moment and tried
// again; the operator is told once per episode (`gateway.accept_paused`) and when accepting
// works again (`gateway.accept_resumed`, with the number of pauses). It takes the listener's
// callbacks over: made right after the listener, it passes each accepted socket on to
// `accept`. Lives on the thread that runs the listener's event base.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "gateway/server/event_loop.h"

namespace airlock::server {

class AcceptPause {
 public:
  static constexpr std::chrono::milliseconds kPause{100};

  // `name` says which listener in the log ("proxy", "transparent", "dns", "control"...).
  AcceptPause(evconnlistener* listener, evconnlistener_cb accept, void* arg, std::string name);
  AcceptPause(const AcceptPause&) = delete;
  AcceptPause& operator=(const AcceptPause&) = delete;

 private:
  static void OnAccept(evconnlistener* l, evutil_socket_t fd, sockaddr* sa, int len, void* arg);
  static void OnError(evconnlistener* l, void* arg);
  static void OnResume(evutil_socket_t, short, void* arg);
  void Pause();

  evconnlistener* const listener_;
  const evconnlistener_cb accept_;
  void* const arg_;
  const std::string name_;
  EventPtr resume_;
  uint64_t pauses_ = 0;  // in the current episode (since the last accept that worked)
};

}  // namespace airlock::server
