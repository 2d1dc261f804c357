// SimpleHttpServer: one-request-per-connection HTTP/1.1 for the control socket and the metrics
// endpoint (not for proxied traffic). Requests are parsed with the strict MessageParser; bodies
// up to 1 MiB. Runs on the event_base it is given; callbacks on that thread.
#pragma once

#include <sys/socket.h>

#include <functional>
#include <memory>
#include <string>

#include "gateway/base/status.h"
#include "gateway/server/accept_pause.h"
#include "gateway/server/event_loop.h"

namespace airlock::server {

struct SimpleResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

using SimpleHandler = std::function<SimpleResponse(
    const std::string& method, const std::string& path, const std::string& body)>;

class SimpleHttpServer {
 public:
  SimpleHttpServer(event_base* base, SimpleHandler handler);
  // A unix socket (created with mode 0600, replacing a stale one) or a TCP address.
  Status ListenUnix(const std::string& path);
  Status ListenTcp(const sockaddr* addr, socklen_t len);

 private:
  static void OnAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg);

  event_base* base_;
  SimpleHandler handler_;
  ListenerPtr listener_;
  std::unique_ptr<AcceptPause> pause_;  // (freed before the listener)
};

}  // namespace airlock::server
