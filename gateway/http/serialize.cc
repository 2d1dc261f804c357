// Head serialisation.
#include "gateway/http/serialize.h"

#include <array>
#include <cstdio>

namespace airlock::http {
namespace {

constexpr std::array<std::string_view, 10> kHopByHop = {
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "Proxy-Authorization",
    "Proxy-Authenticate",
    "TE",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
    "Content-Length",
};

void AppendHeaders(const HttpHead& head, std::string* out) {
  for (const auto& h : head.headers) {
    if (IsHopByHop(head, h.name) || EqualsIgnoreCase(h.name, "Host")) continue;
    *out += h.name + ": " + h.value + "\r\n";
  }
}

void AppendFraming(BodyFraming framing, uint64_t content_length, std::string* out) {
  switch (framing) {
    case BodyFraming::kLength:
      *out += "Content-Length: " + std::to_string(content_length) + "\r\n";
      break;
    case BodyFraming::kChunked:
      *out += "Transfer-Encoding: chunked\r\n";
      break;
    case BodyFraming::kUntilClose:  // no framing header: the body ends when the connection does
    case BodyFraming::kNone:
      break;
  }
}

}  // namespace

bool IsHopByHop(const HttpHead& head, std::string_view name) {
  for (auto h : kHopByHop) {
    if (EqualsIgnoreCase(h, name)) return true;
  }
  const std::string* connection = head.Find("Connection");
  return connection && HasToken(*connection, name);
}

std::string SerializeRequestHead(const HttpHead& head, std::string_view origin_target,
                                 std::string_view host) {
  std::string out = head.method + " " + std::string(origin_target) + " HTTP/1.1\r\n";
  out += "Host: " + std::string(host) + "\r\n";
  AppendHeaders(head, &out);
  if (head.framing != BodyFraming::kNone) {
    AppendFraming(head.framing, head.content_length, &out);
  } else if (head.method == "POST" || head.method == "PUT" || head.method == "PATCH") {
    out += "Content-Length: 0\r\n";
  }
  if (head.upgrade) {
    out += "Connection: Upgrade\r\nUpgrade: " + *head.Find("Upgrade") + "\r\n";
  }
  out += "\r\n";
  return out;
}

std::string SerializeResponseHead(const HttpHead& head, bool keep_alive, BodyFraming framing) {
  std::string out = "HTTP/1.1 " + std::to_string(head.status) + " " + head.reason + "\r\n";
  AppendHeaders(head, &out);
  if (head.upgrade) {
    out += "Connection: Upgrade\r\n";
    if (const std::string* up = head.Find("Upgrade")) out += "Upgrade: " + *up + "\r\n";
  } else {
    // 1xx, 204 and 304 carry no body and no framing headers.
    bool bodiless = head.status < 200 || head.status == 204 || head.status == 304;
    if (!bodiless) AppendFraming(framing, head.content_length, &out);
    if (!keep_alive) out += "Connection: close\r\n";
  }
  out += "\r\n";
  return out;
}

std::string ChunkHeader(size_t size) {
  char text[20];
  int n = std::snprintf(text, sizeof(text), "%zx\r\n", size);
  return std::string(text, static_cast<size_t>(n));
}

}  // namespace airlock::http
