// HttpsCall: one blocking HTTPS request from the gateway itself, for sources that fetch tokens
// (an OAuth2 token endpoint, GitHub's API). Verifies the server against the upstream trust store,
// TLS 1.2 or later, one request per connection, bounded in time and size. Errors name the URL's
// host and what failed, never a header or body (they may hold secrets). Runs on the broker's
// refresher thread; any thread may call it.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "gateway/base/status.h"

namespace airlock::credentials {

struct HttpsRequest {
  std::string method = "POST";
  std::string url;  // https://host[:port]/path
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string ca_file;  // empty: the system store
  std::chrono::milliseconds timeout{10000};
};

struct HttpsResponse {
  int status = 0;
  std::string body;  // decoded (chunked framing removed), at most 1 MiB
};

Result<HttpsResponse> HttpsCall(const HttpsRequest& request);

}  // namespace airlock::credentials
