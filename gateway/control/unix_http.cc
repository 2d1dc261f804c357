// UnixHttpRequest and ParseHttpAnswer (see unix_http.h).
#include "gateway/control/unix_http.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <thread>

#include "gateway/http/http_head.h"

namespace airlock::control {

namespace {

using Clock = std::chrono::steady_clock;

// No answer of either API comes near this: one that does is not read to its end.
constexpr size_t kMaxBody = 16 << 20;

// The value of the first header named `name` (any case), trimmed; nullopt if there is none.
std::optional<std::string_view> Header(std::string_view head, std::string_view name) {
  for (size_t pos = head.find("\r\n"); pos != std::string_view::npos;) {
    pos += 2;
    const size_t next = head.find("\r\n", pos);
    const std::string_view line = head.substr(pos, next - pos);
    pos = next;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || !http::EqualsIgnoreCase(line.substr(0, colon), name)) {
      continue;
    }
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    return value;
  }
  return std::nullopt;
}

// The headers' Content-Length, or -1 when there is none; -2 when it is not a number.
long long ContentLength(std::string_view head) {
  const auto value = Header(head, "content-length");
  if (!value) return -1;
  long long n = 0;
  auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
  if (ec != std::errc() || end != value->data() + value->size() || n < 0) return -2;
  return n;
}

}  // namespace

Result<std::optional<HttpAnswer>> ParseHttpAnswer(std::string_view raw, bool closed) {
  const size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string_view::npos) {
    if (closed) return Status::Error("the answer ended inside its headers");
    if (raw.size() > 64 * 1024) return Status::Error("the answer's headers are too long");
    return std::optional<HttpAnswer>();
  }
  const std::string_view head = raw.substr(0, head_end);
  HttpAnswer answer;
  const std::string_view status_line = head.substr(0, head.find("\r\n"));
  if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12 || status_line[8] != ' ') {
    return Status::Error("the answer does not start with an HTTP/1.x status line");
  }
  auto [end, ec] = std::from_chars(status_line.data() + 9, status_line.data() + 12, answer.status);
  if (ec != std::errc() || end != status_line.data() + 12 || answer.status < 100) {
    return Status::Error("the answer's status is not a number");
  }
  if (answer.status < 200)
    return Status::Error("an interim (1xx) answer, which no caller asked for");
  if (Header(head, "transfer-encoding")) {
    return Status::Error("a Transfer-Encoding answer (only Content-Length bodies are read)");
  }
  const long long length = ContentLength(head);
  if (length == -2) return Status::Error("the answer's Content-Length is not a number");
  const std::string_view body = raw.substr(head_end + 4);
  if (length > static_cast<long long>(kMaxBody) || body.size() > kMaxBody) {
    return Status::Error("the answer's body is over 16 MiB");
  }
  const bool bodiless = answer.status == 204 || answer.status == 304;
  if (bodiless || length >= 0) {
    const size_t want = bodiless ? 0 : static_cast<size_t>(length);
    if (body.size() < want) {
      if (closed) return Status::Error("the answer ended before its Content-Length");
      return std::optional<HttpAnswer>();
    }
    answer.body = std::string(body.substr(0, want));
    return std::optional<HttpAnswer>(std::move(answer));
  }
  if (!closed) return std::optional<HttpAnswer>();
  answer.body = std::string(body);
  return std::optional<HttpAnswer>(std::move(answer));
}

Result<HttpAnswer> UnixHttpRequest(const std::string& socket_path, const std::string& method,
                                   const std::string& target, const std::string& body,
                                   std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(sun.sun_path)) {
    return Status::Error("the socket path " + socket_path + " is too long");
  }
  std::memcpy(sun.sun_path, socket_path.c_str(), socket_path.size() + 1);
  // Non-blocking throughout: a server whose backlog is full (EAGAIN at connect) or that stops
  // reading or answering costs at most the deadline.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Status::Error(std::string("socket: ") + std::strerror(errno));
  while (::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) {
    const int error = errno;
    if ((error == EAGAIN || error == EINTR) && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    ::close(fd);
    return Status::Error(
        "cannot connect to " + socket_path + ": " + std::strerror(error),
        error == ENOENT || error == ECONNREFUSED ? StatusCode::kNotFound : StatusCode::kError);
  }
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n";
  if (!body.empty()) request += "Content-Type: application/json\r\n";
  request += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  request += body;
  // Waits until `fd` is ready for `events` or the deadline passes.
  auto wait = [&](short events) {
    while (true) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd, events, 0};
      const int n = ::poll(&p, 1, static_cast<int>(left.count()));
      if (n > 0) return true;
      if (n == 0 || errno != EINTR) return false;  // (a signal: wait on)
    }
  };
  auto fail = [fd](std::string why) {
    ::close(fd);
    return Status::Error(std::move(why));
  };
  for (size_t sent = 0; sent < request.size();) {
    if (!wait(POLLOUT)) return fail("timed out sending to " + socket_path);
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return fail("cannot write to " + socket_path + ": " + std::strerror(errno));
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[16384];
  while (true) {
    if (!wait(POLLIN)) {
      return fail("no answer from " + socket_path + " within " + std::to_string(timeout.count()) +
                  " ms");
    }
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    // A reset is not an end: an answer without a Content-Length would pass for whole.
    if (n < 0) return fail("reading from " + socket_path + ": " + std::strerror(errno));
    if (n > 0) raw.append(buf, static_cast<size_t>(n));
    auto answer = ParseHttpAnswer(raw, n == 0);
    if (!answer.ok()) {
      return fail("unreadable answer from " + socket_path + ": " + answer.status().message());
    }
    if (answer->has_value()) {
      ::close(fd);
      return std::move(**answer);
    }
  }
}

}  // namespace airlock::control
