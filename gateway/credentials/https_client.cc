// The broker's HTTPS client (see https_client.h).
#include "gateway/credentials/https_client.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gateway/http/message_parser.h"
#include "gateway/net/ip_address.h"
#include "gateway/tls/openssl_ptr.h"

namespace airlock::credentials {
namespace {

constexpr size_t kMaxResponse = 1 << 20;
using Clock = std::chrono::steady_clock;

struct Url {
  std::string host;  // without brackets
  std::string port = "443";
  std::string path;
};

Result<Url> ParseUrl(const std::string& url) {
  if (url.rfind("https://", 0) != 0) return Status::Error("not an https:// URL");
  std::string rest = url.substr(8);
  size_t slash = rest.find('/');
  Url u;
  std::string authority = rest.substr(0, slash);
  u.path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos) return Status::Error("bad IPv6 literal in URL");
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':') {
      u.port = authority.substr(close + 2);
    }
  } else {
    size_t colon = authority.find(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) u.port = authority.substr(colon + 1);
  }
  if (u.host.empty() || u.port.empty()) return Status::Error("URL has no host");
  return u;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

int Remaining(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// A connected socket to host:port, or an error.
Result<int> Connect(const Url& u, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(u.host.c_str(), u.port.c_str(), &hints, &res); rc != 0) {
    return Status::Error("cannot resolve " + u.host + ": " + gai_strerror(rc));
  }
  std::string last = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = poll(&p, 1, Remaining(deadline)) == 1 ? 0 : -1;
      int err = 0;
      socklen_t len = sizeof(err);
      if (rc == 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)) {
        errno = err;
        rc = -1;
      } else if (rc != 0) {
        errno = ETIMEDOUT;
      }
    }
    if (rc == 0) {
      freeaddrinfo(res);
      return fd;
    }
    last = std::strerror(errno);
    close(fd);
  }
  freeaddrinfo(res);
  return Status::Error("cannot connect to " + u.host + ":" + u.port + ": " + last);
}

// Waits until `fd` is ready for what OpenSSL wants after `rc`; false on timeout or failure.
bool WaitFor(SSL* ssl, int rc, int fd, Clock::time_point deadline) {
  int err = SSL_get_error(ssl, rc);
  short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
  if (events == 0) return false;
  pollfd p{fd, events, 0};
  return poll(&p, 1, Remaining(deadline)) == 1;
}

}  // namespace

Result<HttpsResponse> HttpsCall(const HttpsRequest& request) {
  auto url = ParseUrl(request.url);
  if (!url.ok()) return Status::Error(request.url + ": " + url.status().message());
  const Url& u = url.value();
  const std::string where = "https://" + u.host + ":" + u.port;
  Clock::time_point deadline = Clock::now() + request.timeout;

  auto fd_or = Connect(u, deadline);
  if (!fd_or.ok()) return fd_or.status();
  Fd fd(fd_or.value());

  tls::SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return Status::Error(where + ": cannot create a TLS context");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  int loaded = request.ca_file.empty()
                   ? SSL_CTX_set_default_verify_paths(ctx.get())
                   : SSL_CTX_load_verify_locations(ctx.get(), request.ca_file.c_str(), nullptr);
  if (loaded != 1) {
    return Status::Error(where + ": cannot load the trust store " + request.ca_file);
  }
  tls::SslPtr ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd.get());
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
  if (net::IpAddress::Parse(u.host)) {
    X509_VERIFY_PARAM_set1_ip_asc(param, u.host.c_str());
  } else {
    std::string sni = u.host;  // SSL_set_tlsext_host_name is a macro with a C cast
    SSL_ctrl(ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, sni.data());
    X509_VERIFY_PARAM_set1_host(param, u.host.c_str(), 0);
  }
  for (;;) {
    int rc = SSL_connect(ssl.get());
    if (rc == 1) break;
    if (!WaitFor(ssl.get(), rc, fd.get(), deadline)) {
      long verify = SSL_get_verify_result(ssl.get());
      std::string why =
          verify != X509_V_OK ? X509_verify_cert_error_string(verify) : tls::TakeOpenSslErrors();
      return Status::Error(where + ": TLS handshake failed: " + (why.empty() ? "timeout" : why));
    }
  }

  std::string out =
      request.method + " " + u.path + " HTTP/1.1\r\nHost: " +
      (u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host) +
      (u.port == "443" ? "" : ":" + u.port) +
      "\r\nConnection: close\r\nContent-Length: " + std::to_string(request.body.size()) + "\r\n";
  for (const auto& [name, value] : request.headers) out += name + ": " + value + "\r\n";
  out += "\r\n" + request.body;
  size_t sent = 0;
  while (sent < out.size()) {
    int rc = SSL_write(ssl.get(), out.data() + sent, static_cast<int>(out.size() - sent));
    if (rc > 0) {
      sent += rc;
    } else if (!WaitFor(ssl.get(), rc, fd.get(), deadline)) {
      return Status::Error(where + ": sending the request failed");
    }
  }

  // Read until the response is complete (servers may keep the connection open regardless of
  // Connection: close) or the server closes.
  http::MessageParser parser(http::MessageParser::Kind::kResponse);
  HttpsResponse response;
  std::string head;
  bool have_head = false;
  auto sink = [&](std::string_view piece) { response.body.append(piece); };
  auto feed = [&](std::string_view data) {
    if (!have_head) {
      head.append(data);
      auto r = parser.ParseHead(head);
      if (r == http::MessageParser::HeadResult::kError) return false;
      if (r == http::MessageParser::HeadResult::kNeedMore) return head.size() <= kMaxResponse;
      have_head = true;
      response.status = parser.head().status;
      data = std::string_view(head).substr(parser.head_size());
    }
    if (parser.complete()) return true;
    size_t used = parser.FeedBody(data, sink);
    return used != http::MessageParser::npos && response.body.size() <= kMaxResponse;
  };
  char buf[16384];
  bool closed = false;
  while (!(have_head && parser.complete())) {
    int rc = SSL_read(ssl.get(), buf, sizeof(buf));
    if (rc > 0) {
      if (!feed(std::string_view(buf, rc))) {
        return Status::Error(where + ": not a valid HTTP response (or over 1 MiB)");
      }
      continue;
    }
    int err = SSL_get_error(ssl.get(), rc);
    if (err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL) {
      closed = true;
      break;
    }
    if (!WaitFor(ssl.get(), rc, fd.get(), deadline)) {
      return Status::Error(where + ": no complete response in time");
    }
  }
  if (closed && (!have_head || (!parser.complete() && !parser.FinishOnClose()))) {
    return Status::Error(where + ": the response was cut short");
  }
  return response;
}

}  // namespace airlock::credentials
