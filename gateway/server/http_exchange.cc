// The HTTP/1.1 relay: request and response forwarding (see http_exchange.h).
#include "gateway/server/http_exchange.h"

#include "gateway/audit/chain.h"
#include "gateway/http/serialize.h"

namespace airlock::server {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr size_t kBodySlice = 65536;  // body bytes handed to the parser at a time
// A response to filter for reflected credentials that has arrived whole up to this size is
// filtered whole and keeps its Content-Length (else it goes chunked).
constexpr size_t kWholeResponse = 256 << 10;

// How a body goes to the client: as the upstream framed it; chunked anew when its length is
// unknown (until close) or may change (filtered for reflected credentials); and to an HTTP/1.0
// client, which knows no chunks, raw until the connection closes.
http::BodyFraming OutFraming(http::BodyFraming framing, bool http10, bool filtered) {
  using http::BodyFraming;
  if (framing == BodyFraming::kUntilClose || (framing == BodyFraming::kLength && filtered)) {
    framing = BodyFraming::kChunked;
  }
  if (framing == BodyFraming::kChunked && http10) framing = BodyFraming::kUntilClose;
  return framing;
}

}  // namespace

http::MessageParser::HeadResult ReadRequestHead(evbuffer* in, http::MessageParser& parser,
                                                size_t max_head_bytes) {
  size_t len = evbuffer_get_length(in);
  if (len == 0) return http::MessageParser::HeadResult::kNeedMore;
  size_t want = std::min(len, max_head_bytes + 1);
  auto* data = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(want)));
  auto result = parser.ParseHead(std::string_view(data, want));
  if (result == http::MessageParser::HeadResult::kDone) evbuffer_drain(in, parser.head_size());
  return result;
}

Http1Exchange::Http1Exchange(ExchangeHost& host, http::MessageParser& request,
                             http::MessageParser& response, size_t max_head_bytes)
    : host_(host), request_(request), response_(response), max_head_bytes_(max_head_bytes) {}

void Http1Exchange::ReadNextHead() {
  state_ = State::kReadingHead;
  bufferevent_enable(host_.client(), EV_READ);
  auto result = ReadRequestHead(bufferevent_get_input(host_.client()), request_, max_head_bytes_);
  if (result == http::MessageParser::HeadResult::kNeedMore) return;
  if (result == http::MessageParser::HeadResult::kError) {
    const auto& e = request_.error();
    host_.Refuse(Refusal{e.status, e.reason, e.message, "send a well-formed HTTP/1.1 request"});
    return;
  }
  state_ = State::kAdmitting;
  switch (host_.AdmitRequest(request_.head())) {
    case ExchangeHost::Admission::kForward:
      SendRequest();
      return;
    case ExchangeHost::Admission::kPending:
      bufferevent_disable(host_.client(), EV_READ);
      return;
    case ExchangeHost::Admission::kRefused:
      return;
  }
}

void Http1Exchange::SendRequest() {
  const http::HttpHead& h = request_.head();
  summary_ = RequestSummary{h.method, audit::RedactTarget(host_.target().origin_target)};
  started_ = steady_clock::now();
  body_leak_.reset();
  response_.Reset();
  response_.set_no_body_expected(h.method == "HEAD");
  whole_body_limit_ = h.framing == http::BodyFraming::kNone ? 0 : host_.WholeBodyLimit();
  if (whole_body_limit_ > 0) {
    state_ = State::kBufferingBody;
    whole_body_.clear();
    // The upstream cannot answer 100 before it has the head: the gateway does.
    if (const std::string* expect = h.Find("Expect");
        expect && http::EqualsIgnoreCase(*expect, "100-continue")) {
      std::erase_if(request_.mutable_head().headers,
                    [](const http::Header& x) { return http::EqualsIgnoreCase(x.name, "Expect"); });
      bufferevent_write(host_.client(), "HTTP/1.1 100 Continue\r\n\r\n", 25);
    }
    bufferevent_enable(host_.client(), EV_READ);
    PumpWholeBody();
    return;
  }
  WriteHead();
  state_ = State::kSendingBody;
  bufferevent_enable(host_.upstream(), EV_READ);
  bufferevent_enable(host_.client(), EV_READ);
  PumpRequestBody();
}

void Http1Exchange::WriteHead() {
  const http::HttpHead& h = request_.head();
  const Target& t = host_.target();
  const uint16_t default_port = t.protocol == policy::Protocol::kHttp ? 80 : 443;
  std::string host_header = t.host;
  if (t.port != default_port) host_header += ":" + std::to_string(t.port);
  // Inside TLS the client's Host was checked against the SNI: it goes on as it was spelled.
  const std::string* sent_host = h.Find("Host");
  if (t.protocol == policy::Protocol::kTls && sent_host) host_header = *sent_host;
  std::string head = http::SerializeRequestHead(h, t.origin_target, host_header);
  bufferevent_write(host_.upstream(), head.data(), head.size());
  host_.CountHead(head.size(), true);
  summary_.path = audit::RedactTarget(t.origin_target);  // as sent (a parameter injected)
  summary_.bytes_up += head.size();
}

void Http1Exchange::PumpWholeBody() {
  evbuffer* in = bufferevent_get_input(host_.client());
  while (!request_.complete() && evbuffer_get_length(in) > 0) {
    if (MoveBody(in, nullptr, request_, false, true) == http::MessageParser::npos) {
      const auto& e = request_.error();
      host_.Refuse(Refusal{e.status, e.reason, e.message, "send a well-formed request body"});
      return;
    }
    if (body_leak_ && request_.complete()) break;
    if (whole_body_.size() > whole_body_limit_) {
      host_.RefuseForwarded(
          Refusal{413, "request_body_too_large",
                  "a credential is written into or signs this request's body, which the gateway "
                  "reads whole up to " +
                      std::to_string(whole_body_limit_) + " bytes; this one is larger",
                  "send a smaller body (or, for AWS, an X-Amz-Content-Sha256 header)"},
          0);
      return;
    }
  }
  if (!request_.complete()) return;
  if (body_leak_) {
    host_.RefuseForwarded(*body_leak_, 0);
    return;
  }
  http::HttpHead& h = request_.mutable_head();
  if (auto refusal = host_.RewriteRequest(&h, &whole_body_)) {
    host_.RefuseForwarded(*refusal, 0);
    return;
  }
  h.framing = http::BodyFraming::kLength;
  h.content_length = whole_body_.size();
  summary_.bytes_up = 0;  // counted again as sent, rewritten
  WriteHead();
  bufferevent_write(host_.upstream(), whole_body_.data(), whole_body_.size());
  summary_.bytes_up += whole_body_.size();
  whole_body_.clear();
  whole_body_.shrink_to_fit();
  state_ = State::kAwaitingResponse;
  bufferevent_enable(host_.upstream(), EV_READ);
  HandleResponse();
}

void Http1Exchange::PumpRequestBody() {
  if (state_ != State::kSendingBody) return;
  evbuffer* in = bufferevent_get_input(host_.client());
  const bool chunked = request_.head().framing == http::BodyFraming::kChunked;
  while (!request_.complete() && evbuffer_get_length(in) > 0) {
    evbuffer* out = body_leak_ ? nullptr : bufferevent_get_output(host_.upstream());
    if (out && evbuffer_get_length(out) >= kRelayHighWater) {
      bufferevent_disable(host_.client(), EV_READ);  // resumes from OnUpstreamWrite
      return;
    }
    if (MoveBody(in, out, request_, chunked, true) == http::MessageParser::npos) {
      const auto& e = request_.error();
      host_.Refuse(Refusal{e.status, e.reason, e.message, "send a well-formed request body"});
      return;
    }
    if (body_leak_ && out) host_.DropUpstream();  // it never sees the request complete
  }
  if (body_leak_) {
    // Answered once the client has sent it all: closing on unread input would reset the
    // connection before the client reads the refusal.
    if (request_.complete()) host_.RefuseForwarded(*body_leak_, summary_.bytes_up);
    return;
  }
  bufferevent_enable(host_.client(), EV_READ);
  if (request_.complete()) {
    if (chunked)
      evbuffer_add(bufferevent_get_output(host_.upstream()), http::kLastChunk.data(),
                   http::kLastChunk.size());
    state_ = State::kAwaitingResponse;
    HandleResponse();
  }
}

size_t Http1Exchange::MoveBody(evbuffer* in, evbuffer* out, http::MessageParser& parser,
                               bool chunked, bool upward) {
  size_t len = std::min<size_t>(evbuffer_get_length(in), kBodySlice);
  auto* data = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
  size_t used = parser.FeedBody(std::string_view(data, len), [&](std::string_view piece) {
    if (upward && body_leak_) return;  // the rest of a refused body goes nowhere
    if (upward && (body_leak_ = host_.RequestBodyLeak(piece))) return;
    (upward ? summary_.bytes_up : summary_.bytes_down) += piece.size();
    host_.CountBytes(piece.size(), upward);
    std::string filtered;
    if (!upward && reflection_) {
      filtered = reflection_->Feed(piece);  // never under a Content-Length (see OutFraming)
      piece = filtered;
    }
    if (out) {
      WriteBody(out, piece, chunked);
    } else if (state_ == State::kBufferingBody && whole_body_.size() <= whole_body_limit_) {
      whole_body_.append(piece);
    }
  });
  if (used != http::MessageParser::npos) evbuffer_drain(in, used);
  return used;
}

void Http1Exchange::WriteBody(evbuffer* out, std::string_view piece, bool chunked) {
  if (piece.empty()) return;  // an empty chunk would end the body
  if (!chunked) {
    evbuffer_add(out, piece.data(), piece.size());
    return;
  }
  // One buffer per chunk: inside TLS every separate add may become a record of its own.
  std::string chunk = http::ChunkHeader(piece.size());
  chunk.reserve(chunk.size() + piece.size() + 2);
  chunk.append(piece);
  chunk.append("\r\n");
  evbuffer_add(out, chunk.data(), chunk.size());
}

void Http1Exchange::HandleResponse() {
  evbuffer* in = bufferevent_get_input(host_.upstream());
  evbuffer* out = bufferevent_get_output(host_.client());
  while (evbuffer_get_length(in) > 0) {
    if (response_.head_size() == 0) {
      size_t len = std::min(evbuffer_get_length(in), max_head_bytes_ + 1);
      auto* data = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
      auto r = response_.ParseHead(std::string_view(data, len));
      if (r == http::MessageParser::HeadResult::kNeedMore) return;
      if (r == http::MessageParser::HeadResult::kError) {
        host_.Refuse(Refusal{502, "bad_upstream_response", response_.error().message,
                             "the upstream sent a malformed response"});
        return;
      }
      evbuffer_drain(in, response_.head_size());
      http::HttpHead& rh = response_.mutable_head();
      if (rh.status >= 100 && rh.status < 200 && rh.status != 101) {
        std::string interim = http::SerializeResponseHead(rh, true, http::BodyFraming::kNone);
        evbuffer_add(out, interim.data(), interim.size());
        summary_.bytes_down += interim.size();
        response_.Reset();
        response_.set_no_body_expected(summary_.method == "HEAD");
        continue;
      }
      const http::HttpHead& req = request_.head();
      // The client's connection is kept only if it asked, speaks HTTP/1.1, and has sent its
      // whole request: after an early answer the rest of its body must never be read as the
      // next request.
      client_keep_ = req.keep_alive && req.version_minor == 1 && request_.complete();
      upstream_keep_alive_ = rh.keep_alive && rh.framing != http::BodyFraming::kUntilClose;
      reflection_ = host_.ResponseFilter();
      if (reflection_) {
        for (auto& header : rh.headers) {
          if (reflection_->Replace(&header.value)) host_.AuditReflection("header:" + header.name);
        }
        if (rh.framing == http::BodyFraming::kLength && !response_.complete() &&
            rh.content_length <= kWholeResponse && evbuffer_get_length(in) >= rh.content_length) {
          SendWholeFiltered();  // the common small API answer: its length kept
          return;
        }
      }
      if (rh.upgrade && req.upgrade) {
        // WebSocket: the 101 in one write, then a byte tunnel from here on.
        std::string head = http::SerializeResponseHead(rh, true, http::BodyFraming::kNone);
        evbuffer_add(out, head.data(), head.size());
        host_.CountHead(head.size(), false);
        summary_.bytes_down += head.size();
        summary_.status = rh.status;
        summary_.duration = duration_cast<milliseconds>(steady_clock::now() - started_);
        host_.AuditRequest(summary_);
        tunnel_ = MakeTunnel(host_);
        tunnel_->Start();
        return;
      }
      const bool http10 = req.version_minor == 0;
      out_framing_ = OutFraming(rh.framing, http10, reflection_ != nullptr);
      // No body follows (an empty one, the answer to HEAD): the framing the upstream declared,
      // so that Content-Length: 0 and HEAD's length reach the client.
      std::string head = http::SerializeResponseHead(
          rh, client_keep_,
          rh.framing != http::BodyFraming::kNone ? out_framing_
                                                 : OutFraming(rh.declared_framing, http10, false));
      evbuffer_add(out, head.data(), head.size());
      host_.CountHead(head.size(), false);
      summary_.bytes_down += head.size();
      if (response_.complete()) {
        FinishExchange();
        return;
      }
      continue;
    }
    if (evbuffer_get_length(out) >= kRelayHighWater) {
      bufferevent_disable(host_.upstream(), EV_READ);  // resumes from OnClientWrite
      return;
    }
    const bool rechunk = out_framing_ == http::BodyFraming::kChunked;
    if (MoveBody(in, out, response_, rechunk, false) == http::MessageParser::npos) {
      host_.Close("bad_upstream_body");
      return;
    }
    if (response_.complete()) {
      FinishExchange();
      return;
    }
  }
}

void Http1Exchange::SendWholeFiltered() {
  evbuffer* in = bufferevent_get_input(host_.upstream());
  http::HttpHead& rh = response_.mutable_head();
  const size_t n = rh.content_length;
  std::string body(reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(n))), n);
  response_.FeedBody(body, [](std::string_view) {});  // the parser sees the message end
  evbuffer_drain(in, n);
  summary_.bytes_down += n;
  host_.CountBytes(n, false);
  if (reflection_->Replace(&body)) host_.AuditReflection("body");
  reflection_.reset();
  rh.content_length = body.size();
  std::string out = http::SerializeResponseHead(rh, client_keep_, http::BodyFraming::kLength);
  host_.CountHead(out.size(), false);
  summary_.bytes_down += out.size();
  out.append(body);
  evbuffer_add(bufferevent_get_output(host_.client()), out.data(), out.size());
  FinishExchange();
}

void Http1Exchange::FinishExchange() {
  const http::HttpHead& rh = response_.head();
  evbuffer* out = bufferevent_get_output(host_.client());
  const bool chunked =
      rh.framing != http::BodyFraming::kNone && out_framing_ == http::BodyFraming::kChunked;
  std::string last;  // what the filter held back, and the last chunk, in one write
  if (reflection_) {
    std::string rest = reflection_->Finish();
    if (!rest.empty() && chunked) last = http::ChunkHeader(rest.size()) + rest + "\r\n";
    if (!rest.empty() && !chunked) last = std::move(rest);
    if (reflection_->hit()) host_.AuditReflection("body");
    reflection_.reset();
  }
  if (chunked) last.append(http::kLastChunk);
  if (!last.empty()) evbuffer_add(out, last.data(), last.size());
  summary_.status = rh.status;
  summary_.duration = duration_cast<milliseconds>(steady_clock::now() - started_);
  host_.AuditRequest(summary_);
  // An upstream that answered before the whole body reached it cannot take another request.
  if (!upstream_keep_alive_ || !request_.complete()) host_.DropUpstream();
  if (!client_keep_) {
    host_.CloseAfterFlush("done");
    return;
  }
  // Next request on this connection (pipelined bytes may already be waiting).
  request_.Reset();
  ReadNextHead();
}

void Http1Exchange::OnClientRead() {
  if (tunnel_) return tunnel_->OnClientRead();
  if (state_ == State::kReadingHead) {
    ReadNextHead();
  } else if (state_ == State::kSendingBody) {
    PumpRequestBody();
  } else if (state_ == State::kBufferingBody) {
    PumpWholeBody();
  }
  // Otherwise bytes wait in the buffer (pipelined requests).
}

void Http1Exchange::OnClientWrite() {
  if (tunnel_) return tunnel_->OnClientWrite();
  // Back-pressure relief: the client drained, read from upstream again.
  if (state_ == State::kAwaitingResponse && host_.upstream()) {
    bufferevent_enable(host_.upstream(), EV_READ);
  }
}

void Http1Exchange::OnClientEof() {
  if (tunnel_) return tunnel_->OnClientEof();
  host_.Close("client_closed");
}

void Http1Exchange::OnUpstreamRead() {
  if (tunnel_) return tunnel_->OnUpstreamRead();
  if (state_ == State::kAwaitingResponse || state_ == State::kSendingBody) HandleResponse();
}

void Http1Exchange::OnUpstreamWrite() {
  if (tunnel_) return tunnel_->OnUpstreamWrite();
  if (state_ == State::kSendingBody) PumpRequestBody();
}

void Http1Exchange::OnUpstreamEof() {
  if (tunnel_) return tunnel_->OnUpstreamEof();
  if (state_ == State::kAwaitingResponse || state_ == State::kSendingBody) {
    HandleResponse();
    if (state_ == State::kReadingHead || state_ == State::kAdmitting) return;  // finished
    if (response_.head_size() > 0 && response_.FinishOnClose()) {
      FinishExchange();
    } else {
      host_.Close("upstream_closed");
    }
    return;
  }
  if (state_ == State::kBufferingBody) {
    host_.Close("upstream_closed");  // it went away while the body was being read for it
    return;
  }
  host_.DropUpstream();  // an idle kept-alive upstream went away
}

void Http1Exchange::OnUpstreamError(bool timeout) {
  if (tunnel_) return tunnel_->OnUpstreamError(timeout);
  if (state_ == State::kReadingHead || state_ == State::kAdmitting) {
    host_.DropUpstream();  // an idle kept-alive upstream failed
    return;
  }
  host_.Close(timeout ? "idle_timeout" : "upstream_error");
}

}  // namespace airlock::server
