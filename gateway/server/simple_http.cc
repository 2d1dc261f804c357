// The small HTTP server behind the control socket and /metrics.
#include "gateway/server/simple_http.h"

#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "gateway/http/denial.h"
#include "gateway/http/message_parser.h"

namespace airlock::server {
namespace {

constexpr size_t kMaxBody = 1 << 20;

struct Exchange {
  BufferEventPtr bev;
  SimpleHandler* handler;
  http::MessageParser parser{http::MessageParser::Kind::kRequest};
  bool head_done = false;
  std::string body;
  bool responded = false;
};

void Respond(Exchange* x, const SimpleResponse& r) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " +
                    std::string(http::StatusText(r.status)) + "\r\n";
  if (!r.body.empty()) out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\nConnection: close\r\n\r\n";
  out += r.body;
  bufferevent_write(x->bev.get(), out.data(), out.size());
  bufferevent_disable(x->bev.get(), EV_READ);
  x->responded = true;
}

void OnRead(bufferevent* bev, void* arg) {
  auto* x = static_cast<Exchange*>(arg);
  if (x->responded) return;
  evbuffer* in = bufferevent_get_input(bev);
  if (!x->head_done) {
    size_t len = evbuffer_get_length(in);
    auto* data = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
    auto r = x->parser.ParseHead(std::string_view(data, len));
    if (r == http::MessageParser::HeadResult::kNeedMore) return;
    if (r == http::MessageParser::HeadResult::kError) {
      Respond(x, {x->parser.error().status, "application/json",
                  "{\"error\":\"" + x->parser.error().reason + "\"}\n"});
      return;
    }
    evbuffer_drain(in, x->parser.head_size());
    x->head_done = true;
    if (x->parser.head().content_length > kMaxBody) {
      Respond(x, {413, "application/json", "{\"error\":\"body too large\"}\n"});
      return;
    }
  }
  while (!x->parser.complete() && evbuffer_get_length(in) > 0) {
    size_t len = evbuffer_get_length(in);
    auto* data = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
    size_t used = x->parser.FeedBody(std::string_view(data, len),
                                     [&](std::string_view d) { x->body.append(d); });
    if (used == http::MessageParser::npos || x->body.size() > kMaxBody) {
      Respond(x, {400, "application/json", "{\"error\":\"bad body\"}\n"});
      return;
    }
    evbuffer_drain(in, used);
  }
  if (x->parser.complete()) {
    const auto& h = x->parser.head();
    std::string path = h.target.substr(0, h.target.find('?'));
    Respond(x, (*x->handler)(h.method, path, x->body));
  }
}

void OnWrite(bufferevent*, void* arg) {
  auto* x = static_cast<Exchange*>(arg);
  if (x->responded) delete x;
}

void OnEvent(bufferevent*, short, void* arg) { delete static_cast<Exchange*>(arg); }

}  // namespace

SimpleHttpServer::SimpleHttpServer(event_base* base, SimpleHandler handler)
    : base_(base), handler_(std::move(handler)) {}

void SimpleHttpServer::OnAccept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* arg) {
  auto* self = static_cast<SimpleHttpServer*>(arg);
  auto* x = new Exchange;
  x->handler = &self->handler_;
  x->bev.reset(bufferevent_socket_new(self->base_, fd, BEV_OPT_CLOSE_ON_FREE));
  bufferevent_setcb(x->bev.get(), OnRead, OnWrite, OnEvent, x);
  timeval t{10, 0};
  bufferevent_set_timeouts(x->bev.get(), &t, &t);
  bufferevent_enable(x->bev.get(), EV_READ);
}

Status SimpleHttpServer::ListenUnix(const std::string& path) {
  sockaddr_un sun{};
  if (path.size() >= sizeof(sun.sun_path)) return Status::Error("socket path too long: " + path);
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  ::unlink(path.c_str());
  mode_t old = umask(0077);  // the socket is created 0600
  listener_.reset(evconnlistener_new_bind(base_, OnAccept, this,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 64,
                                          reinterpret_cast<sockaddr*>(&sun), sizeof(sun)));
  umask(old);
  if (!listener_) return Status::Error("cannot listen on " + path + ": " + std::strerror(errno));
  pause_ = std::make_unique<AcceptPause>(listener_.get(), OnAccept, this, "control");
  chmod(path.c_str(), 0600);
  return Status::Ok();
}

Status SimpleHttpServer::ListenTcp(const sockaddr* addr, socklen_t len) {
  listener_.reset(evconnlistener_new_bind(
      base_, OnAccept, this, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 64,
      addr, static_cast<int>(len)));
  if (!listener_) return Status::Error(std::string("cannot listen: ") + std::strerror(errno));
  pause_ = std::make_unique<AcceptPause>(listener_.get(), OnAccept, this, "http");
  return Status::Ok();
}

}  // namespace airlock::server
