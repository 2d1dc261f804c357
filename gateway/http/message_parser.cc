// Strict HTTP/1.1 framing: a byte-level pre-scan of the head, llhttp for the grammar, then
// semantic checks on the parsed head.
#include "gateway/http/message_parser.h"

namespace airlock::http {
namespace {

MessageParser* Self(llhttp_t* p) { return static_cast<MessageParser*>(p->data); }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

MessageParser::MessageParser(Kind kind, ParseLimits limits) : kind_(kind), limits_(limits) {
  llhttp_settings_init(&settings_);
  settings_.on_url = OnUrl;
  settings_.on_status = OnStatus;
  settings_.on_method = OnMethod;
  settings_.on_header_field = OnHeaderField;
  settings_.on_header_value = OnHeaderValue;
  settings_.on_headers_complete = OnHeadersComplete;
  settings_.on_body = OnBody;
  settings_.on_message_complete = OnMessageComplete;
  Reset();
}

MessageParser::~MessageParser() = default;

void MessageParser::Reset() {
  llhttp_init(&parser_, kind_ == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
  parser_.data = this;
  head_ = HttpHead{};
  head_size_ = 0;
  in_value_ = false;
  headers_done_ = false;
  scan_ = ScanState{};
  complete_ = false;
  no_body_expected_ = false;
  error_ = ParseError{};
}

MessageParser::HeadResult MessageParser::Fail(int status, std::string reason, std::string message) {
  error_ = ParseError{status, std::move(reason), std::move(message)};
  return HeadResult::kError;
}

// Checks the raw head byte by byte, resuming where the previous call stopped (the buffer only
// grows between calls), so a head that trickles in a byte at a time costs linear time. Sets
// head_size_ when the blank line ending the head is found; returns false (with error_ set) on the
// first violation.
bool MessageParser::PreScan(std::string_view buf) {
  ScanState& st = scan_;
  if (buf.size() < st.next) st = ScanState{};  // not the buffer it was: start again
  const size_t limit = std::min(buf.size(), limits_.max_head_bytes);
  for (size_t i = st.next; i < limit; ++i) {
    char c = buf[i];
    if (c == '\0') {
      Fail(400, "nul_byte", "NUL byte in the message head");
      return false;
    }
    if (c == '\n') {
      if (i == 0 || buf[i - 1] != '\r') {
        Fail(400, "bare_lf", "line ending without CR (bare LF)");
        return false;
      }
      size_t line_len = i - 1 - st.line_start;
      if (line_len == 0) {
        if (st.line_no == 0) {
          Fail(400, "empty_start_line", "empty line before the start line");
          return false;
        }
        head_size_ = i + 1;
        return true;
      }
      if (st.line_no > 0) {
        if (!st.colon_seen) {
          Fail(400, "malformed_header", "header line without a colon");
          return false;
        }
        if (++st.headers > limits_.max_headers) {
          Fail(431, "too_many_headers",
               "more than " + std::to_string(limits_.max_headers) + " header fields");
          return false;
        }
      }
      ++st.line_no;
      st.line_start = i + 1;
      st.colon_seen = false;
      continue;
    }
    if (i > 0 && buf[i - 1] == '\r') {
      Fail(400, "bare_cr", "CR not followed by LF");
      return false;
    }
    if (st.line_no == 0) {
      if (i - st.line_start >= limits_.max_request_line) {
        Fail(kind_ == Kind::kRequest ? 414 : 502, "start_line_too_long",
             "start line longer than " + std::to_string(limits_.max_request_line) + " bytes");
        return false;
      }
      continue;
    }
    if (i == st.line_start && (c == ' ' || c == '\t')) {
      Fail(400, "obs_fold", "obsolete line folding (a header line starting with whitespace)");
      return false;
    }
    if (!st.colon_seen) {
      if (c == ':') {
        if (i == st.line_start) {
          Fail(400, "empty_header_name", "header with an empty name");
          return false;
        }
        st.colon_seen = true;
      } else if (c == ' ' || c == '\t') {
        Fail(400, "space_in_header_name", "whitespace in or after a header name");
        return false;
      }
    }
  }
  // A CR as the last byte is judged when the byte after it arrives: rescan it then.
  st.next = limit > 0 && buf[limit - 1] == '\r' ? limit - 1 : limit;
  if (buf.size() >= limits_.max_head_bytes) {
    Fail(431, "head_too_large",
         "message head larger than " + std::to_string(limits_.max_head_bytes) + " bytes");
    return false;
  }
  return true;  // head_size_ still 0: need more bytes
}

MessageParser::HeadResult MessageParser::ParseHead(std::string_view buffer) {
  head_size_ = 0;
  if (kind_ == Kind::kRequest && buffer.starts_with("PRI * HTTP/2")) {
    return Fail(400, "h2_refused", "HTTP/2 is not accepted here; use HTTP/1.1");
  }
  if (!PreScan(buffer)) return HeadResult::kError;
  if (head_size_ == 0) return HeadResult::kNeedMore;
  llhttp_errno_t err = llhttp_execute(&parser_, buffer.data(), head_size_);
  if (err != HPE_OK && err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
    std::string reason = llhttp_errno_name(err);
    if (err == HPE_UNEXPECTED_CONTENT_LENGTH || err == HPE_INVALID_CONTENT_LENGTH ||
        err == HPE_INVALID_TRANSFER_ENCODING) {
      reason = "ambiguous_framing";
    } else {
      reason = "malformed_message";
    }
    return Fail(400, reason, llhttp_get_error_reason(&parser_));
  }
  if (!headers_done_) return Fail(400, "malformed_message", "incomplete message head");
  if (!CheckSemantics()) return HeadResult::kError;
  return HeadResult::kDone;
}

bool MessageParser::CheckSemantics() {
  if (llhttp_get_http_major(&parser_) != 1 || head_.version_minor > 1) {
    Fail(505, "unsupported_version", "only HTTP/1.0 and HTTP/1.1 are accepted");
    return false;
  }
  size_t te_count = head_.Count("Transfer-Encoding");
  if (te_count > 0) {
    if (te_count > 1 || !EqualsIgnoreCase(Trim(*head_.Find("Transfer-Encoding")), "chunked")) {
      Fail(kind_ == Kind::kRequest ? 501 : 502, "unsupported_transfer_coding",
           "the only accepted Transfer-Encoding is a single 'chunked'");
      return false;
    }
    if (head_.version_minor == 0) {
      Fail(400, "ambiguous_framing", "Transfer-Encoding in an HTTP/1.0 message");
      return false;
    }
  }
  if (kind_ == Kind::kRequest) {
    // What follows a CONNECT head is the tunnel, never a body: a declared one would be read as
    // tunnel bytes by one parser and as a body by another (found by fuzzing).
    if (head_.method == "CONNECT" && head_.framing != BodyFraming::kNone) {
      Fail(400, "connect_with_body", "a CONNECT request carries no body");
      return false;
    }
    if (head_.Count("Host") > 1) {
      Fail(400, "duplicate_host", "more than one Host header");
      return false;
    }
    const std::string* upgrade = head_.Find("Upgrade");
    if ((upgrade && HasToken(*upgrade, "h2c")) || head_.Find("HTTP2-Settings")) {
      Fail(400, "h2c_refused", "h2c upgrades are not accepted; use HTTP/1.1 or TLS");
      return false;
    }
    const std::string* connection = head_.Find("Connection");
    head_.upgrade = head_.method != "CONNECT" && upgrade && HasToken(*upgrade, "websocket") &&
                    connection && HasToken(*connection, "upgrade");
  } else {
    head_.upgrade = head_.status == 101;
  }
  return true;
}

size_t MessageParser::FeedBody(std::string_view data,
                               const std::function<void(std::string_view)>& sink) {
  if (complete_ || data.empty()) return 0;
  sink_ = &sink;
  llhttp_errno_t err = llhttp_execute(&parser_, data.data(), data.size());
  sink_ = nullptr;
  if (err == HPE_OK) return data.size();
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    return static_cast<size_t>(llhttp_get_error_pos(&parser_) - data.data());
  }
  error_ = ParseError{400, "malformed_body", llhttp_get_error_reason(&parser_)};
  return npos;
}

bool MessageParser::FinishOnClose() {
  if (complete_) return true;
  if (head_.framing != BodyFraming::kUntilClose) return false;
  llhttp_errno_t err = llhttp_finish(&parser_);  // on_message_complete pauses
  return (err == HPE_OK || err == HPE_PAUSED) && complete_;
}

int MessageParser::OnUrl(llhttp_t* p, const char* at, size_t n) {
  Self(p)->head_.target.append(at, n);
  return 0;
}

int MessageParser::OnStatus(llhttp_t* p, const char* at, size_t n) {
  Self(p)->head_.reason.append(at, n);
  return 0;
}

int MessageParser::OnMethod(llhttp_t* p, const char* at, size_t n) {
  Self(p)->head_.method.append(at, n);
  return 0;
}

int MessageParser::OnHeaderField(llhttp_t* p, const char* at, size_t n) {
  MessageParser* self = Self(p);
  if (self->in_value_ || self->head_.headers.empty()) {
    self->head_.headers.emplace_back();
    self->in_value_ = false;
  }
  self->head_.headers.back().name.append(at, n);
  return 0;
}

int MessageParser::OnHeaderValue(llhttp_t* p, const char* at, size_t n) {
  MessageParser* self = Self(p);
  self->in_value_ = true;
  self->head_.headers.back().value.append(at, n);
  return 0;
}

int MessageParser::OnHeadersComplete(llhttp_t* p) {
  MessageParser* self = Self(p);
  HttpHead& h = self->head_;
  self->headers_done_ = true;
  for (auto& header : h.headers) header.value = std::string(Trim(header.value));
  h.version_minor = llhttp_get_http_minor(p);
  h.keep_alive = llhttp_should_keep_alive(p) != 0;
  if (self->kind_ == Kind::kResponse) h.status = llhttp_get_status_code(p);
  if (p->flags & F_CHUNKED) {
    h.declared_framing = BodyFraming::kChunked;
  } else if (p->flags & F_CONTENT_LENGTH) {
    h.declared_framing = BodyFraming::kLength;
    h.content_length = p->content_length;
  } else if (self->kind_ == Kind::kResponse && !self->no_body_expected_ &&
             llhttp_message_needs_eof(p)) {
    h.declared_framing = BodyFraming::kUntilClose;
  }
  if (self->kind_ == Kind::kResponse && self->no_body_expected_) {
    h.framing = BodyFraming::kNone;
    return 1;  // tells llhttp: no body follows
  }
  h.framing = h.declared_framing == BodyFraming::kLength && h.content_length == 0
                  ? BodyFraming::kNone
                  : h.declared_framing;
  return 0;
}

int MessageParser::OnBody(llhttp_t* p, const char* at, size_t n) {
  MessageParser* self = Self(p);
  if (self->sink_) (*self->sink_)(std::string_view(at, n));
  return 0;
}

int MessageParser::OnMessageComplete(llhttp_t* p) {
  Self(p)->complete_ = true;
  return HPE_PAUSED;  // stop at the message end; pipelined bytes stay unconsumed
}

}  // namespace airlock::http
