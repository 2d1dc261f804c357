// h2::Session: one side of an HTTP/2 connection over nghttp2 (the gateway as server to the
// sandbox, or as client to the upstream), with no I/O: bytes read are fed in with Receive(),
// bytes to write are taken with TakeOutput(), and what happened arrives on a Handler. Flow
// control is the caller's: a stream's window reopens only as the caller Consume()s what it was
// given, so a slow reader on the other side slows this peer rather than growing a buffer. A
// session refuses the floods RFC 9113 and the 2019/2023/2024 advisories describe (settings,
// pings, resets, CONTINUATION, oversize header lists) with a Violation. Lives on its
// connection's worker thread; only h2/ includes nghttp2.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/base/status.h"

namespace airlock::h2 {

struct Field {
  std::string name;  // lower case, pseudo-headers first (":method", ":status", ...)
  std::string value;
};
using Fields = std::vector<Field>;

enum class Role { kServer, kClient };

enum class HeadersKind {
  kRequest,        // server: a request's header block
  kResponse,       // client: a final response
  kInformational,  // client: a 1xx response
  kTrailers,       // either: trailers after the body
};

struct Limits {
  uint32_t max_concurrent_streams = 100;
  uint32_t max_header_list = 64 << 10;   // bytes of names and values in one block
  uint32_t stream_window = 256 << 10;    // bytes a peer may send on a stream before Consume()
  uint32_t connection_window = 1 << 20;  // ... on all streams together
  // Resets received: a burst, then this many a second (rapid reset, CVE-2023-44487).
  uint32_t reset_burst = 200;
  uint32_t resets_per_second = 20;
  // PING and SETTINGS frames received (each makes the receiver queue an acknowledgement): a
  // burst, then this many a second. gRPC's BDP probes send a ping per round trip of data.
  uint32_t control_burst = 10000;
  uint32_t control_per_second = 1000;
};

// Why a session gave up on its peer; the reason for the audit record and the operator's log.
struct Violation {
  std::string reason;   // h2_header_list_too_large, h2_rapid_reset, h2_flood, ...
  std::string message;  // one sentence
};

class Handler {
 public:
  virtual ~Handler() = default;
  // A whole header block (after CONTINUATIONs); `end_stream`: no body follows (OnEndStream
  // comes next).
  virtual void OnHeaders(int32_t stream, HeadersKind kind, Fields fields, bool end_stream) = 0;
  // Body bytes: the stream's window stays closed by their size until Consume().
  virtual void OnData(int32_t stream, std::string_view data) = 0;
  // The peer ended its side of the stream (after its headers, body or trailers).
  virtual void OnEndStream(int32_t stream) = 0;
  // `n` bytes queued with Write() went into frames for the peer.
  virtual void OnBodySent(int32_t stream, size_t n) = 0;
  // The stream is gone (`error_code` 0: it ended normally).
  virtual void OnStreamClose(int32_t stream, uint32_t error_code) = 0;
  // Server role: nghttp2 itself refused a request stream before its headers reached OnHeaders
  // (`error_code`: REFUSED_STREAM past the concurrency limit before the peer acknowledged our
  // SETTINGS, PROTOCOL_ERROR for a header block that breaks HTTP's rules); `partial`: the
  // fields read before it gave up, if any. Nothing else is said of the stream. (A peer past the
  // limit after acknowledging it breaks the protocol: the session ends with a violation.)
  virtual void OnRefused(int32_t stream, uint32_t error_code, Fields partial) = 0;
};

class Session {
 public:
  static Result<std::unique_ptr<Session>> Create(Role role, Handler& handler, const Limits& limits);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Feeds bytes read from the peer. An error is a violation: send TakeOutput() (the GOAWAY
  // queued) and close.
  Result<size_t> Receive(std::string_view bytes);
  // Frames to write to the peer, up to about `max` bytes (empty: nothing to send now).
  std::string TakeOutput(size_t max);
  // The same, handed to `sink` piece by piece as nghttp2 frames them (no copy in between);
  // returns the bytes handed over.
  size_t TakeOutput(size_t max, const std::function<void(std::string_view)>& sink);
  // False when the session is over: nothing more to read or to write.
  bool Alive() const;

  // Client: a request; the stream's id, or an error. `has_body`: Write()/End() follow.
  Result<int32_t> SubmitRequest(const Fields& fields, bool has_body);
  // Server: the response to `stream`; with `has_body` Write()/End() follow.
  Status SubmitResponse(int32_t stream, const Fields& fields, bool has_body);
  // Server: a 1xx response before the final one.
  Status SubmitInformational(int32_t stream, const Fields& fields);
  // Queues body bytes of a stream submitted with a body.
  void Write(int32_t stream, std::string_view data);
  // Ends the body (after what Write() queued), with trailers when there are any.
  void End(int32_t stream, Fields trailers = {});
  // Body bytes queued on `stream` and not yet in frames.
  size_t Queued(int32_t stream) const;
  // Reopens the window of `stream` (and the connection's) by `n` bytes taken from OnData.
  void Consume(int32_t stream, size_t n);
  // Ends a stream with RST_STREAM.
  void Reset(int32_t stream, uint32_t error_code);
  // GOAWAY with `error_code`; the session ends once it is sent.
  void GoAway(uint32_t error_code);
  // Set when the peer broke the protocol or a limit (the session is going away).
  const std::optional<Violation>& violation() const;

  // RFC 9113 error codes the gateway sends.
  static constexpr uint32_t kNoError = 0x0;
  static constexpr uint32_t kProtocolError = 0x1;
  static constexpr uint32_t kInternalError = 0x2;
  static constexpr uint32_t kRefusedStream = 0x7;
  static constexpr uint32_t kCancel = 0x8;
  static constexpr uint32_t kEnhanceYourCalm = 0xb;

 private:
  struct Impl;
  explicit Session(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

// Reads a header value as a response status (":status"); nullopt unless three digits.
std::optional<int> ParseStatus(std::string_view value);

}  // namespace airlock::h2
