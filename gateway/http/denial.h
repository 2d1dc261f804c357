// Responses the gateway itself writes: denials an agent can act on (403 with a JSON body
// {error, reason, host, port, rule, session, hint} and an X-Airlock-Reason header), and 400, 407,
// 502, 503 and 504 with a reason. Pure functions; no thread ownership.
#pragma once

#include <cstdint>
#include <string>

namespace airlock::http {

struct GatewayResponse {
  int status = 403;
  std::string reason;   // reason code: a policy reason or a gateway one ("upstream_timeout")
  std::string message;  // one sentence: what happened
  std::string hint;     // one sentence: what to do about it
  std::string host;
  uint16_t port = 0;
  std::string rule;
  std::string session;
};

// The JSON body of such a response (one line), for an HTTP/2 stream's answer.
std::string RenderDenialBody(const GatewayResponse& r);

// A complete HTTP/1.1 response with "Connection: close".
std::string RenderGatewayResponse(const GatewayResponse& r);

std::string_view StatusText(int status);

}  // namespace airlock::http
