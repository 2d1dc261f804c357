// ControlClient (see control_client.h): the control API's requests, and what each answer must hold.
#include "gateway/control/control_client.h"

#include "gateway/base/percent_encoding.h"
#include "gateway/control/unix_http.h"

namespace airlock::control {
namespace {

// The gateway's reason for a refusal: its JSON "error", else the body as it came.
std::string Why(const std::string& raw) {
  auto body = nlohmann::json::parse(raw, nullptr, false);
  return body.is_object() && body.contains("error") && body["error"].is_string()
             ? body["error"].get<std::string>()
             : raw;
}

// An answer other than the one `request` expects: "the gateway did not <what> (<request>:
// <status> <reason>)".
Status Unexpected(const std::string& what, const std::string& request,
                  const std::pair<int, std::string>& answer) {
  return Status::Error("the gateway did not " + what + " (" + request + ": " +
                       std::to_string(answer.first) + " " + Why(answer.second) + ")");
}

}  // namespace

Result<std::pair<int, std::string>> ControlClient::Request(const std::string& method,
                                                           const std::string& path,
                                                           const std::string& body) {
  auto answer = UnixHttpRequest(socket_path_, method, path, body, std::chrono::seconds(30));
  if (!answer.ok() && answer.status().code() == StatusCode::kNotFound) {
    return Status::Error("cannot reach the gateway's control socket " + socket_path_ +
                         " (is airlock-gateway running?)");
  }
  if (!answer.ok()) return Status::Error("the gateway's control API: " + answer.status().message());
  return std::make_pair(answer->status, std::move(answer->body));
}

Result<nlohmann::json> ControlClient::CreateSession(const nlohmann::json& spec) {
  auto r = Request("POST", "/v1/sessions", spec.dump());
  if (!r.ok()) return r.status();
  if (r->first != 201) return Status::Error("the gateway refused the session: " + Why(r->second));
  auto body = nlohmann::json::parse(r->second, nullptr, false);
  if (!body.is_object() || !body.contains("id") || !body["id"].is_string()) {
    return Status::Error("the gateway's answer to POST /v1/sessions has no session id");
  }
  return body;
}

Result<nlohmann::json> ControlClient::ListSessions() {
  auto r = Request("GET", "/v1/sessions", "");
  if (!r.ok()) return r.status();
  if (r->first != 200) return Unexpected("list its sessions", "GET /v1/sessions", *r);
  auto body = nlohmann::json::parse(r->second, nullptr, false);
  if (!body.is_object() || !body.contains("sessions") || !body["sessions"].is_array()) {
    return Status::Error("the gateway's answer to GET /v1/sessions has no \"sessions\" array");
  }
  for (const auto& s : body["sessions"]) {
    if (!s.is_object()) {
      return Status::Error("the gateway's answer to GET /v1/sessions lists a non-object");
    }
  }
  return body["sessions"];
}

Result<bool> ControlClient::DeleteSession(const std::string& id) {
  // Percent-encoded: no id can reach another endpoint or break the request line.
  const std::string path = "/v1/sessions/" + PercentEncode(id);
  auto r = Request("DELETE", path, "");
  if (!r.ok()) return r.status();
  if (r->first == 404) return false;
  if (r->first != 204) return Unexpected("end session " + id, "DELETE " + path, *r);
  return true;
}

Result<std::string> ControlClient::GetCaCertificate() {
  auto r = Request("GET", "/v1/ca", "");
  if (!r.ok()) return r.status();
  if (r->first == 404) return std::string();
  if (r->first != 200) return Unexpected("give its CA certificate", "GET /v1/ca", *r);
  auto body = nlohmann::json::parse(r->second, nullptr, false);
  if (!body.is_object() || !body.contains("certificate") || !body["certificate"].is_string()) {
    return Status::Error("the gateway's answer to GET /v1/ca has no \"certificate\" string");
  }
  std::string pem = body["certificate"].get<std::string>();
  if (pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return Status::Error("the gateway's CA (GET /v1/ca) is not a PEM certificate");
  }
  return pem;
}

}  // namespace airlock::control
