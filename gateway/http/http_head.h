// The head of an HTTP/1.x message (request line or status line, and headers) as parsed by
// MessageParser, with case-insensitive header lookup. Plain values; no thread ownership.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace airlock::http {

struct Header {
  std::string name;
  std::string value;
};

enum class BodyFraming : uint8_t {
  kNone,        // no body
  kLength,      // Content-Length bytes
  kChunked,     // Transfer-Encoding: chunked
  kUntilClose,  // responses only: until the upstream closes
};

struct HttpHead {
  // Requests.
  std::string method;
  std::string target;
  // Responses.
  int status = 0;
  std::string reason;

  int version_minor = 1;  // HTTP/1.<minor>
  std::vector<Header> headers;

  BodyFraming framing = BodyFraming::kNone;  // how the body that follows is delimited
  uint64_t content_length = 0;
  // Responses: the framing the headers declare, also when no body follows (the answer to HEAD
  // keeps its Content-Length) or it is empty (Content-Length: 0).
  BodyFraming declared_framing = BodyFraming::kNone;
  bool keep_alive = true;  // per the version and Connection header
  bool upgrade = false;    // a WebSocket upgrade (request) or 101 (response)

  // The first header with this name (case-insensitive), or nullptr.
  const std::string* Find(std::string_view name) const;
  size_t Count(std::string_view name) const;
};

bool EqualsIgnoreCase(std::string_view a, std::string_view b);
// True when the comma-separated header value lists `token` (case-insensitive).
bool HasToken(std::string_view value, std::string_view token);

}  // namespace airlock::http
