// A minimal HTTP/1.1 client over a unix socket.
#include "vmlaunch/control_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace airlock::vmlaunch {
namespace {

// The gateway's reason for a refusal: its JSON "error", else the body as it came.
std::string Why(const nlohmann::json& body, const std::string& raw) {
  return body.is_object() && body.contains("error") && body["error"].is_string()
             ? body["error"].get<std::string>()
             : raw;
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
  auto body = nlohmann::json::parse(r->second, nullptr, false);
  if (r->first != 201) {
    return Status::Error("the gateway refused the session: " + Why(body, r->second));
  }
  if (!body.is_object() || !body.contains("id") || !body["id"].is_string()) {
    return Status::Error("the gateway's answer to POST /v1/sessions has no session id");
  }
  return body;
}

Status ControlClient::DeleteSession(const std::string& id) {
  auto r = Request("DELETE", "/v1/sessions/" + id, "");
  if (!r.ok()) return r.status();
  if (r->first != 204 && r->first != 404) return Status::Error("cannot delete session " + id);
  return Status::Ok();
}

Result<std::string> ControlClient::GetCaCertificate() {
  auto r = Request("GET", "/v1/ca", "");
  if (!r.ok()) return r.status();
  if (r->first == 404) return std::string();
  auto body = nlohmann::json::parse(r->second, nullptr, false);
  if (r->first != 200) {
    return Status::Error("the gateway did not give its CA certificate (GET /v1/ca: " +
                         std::to_string(r->first) + " " + Why(body, r->second) + ")");
  }
  if (!body.is_object() || !body.contains("certificate") || !body["certificate"].is_string()) {
    return Status::Error("the gateway's answer to GET /v1/ca has no \"certificate\" string");
  }
  std::string pem = body["certificate"].get<std::string>();
  if (pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return Status::Error("the gateway's CA (GET /v1/ca) is not a PEM certificate");
  }
  return pem;
}

}  // namespace airlock::vmlaunch
