// Writing HTTP/1.1 heads for the hop the gateway opens. Hop-by-hop headers (Connection and the
// headers it names, Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade) are dropped and
// the framing headers are written anew from the parsed framing, so what reaches the other side
// is unambiguous whatever the sender wrote. Pure functions; no thread ownership.
#pragma once

#include <string>
#include <string_view>

#include "gateway/http/http_head.h"

namespace airlock::http {

// "METHOD origin-target HTTP/1.1", Host first, end-to-end headers, fresh framing headers.
std::string SerializeRequestHead(const HttpHead& head, std::string_view origin_target,
                                 std::string_view host);

// The response as the client should see it. `keep_alive` false adds "Connection: close";
// `framing` is how the body that follows is delimited for this client (kLength: the head's
// content_length; kUntilClose and kNone: no framing header).
std::string SerializeResponseHead(const HttpHead& head, bool keep_alive, BodyFraming framing);

// Chunked transfer coding: a piece of body goes out as ChunkHeader(size), the data, "\r\n";
// kLastChunk ends the body.
std::string ChunkHeader(size_t size);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// Whether a header never crosses the gateway (hop-by-hop, or named in Connection).
bool IsHopByHop(const HttpHead& head, std::string_view name);

}  // namespace airlock::http
