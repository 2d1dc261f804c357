// MessageParser: strict HTTP/1.1 message framing (RFC 9112) on top of llhttp. The head is
// buffered whole and pre-scanned before llhttp sees it, so every form that lets two parsers
// disagree about where a message ends is refused: Content-Length with Transfer-Encoding,
// duplicate or malformed Content-Length, any transfer coding but a lone "chunked",
// Transfer-Encoding on HTTP/1.0, obs-fold, bare CR or LF, whitespace before a colon, empty header
// names, NUL bytes, malformed chunks, h2c upgrades, duplicate Host; plus size limits.
// One parser per direction of one connection; not thread-safe.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "gateway/http/http_head.h"

namespace airlock::http {

struct ParseLimits {
  size_t max_request_line = 8192;
  size_t max_head_bytes = 32768;
  size_t max_headers = 100;
};

// Why a message was refused: the HTTP status to answer with and a reason code for the audit log.
struct ParseError {
  int status = 400;
  std::string reason;   // e.g. "smuggling_cl_te"
  std::string message;  // for people and agents
};

class MessageParser {
 public:
  enum class Kind { kRequest, kResponse };
  enum class HeadResult { kNeedMore, kDone, kError };

  MessageParser(Kind kind, ParseLimits limits = {});
  ~MessageParser();
  MessageParser(const MessageParser&) = delete;
  MessageParser& operator=(const MessageParser&) = delete;

  // Parses a head from the start of `buffer` (everything received so far: each call's buffer
  // starts with the previous one's). kNeedMore consumes nothing; kDone makes head() and
  // head_size() valid; kError makes error() valid.
  HeadResult ParseHead(std::string_view buffer);
  // For a response: the request was HEAD (or CONNECT), so the response has no body.
  void set_no_body_expected(bool v) { no_body_expected_ = v; }

  // Feeds body bytes after ParseHead() returned kDone. Decoded body data goes to `sink` (chunk
  // framing removed). Returns how many bytes were consumed: it stops at the end of the message,
  // leaving any bytes of a following message unconsumed. Returns npos on a framing error.
  static constexpr size_t npos = static_cast<size_t>(-1);
  size_t FeedBody(std::string_view data, const std::function<void(std::string_view)>& sink);
  // The peer closed: ends an until-close body. False if the message was cut short.
  bool FinishOnClose();

  bool complete() const { return complete_; }
  const HttpHead& head() const { return head_; }
  HttpHead& mutable_head() { return head_; }
  size_t head_size() const { return head_size_; }
  const ParseError& error() const { return error_; }

  // Ready for the next message on the same connection.
  void Reset();

 private:
  static int OnUrl(llhttp_t* p, const char* at, size_t n);
  static int OnStatus(llhttp_t* p, const char* at, size_t n);
  static int OnMethod(llhttp_t* p, const char* at, size_t n);
  static int OnHeaderField(llhttp_t* p, const char* at, size_t n);
  static int OnHeaderValue(llhttp_t* p, const char* at, size_t n);
  static int OnHeadersComplete(llhttp_t* p);
  static int OnBody(llhttp_t* p, const char* at, size_t n);
  static int OnMessageComplete(llhttp_t* p);

  HeadResult Fail(int status, std::string reason, std::string message);
  bool PreScan(std::string_view head);
  bool CheckSemantics();

  Kind kind_;
  ParseLimits limits_;
  llhttp_settings_t settings_{};
  llhttp_t parser_{};
  HttpHead head_;
  size_t head_size_ = 0;
  // Where PreScan() stopped in the head received so far, and what it had seen.
  struct ScanState {
    size_t next = 0;  // the first byte not yet checked
    size_t line_start = 0;
    size_t line_no = 0;
    size_t headers = 0;
    bool colon_seen = false;
  } scan_;
  bool in_value_ = false;
  bool headers_done_ = false;
  bool complete_ = false;
  bool no_body_expected_ = false;
  ParseError error_;
  const std::function<void(std::string_view)>* sink_ = nullptr;
};

}  // namespace airlock::http
