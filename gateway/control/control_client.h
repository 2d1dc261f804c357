// ControlClient: the client side of the gateway's control API (HTTP+JSON over its unix socket,
// control_api.h): create, list and delete sessions, fetch the CA certificate sandboxes must
// trust. vmlaunch and airlockctl use it. One request per connection (unix_http.h). Not
// thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <utility>

#include "gateway/base/status.h"

namespace airlock::control {

class ControlClient {
 public:
  explicit ControlClient(std::string socket_path) : socket_path_(std::move(socket_path)) {}

  // Returns the created session's JSON ({id, ...}), with its token and placeholders (shown only
  // in this answer).
  Result<nlohmann::json> CreateSession(const nlohmann::json& spec);
  // GET /v1/sessions: the live sessions, a JSON array of objects.
  Result<nlohmann::json> ListSessions();
  // true: the session was ended; false: the gateway has no session `id`.
  Result<bool> DeleteSession(const std::string& id);
  // GET /v1/ca: the gateway's CA certificate (PEM), or "" if the gateway has no such endpoint
  // (404: a gateway from before TLS inspection). Anything else that is not a PEM certificate in
  // {"certificate": "..."} is an error.
  Result<std::string> GetCaCertificate();

 private:
  // Sends one request; returns the status code and the body.
  Result<std::pair<int, std::string>> Request(const std::string& method, const std::string& path,
                                              const std::string& body);
  std::string socket_path_;
};

}  // namespace airlock::control
