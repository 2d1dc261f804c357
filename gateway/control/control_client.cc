// ControlClient (see control_client.h): a minimal HTTP/1.1 client over a unix socket.
#include "gateway/control/control_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "gateway/base/percent_encoding.h"

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
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof(sun.sun_path)) return Status::Error("socket path too long");
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  std::memcpy(sun.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) {
    if (fd >= 0) ::close(fd);
    return Status::Error("cannot reach the gateway's control socket " + socket_path_ +
                         " (is airlock-gateway running?)");
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: airlock\r\nContent-Type: " +
                    "application/json\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n" + body;
  if (::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return Status::Error("cannot write to the control socket");
  }
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) resp.append(buf, static_cast<size_t>(n));
  ::close(fd);
  size_t sp = resp.find(' ');
  size_t head_end = resp.find("\r\n\r\n");
  if (sp == std::string::npos || head_end == std::string::npos) {
    return Status::Error("malformed answer from the control socket");
  }
  return std::make_pair(std::atoi(resp.c_str() + sp + 1), resp.substr(head_end + 4));
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
