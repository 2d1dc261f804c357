// Gateway-generated responses.
#include "gateway/http/denial.h"

#include <nlohmann/json.hpp>

namespace airlock::http {

std::string_view StatusText(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Error";
  }
}

std::string RenderDenialBody(const GatewayResponse& r) {
  nlohmann::json body = {{"error", r.message}, {"reason", r.reason}, {"hint", r.hint}};
  if (!r.host.empty()) body["host"] = r.host;
  if (r.port != 0) body["port"] = r.port;
  if (!r.rule.empty()) body["rule"] = r.rule;
  if (!r.session.empty()) body["session"] = r.session;
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string RenderGatewayResponse(const GatewayResponse& r) {
  std::string json = RenderDenialBody(r);
  std::string out =
      "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(StatusText(r.status)) + "\r\n";
  out += "Content-Type: application/json\r\n";
  out += "X-Airlock-Reason: " + r.reason + "\r\n";
  if (r.status == 407) out += "Proxy-Authenticate: Basic realm=\"airlock\"\r\n";
  out += "Content-Length: " + std::to_string(json.size()) + "\r\n";
  out += "Connection: close\r\n\r\n";
  out += json;
  return out;
}

}  // namespace airlock::http
