// ControlApi: the operator's API, HTTP+JSON over a unix socket (mode 0600). This class is the
// request handling, without sockets: the server passes method, path and body and sends back
// status and JSON. Endpoints:
//   GET    /v1/health                health, audit state, policies, session count
//   POST   /v1/sessions              {policy, source?, token?, ttl_seconds?, labels?, id?} -> 201
//                                     with the token and {placeholders: {ENV: value}}, shown once
//   GET    /v1/sessions              list
//   GET    /v1/sessions/{id}         one
//   DELETE /v1/sessions/{id}         end it (its connections are closed)  -> 204
//   POST   /v1/reload                reload policies, all or nothing
//   GET    /v1/ca                    {certificate}: the CA certificate sandboxes must trust
// Called on the control thread only.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "gateway/base/status.h"
#include "gateway/control/session_table.h"

namespace airlock::control {

struct ControlRequest {
  std::string method;
  std::string path;
  std::string body;
};

struct ControlResponse {
  int status = 200;
  nlohmann::json body;  // null: no body

  // The body as sent: JSON and a newline, or nothing. Bytes that are not UTF-8 (from a request
  // path, say) are replaced rather than thrown over.
  std::string Text() const;
};

// What the API needs from the rest of the gateway.
struct ControlHooks {
  std::function<std::vector<std::string>()> policy_names;
  // Reloads policies; on failure the message lists every error.
  std::function<Status()> reload;
  std::function<bool()> audit_healthy;
  std::function<void(const Session&)> session_created;
  std::function<void(const Session&, const char* reason)> session_ended;
  std::function<std::string()> ca_certificate;  // PEM; absent: 404
  // New placeholders for the credentials a policy binds; absent: none.
  std::function<std::vector<Placeholder>(const std::string& policy)> make_placeholders;
};

class ControlApi {
 public:
  ControlApi(SessionTable& sessions, ControlHooks hooks);
  ControlResponse Handle(const ControlRequest& request);

 private:
  ControlResponse CreateSession(const std::string& body);
  static nlohmann::json SessionJson(const Session& s);

  SessionTable& sessions_;
  ControlHooks hooks_;
};

}  // namespace airlock::control
