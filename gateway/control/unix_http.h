// UnixHttpRequest: one HTTP/1.1 request over a unix stream socket, one connection per request,
// and its answer's status and body. The gateway's control API (control_client.h) and
// Firecracker's API socket (vmlaunch/backends) both speak it. The answer's end is its
// Content-Length, or the connection's close when it has none; every read has a deadline, so a
// server that stops answering is an error, not a hang. Plain functions; no state, no threads.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/base/status.h"

namespace airlock::control {

struct HttpAnswer {
  int status = 0;
  std::string body;
};

// Whether `raw` (what the server has sent so far) holds a whole answer: the status line, the
// headers and, when they give a Content-Length, that many bytes of body. `closed` says the
// server closed the connection (an answer without a Content-Length ends there). Bodies over
// 16 MiB, interim (1xx) answers and Transfer-Encoding are refused (neither API sends them). The parsed
// answer, nullopt while more is needed, or an error for an answer that cannot be read.
Result<std::optional<HttpAnswer>> ParseHttpAnswer(std::string_view raw, bool closed);

// Connects to `socket_path`, sends `method target` with `body` as JSON (when not empty), and
// reads the answer until `timeout` has passed (connecting included). A reset connection is an
// error, never an answer cut short. kNotFound: nothing listens at `socket_path`.
Result<HttpAnswer> UnixHttpRequest(const std::string& socket_path, const std::string& method,
                                   const std::string& target, const std::string& body,
                                   std::chrono::milliseconds timeout);

}  // namespace airlock::control
