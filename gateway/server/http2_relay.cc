// The HTTP/2 relay: streams decided and relayed between the sandbox's session and the
// upstream's (see http2_relay.h).
#include "gateway/server/http2_relay.h"

#include <cctype>

#include "gateway/audit/chain.h"

namespace airlock::server {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

// The gRPC status for a gateway answer's HTTP status (gRPC clients read grpc-status, not
// :status): the closest code of https://grpc.github.io/grpc/core/md_doc_statuscodes.html.
int GrpcStatus(int http_status) {
  switch (http_status) {
    case 400:
      return 3;  // INVALID_ARGUMENT
    case 403:
    case 421:
      return 7;  // PERMISSION_DENIED
    case 405:
      return 12;  // UNIMPLEMENTED
    case 413:
    case 429:
      return 8;  // RESOURCE_EXHAUSTED
    case 502:
    case 503:
      return 14;  // UNAVAILABLE
    case 504:
      return 4;  // DEADLINE_EXCEEDED
    default:
      return 2;  // UNKNOWN
  }
}

// grpc-message is percent-encoded outside printable ASCII (and '%' itself).
std::string GrpcMessage(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

constexpr int kMaxInformational = 4;
// Request bodies a connection may hold whole at once (credentials written into them): each
// stream's body is consumed as it arrives, so without a cap 100 streams could each hold one.
constexpr size_t kMaxBufferedBodies = 16
                                      << 20;  // 1xx responses relayed per stream; more are dropped

size_t FieldBytes(const h2::Fields& fields) {
  size_t n = 0;
  for (const auto& f : fields) n += f.name.size() + f.value.size();
  return n;
}

}  // namespace

struct Http2Relay::Stream {
  int32_t id = 0;
  int32_t upstream_id = 0;  // 0: nothing sent upstream (yet)
  std::unique_ptr<StreamScope> scope;
  http::HttpHead head;
  bool answered = false;   // the gateway answered: the rest of the request goes nowhere
  bool buffering = false;  // the body is read whole before the request goes (credentials)
  std::string whole_body;  // ... so far
  size_t whole_body_limit = 0;
  h2::Fields request_trailers;
  bool response_started = false;
  bool response_ended = false;
  bool audited = false;
  size_t unconsumed_up = 0;    // request bytes taken from the sandbox, not yet framed
  size_t held = 0;             // of the connection's buffered_: this body, until framed
  size_t unconsumed_down = 0;  // response bytes taken from the upstream, not yet framed
  h2::Fields response_trailers;
  int informational = 0;  // 1xx responses relayed
  std::unique_ptr<credentials::ReflectionFilter> reflection;
  RequestSummary summary;
  steady_clock::time_point started;
};

class Http2Relay::UpstreamHandler : public h2::Handler {
 public:
  explicit UpstreamHandler(Http2Relay& relay) : relay_(relay) {}
  void OnHeaders(int32_t id, h2::HeadersKind kind, h2::Fields fields, bool end) override {
    relay_.OnUpstreamHeaders(id, kind, std::move(fields), end);
  }
  void OnData(int32_t id, std::string_view data) override { relay_.OnUpstreamData(id, data); }
  void OnEndStream(int32_t id) override { relay_.OnUpstreamEndStream(id); }
  void OnBodySent(int32_t id, size_t n) override { relay_.OnUpstreamBodySent(id, n); }
  void OnStreamClose(int32_t id, uint32_t code) override { relay_.OnUpstreamStreamClose(id, code); }
  void OnRefused(int32_t, uint32_t, h2::Fields) override {}  // a server's event only

 private:
  Http2Relay& relay_;
};

Http2Relay::Http2Relay(Http2Host& host) : host_(host) {}
Http2Relay::~Http2Relay() = default;

Result<std::unique_ptr<Http2Relay>> Http2Relay::Create(Http2Host& host) {
  std::unique_ptr<Http2Relay> r(new Http2Relay(host));
  r->upstream_handler_ = std::make_unique<UpstreamHandler>(*r);
  r->staged_.reset(evbuffer_new());
  if (!r->staged_) return Status::Error("cannot set up an HTTP/2 relay: out of memory");
  h2::Limits limits;
  auto client = h2::Session::Create(h2::Role::kServer, *r, limits);
  if (!client.ok()) return client.status();
  auto upstream = h2::Session::Create(h2::Role::kClient, *r->upstream_handler_, limits);
  if (!upstream.ok()) return upstream.status();
  r->client_ = std::move(client).value();
  r->upstream_ = std::move(upstream).value();
  return r;
}

void Http2Relay::Start() {
  bufferevent_enable(host_.client(), EV_READ);
  bufferevent_enable(host_.upstream(), EV_READ);
  OnClientRead();  // the preface may have come with the handshake
}

// The sandbox's side.

void Http2Relay::OnHeaders(int32_t id, h2::HeadersKind kind, h2::Fields fields, bool end) {
  if (kind == h2::HeadersKind::kRequest) {
    auto s = std::make_unique<Stream>();
    s->id = id;
    s->started = steady_clock::now();
    Stream& ref = *s;
    streams_[id] = std::move(s);
    Admit(ref, std::move(fields), end);
    return;
  }
  auto it = streams_.find(id);
  if (it == streams_.end() || it->second->answered) return;
  Stream& s = *it->second;
  if (!s.buffering && s.upstream_id == 0) return;  // the upstream's stream is gone: nowhere to go
  // Request trailers go where the body goes: scanned like it.
  for (const auto& f : fields) {
    if (auto leak = host_.StreamBodyLeak(s.scope.get(), f.name + ": " + f.value)) {
      RefuseAdmitted(s, *leak);
      return;
    }
  }
  s.request_trailers = std::move(fields);
}

void Http2Relay::Admit(Stream& s, h2::Fields fields, bool end) {
  http::HttpHead& head = s.head;
  std::string authority;
  for (auto& f : fields) {
    if (f.name == ":method") {
      head.method = std::move(f.value);
    } else if (f.name == ":path") {
      head.target = std::move(f.value);
    } else if (f.name == ":authority") {
      authority = std::move(f.value);
    } else if (f.name == "host") {
      if (authority.empty()) authority = std::move(f.value);
    } else if (!f.name.starts_with(":")) {
      head.headers.push_back({std::move(f.name), std::move(f.value)});
    }
  }
  // Host first, as ParseTarget and the credential scans read it.
  head.headers.insert(head.headers.begin(), http::Header{"host", authority});
  head.framing = end ? http::BodyFraming::kNone : http::BodyFraming::kChunked;
  s.summary.method = head.method;
  s.summary.path = audit::RedactTarget(head.target);
  s.scope = host_.NewStream();
  if (head.method == "CONNECT") {
    // Extended CONNECT (RFC 8441) is not offered, so a WebSocket client opens an HTTP/1.1
    // connection instead; a plain CONNECT has no business inside an inspected connection.
    Refusal r{405, "connect_in_h2", "CONNECT is not relayed inside an inspected HTTP/2 connection",
              "open a separate connection through the proxy for another tunnel"};
    host_.AuditStreamRefused(*s.scope, s.summary, r);
    s.audited = true;
    Answer(s, r);
    return;
  }
  if (auto refusal = host_.AdmitStream(&head, s.scope.get())) {
    s.audited = true;  // recorded by the host
    Answer(s, *refusal);
    return;
  }
  s.summary.path = audit::RedactTarget(s.scope->target.origin_target);  // as sent
  s.whole_body_limit = end ? 0 : s.scope->guard.WholeBodyLimit();
  s.buffering = s.whole_body_limit > 0;
  if (!s.buffering) SendRequest(s);
}

void Http2Relay::SendRequest(Stream& s) {
  if (!draining_.empty()) {
    RefuseAdmitted(s, Refusal{502, "upstream_closed", "the connection to the upstream ended",
                              "retry the request on a new connection"});
    return;
  }
  h2::Fields out;
  out.reserve(s.head.headers.size() + 3);
  out.push_back({":method", s.head.method});
  out.push_back({":scheme", "https"});
  out.push_back({":authority", s.head.headers.front().value});
  out.push_back({":path", s.scope->target.origin_target});
  for (size_t i = 1; i < s.head.headers.size(); ++i) {
    const http::Header& h = s.head.headers[i];  // kept: a later answer reads content-type
    if (s.buffering && http::EqualsIgnoreCase(h.name, "content-length")) continue;
    // HTTP/2 field names are lower case; an injected credential may have been named otherwise.
    std::string name = h.name;
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.push_back({std::move(name), h.value});
  }
  if (s.buffering) out.push_back({"content-length", std::to_string(s.whole_body.size())});
  const bool has_body = s.head.framing != http::BodyFraming::kNone;
  size_t head_bytes = FieldBytes(out);
  auto id = upstream_->SubmitRequest(out, has_body);
  if (!id.ok()) {
    RefuseAdmitted(
        s, Refusal{502, "upstream_refused_stream", id.status().message(), "retry the request"});
    return;
  }
  s.upstream_id = id.value();
  upstream_ids_[s.upstream_id] = s.id;
  host_.CountHead(head_bytes, true);
  s.summary.bytes_up += head_bytes;
  if (s.buffering) {
    buffered_ = buffered_ - s.held + s.whole_body.size();  // rewritten: its size may change
    s.held = s.whole_body.size();
    upstream_->Write(s.upstream_id, s.whole_body);
    s.summary.bytes_up += s.whole_body.size();
    upstream_->End(s.upstream_id, std::move(s.request_trailers));
    s.whole_body.clear();
    s.whole_body.shrink_to_fit();
    s.buffering = false;
  }
}

void Http2Relay::OnData(int32_t id, std::string_view data) {
  auto it = streams_.find(id);
  if (it == streams_.end() || it->second->answered) {
    client_->Consume(id, data.size());  // nowhere to go: the window reopens at once
    return;
  }
  Stream& s = *it->second;
  if (!s.buffering && s.upstream_id == 0) {
    client_->Consume(id, data.size());  // the upstream's stream is gone (an early answer)
    return;
  }
  if (auto leak = host_.StreamBodyLeak(s.scope.get(), data)) {
    client_->Consume(id, data.size());
    RefuseAdmitted(s, *leak);
    return;
  }
  host_.CountBytes(data.size(), true);
  if (s.buffering) {
    client_->Consume(id, data.size());
    if (buffered_ + data.size() > kMaxBufferedBodies) {
      RefuseAdmitted(s, Refusal{503, "h2_buffered_bodies",
                                "this connection already has the gateway hold " +
                                    std::to_string(kMaxBufferedBodies >> 20) +
                                    " MiB of request bodies that credentials are written into",
                                "send fewer such requests at once"});
      return;
    }
    buffered_ += data.size();
    s.held += data.size();
    s.whole_body.append(data);
    if (s.whole_body.size() > s.whole_body_limit) {
      RefuseAdmitted(s,
                     Refusal{413, "request_body_too_large",
                             "a credential is written into or signs this request's body, which the "
                             "gateway reads whole up to " +
                                 std::to_string(s.whole_body_limit) + " bytes; this one is larger",
                             "send a smaller body (or, for AWS, an X-Amz-Content-Sha256 header)"});
    }
    return;
  }
  s.summary.bytes_up += data.size();
  s.unconsumed_up += data.size();
  upstream_->Write(s.upstream_id, data);  // consumed as it goes out (OnUpstreamBodySent)
}

void Http2Relay::OnEndStream(int32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end() || it->second->answered) return;
  Stream& s = *it->second;
  if (s.buffering) {
    if (auto refusal = host_.RewriteStream(s.scope.get(), &s.head, &s.whole_body)) {
      RefuseAdmitted(s, *refusal);
      return;
    }
    SendRequest(s);
    return;
  }
  if (s.head.framing != http::BodyFraming::kNone) {
    upstream_->End(s.upstream_id, std::move(s.request_trailers));
  }
}

void Http2Relay::OnBodySent(int32_t id, size_t n) {
  // Response bytes went to the sandbox: the upstream may send as many again.
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  Stream& s = *it->second;
  size_t k = std::min(n, s.unconsumed_down);
  s.unconsumed_down -= k;
  if (s.upstream_id) upstream_->Consume(s.upstream_id, k);
}

void Http2Relay::OnStreamClose(int32_t id, uint32_t error_code) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  Stream& s = *it->second;
  if (error_code != h2::Session::kNoError || !s.response_ended) {
    host_.CountH2(Http2Host::H2Event::kStreamReset);  // ended before its answer was
  }
  if (s.upstream_id && upstream_ids_.erase(s.upstream_id)) {
    upstream_->Consume(s.upstream_id, s.unconsumed_down);
    if (!s.response_ended) upstream_->Reset(s.upstream_id, h2::Session::kCancel);
  }
  ReleaseUp(s);
  AuditOnce(s);
  streams_.erase(it);
}

void Http2Relay::OnRefused(int32_t, uint32_t error_code, h2::Fields partial) {
  // Never decided, never sent: recorded all the same (status 0: no answer but the reset).
  RequestSummary summary;
  for (const auto& f : partial) {
    if (f.name == ":method") summary.method = f.value;
    if (f.name == ":path") summary.path = audit::RedactTarget(f.value);
  }
  const bool refused = error_code == h2::Session::kRefusedStream;
  Refusal r = refused ? Refusal{0, "h2_stream_refused",
                                "the sandbox opened more concurrent streams than the gateway's "
                                "limit allows",
                                "wait for open streams to end before opening more"}
                      : Refusal{0, "h2_malformed_request",
                                "the request's header block broke HTTP/2's rules (a "
                                "connection-specific, upper-case or invalid field, or a "
                                "pseudo-header missing or misplaced)",
                                "send the request as RFC 9113 section 8 describes"};
  host_.CountH2(Http2Host::H2Event::kStreamReset);
  host_.AuditStreamRefused(*host_.NewStream(), summary, r);
}

// The upstream's side.

Http2Relay::Stream* Http2Relay::ByUpstream(int32_t id) {
  auto it = upstream_ids_.find(id);
  if (it == upstream_ids_.end()) return nullptr;
  auto s = streams_.find(it->second);
  return s == streams_.end() ? nullptr : s->second.get();
}

void Http2Relay::OnUpstreamHeaders(int32_t id, h2::HeadersKind kind, h2::Fields fields, bool end) {
  Stream* s = ByUpstream(id);
  if (!s) return;
  size_t head_bytes = FieldBytes(fields);
  host_.CountHead(head_bytes, false);
  s->summary.bytes_down += head_bytes;
  // The filter exists from the first header block on: a 1xx (103 Early Hints) can echo the
  // credential as well as the final answer.
  if (!s->reflection && !s->response_started) s->reflection = s->scope->guard.ResponseFilter();
  if (kind == h2::HeadersKind::kInformational) {
    // At most a few per stream: each is queued for the sandbox whatever its windows say.
    if (++s->informational > kMaxInformational) return;
    if (s->reflection) {
      for (auto& f : fields) {
        if (s->reflection->Replace(&f.value))
          host_.AuditStreamReflection(*s->scope, "header:" + f.name);
      }
    }
    (void)client_->SubmitInformational(s->id, fields);  // a gone stream needs no 1xx
    return;
  }
  if (kind == h2::HeadersKind::kTrailers) {
    if (s->reflection) {
      for (auto& f : fields) {
        if (s->reflection->Replace(&f.value))
          host_.AuditStreamReflection(*s->scope, "trailer:" + f.name);
      }
    }
    s->response_trailers = std::move(fields);
    return;
  }
  s->summary.status = h2::ParseStatus(fields.front().value).value_or(0);
  if (s->reflection) {
    // The body may change length once filtered.
    std::erase_if(fields, [](const h2::Field& f) { return f.name == "content-length"; });
    for (auto& f : fields) {
      if (s->reflection->Replace(&f.value))
        host_.AuditStreamReflection(*s->scope, "header:" + f.name);
    }
  }
  if (!client_->SubmitResponse(s->id, fields, !end).ok()) {
    upstream_->Reset(id, h2::Session::kCancel);
    return;
  }
  s->response_started = true;
}

void Http2Relay::OnUpstreamData(int32_t id, std::string_view data) {
  Stream* s = ByUpstream(id);
  if (!s) {
    upstream_->Consume(id, data.size());
    return;
  }
  s->summary.bytes_down += data.size();
  host_.CountBytes(data.size(), false);
  s->unconsumed_down += data.size();
  if (s->reflection) {
    std::string filtered = s->reflection->Feed(data);
    client_->Write(s->id, filtered);
  } else {
    client_->Write(s->id, data);
  }
}

void Http2Relay::OnUpstreamEndStream(int32_t id) {
  Stream* s = ByUpstream(id);
  if (!s || !s->response_started) return;
  if (s->reflection) {
    std::string rest = s->reflection->Finish();
    if (!rest.empty()) client_->Write(s->id, rest);
    if (s->reflection->hit()) host_.AuditStreamReflection(*s->scope, "body");
  }
  s->response_ended = true;
  client_->End(s->id, std::move(s->response_trailers));
}

void Http2Relay::OnUpstreamBodySent(int32_t id, size_t n) {
  // Request bytes went upstream: the sandbox may send as many again.
  if (Stream* s = ByUpstream(id)) {
    size_t k = std::min(n, s->unconsumed_up);
    s->unconsumed_up -= k;
    client_->Consume(s->id, k);
    k = std::min(n, s->held);
    s->held -= k;
    buffered_ -= k;
  }
}

void Http2Relay::OnUpstreamStreamClose(int32_t id, uint32_t error_code) {
  Stream* s = ByUpstream(id);
  upstream_ids_.erase(id);
  if (!s) return;
  // Its window is the connection's too: what it sent that the sandbox has not taken yet is
  // given back now, as no stream is left to give it back later.
  upstream_->Consume(id, s->unconsumed_down);
  s->unconsumed_down = 0;
  s->upstream_id = 0;  // the rest of the request body goes nowhere (OnData)
  ReleaseUp(*s);       // what was queued for it
  if (s->response_ended) return;
  if (!s->response_started) {
    Refusal r{502, "upstream_stream_reset",
              "the upstream reset the stream (HTTP/2 error " + std::to_string(error_code) + ")",
              "retry the request"};
    host_.AuditStreamRefused(*s->scope, s->summary, r);
    s->audited = true;
    Answer(*s, r);
  } else {
    client_->Reset(s->id, error_code ? error_code : h2::Session::kInternalError);
  }
}

// Gateway answers.

void Http2Relay::ReleaseUp(Stream& s) {
  client_->Consume(s.id, s.unconsumed_up);
  s.unconsumed_up = 0;
  buffered_ -= s.held;
  s.held = 0;
}

void Http2Relay::Answer(Stream& s, const Refusal& refusal) {
  s.answered = true;
  ReleaseUp(s);  // the request's bytes queued for the upstream go nowhere
  s.buffering = false;
  s.whole_body.clear();
  if (s.response_started) {
    client_->Reset(s.id, h2::Session::kCancel);  // too late for an answer
    return;
  }
  const std::string* type = s.head.Find("content-type");
  if (type && type->starts_with("application/grpc")) {
    // A gRPC client sees a status it understands: a trailers-only response.
    h2::Fields grpc = {{":status", "200"},
                       {"content-type", "application/grpc"},
                       {"grpc-status", std::to_string(GrpcStatus(refusal.status))},
                       {"grpc-message", GrpcMessage("airlock: " + refusal.reason + ": " +
                                                    refusal.message + " (" + refusal.hint + ")")},
                       {"x-airlock-reason", refusal.reason}};
    if (client_->SubmitResponse(s.id, grpc, false).ok()) s.response_started = true;
    s.response_ended = true;
    return;
  }
  std::string body = host_.DenialBody(refusal, *s.scope);
  h2::Fields fields = {{":status", std::to_string(refusal.status)},
                       {"content-type", "application/json"},
                       {"x-airlock-reason", refusal.reason},
                       {"content-length", std::to_string(body.size())}};
  if (!client_->SubmitResponse(s.id, fields, true).ok()) return;
  s.response_started = true;
  client_->Write(s.id, body);
  client_->End(s.id);
  s.response_ended = true;
}

void Http2Relay::RefuseAdmitted(Stream& s, const Refusal& refusal) {
  if (s.upstream_id) {
    upstream_ids_.erase(s.upstream_id);
    upstream_->Consume(s.upstream_id, s.unconsumed_down);
    upstream_->Reset(s.upstream_id, h2::Session::kCancel);
    s.upstream_id = 0;
  }
  host_.AuditStreamRefused(*s.scope, s.summary, refusal);
  s.audited = true;
  Answer(s, refusal);
}

// Bytes in and out.

bool Http2Relay::Feed(bufferevent* bev, h2::Session& session, const char* side) {
  evbuffer* in = bufferevent_get_input(bev);
  // Chunk by chunk as the buffer holds them, uncopied (nghttp2 keeps its state across calls).
  Status status = Status::Ok();
  for (size_t len; status.ok() && (len = evbuffer_get_length(in)) > 0;) {
    evbuffer_iovec chunk;
    if (evbuffer_peek(in, -1, nullptr, &chunk, 1) < 1 || chunk.iov_len == 0) {
      chunk = {evbuffer_pullup(in, -1), len};  // an empty chain first: made one
    }
    auto n =
        session.Receive(std::string_view(static_cast<const char*>(chunk.iov_base), chunk.iov_len));
    evbuffer_drain(in, chunk.iov_len);
    if (!n.ok()) status = n.status();
  }
  if (!status.ok()) {
    evbuffer_drain(in, evbuffer_get_length(in));
    std::string why = std::string(side) +
                      (session.violation() ? session.violation()->reason : "h2_protocol_error");
    (&session == client_.get() ? closing_ : draining_) = why;
    return false;
  }
  return true;
}

void Http2Relay::Flush() {
  if (closed_) return;
  // What one session sends can open the other's windows (a body framed for one side is
  // consumed on the other, queueing its WINDOW_UPDATE): take both until neither has more.
  evbuffer* out = bufferevent_get_output(host_.client());
  for (bool moved = true; moved;) {
    moved = false;
    if (bufferevent* up = host_.upstream()) moved |= Drain(*upstream_, bufferevent_get_output(up));
    moved |= Drain(*client_, out);
  }
  if (draining_.empty() && !upstream_->Alive()) {
    draining_ =
        upstream_->violation() ? "upstream_" + upstream_->violation()->reason : "upstream_closed";
  }
  if (!draining_.empty() && !drain_started_ && closing_.empty()) {
    StartDraining();
    Flush();  // the answers and the GOAWAY go out (last: may close)
    return;
  }
  // Draining: until every answer is out (GOAWAY only then, as strict clients such as
  // python-h2 read nothing after one).
  if (closing_.empty() && client_->Alive() && !(drain_started_ && streams_.empty())) return;
  if (closing_.empty() && !draining_.empty()) closing_ = draining_;
  if (closing_.empty()) closing_ = client_->violation() ? client_->violation()->reason : "done";
  if (client_->violation()) host_.CountH2(Http2Host::H2Event::kGoAway);
  if (client_->Alive()) {
    // The sandbox broke the protocol: streams still open are reset, then GOAWAY.
    for (auto& [id, s] : streams_) {
      if (!s->response_ended) client_->Reset(id, h2::Session::kCancel);
      AuditOnce(*s);
    }
    std::string bytes = client_->TakeOutput(kRelayHighWater);
    client_->GoAway(client_->violation() ? h2::Session::kEnhanceYourCalm : h2::Session::kNoError);
    bytes += client_->TakeOutput(64 << 10);
    if (!bytes.empty()) evbuffer_add(out, bytes.data(), bytes.size());
  }
  closed_ = true;
  host_.CloseAfterFlush(closing_);
}

bool Http2Relay::Drain(h2::Session& session, evbuffer* out) {
  size_t queued = evbuffer_get_length(out);
  if (queued >= kRelayHighWater) return false;  // resumes from the write callback
  evbuffer* staged = staged_.get();
  if (session.TakeOutput(kRelayHighWater - queued, [staged](std::string_view piece) {
        evbuffer_add(staged, piece.data(), piece.size());
      }) == 0) {
    return false;
  }
  evbuffer_add_buffer(out, staged);  // the chains move, uncopied
  return true;
}

void Http2Relay::StartDraining() {
  drain_started_ = true;
  for (auto& [id, s] : streams_) {
    if (!s->response_started) {
      Refusal r{502, "upstream_closed", "the connection to the upstream ended",
                "retry the request"};
      if (!s->audited) host_.AuditStreamRefused(*s->scope, s->summary, r);
      s->audited = true;
      Answer(*s, r);
    } else if (!s->response_ended) {
      client_->Reset(id, h2::Session::kCancel);  // an answer cut short
    }
  }
}

void Http2Relay::AuditOnce(Stream& s) {
  if (s.audited) return;
  s.audited = true;
  s.summary.duration = duration_cast<milliseconds>(steady_clock::now() - s.started);
  host_.AuditStream(*s.scope, s.summary);
}

void Http2Relay::OnClientRead() {
  if (closed_) return;
  Feed(host_.client(), *client_, "");
  Flush();
}

void Http2Relay::OnClientWrite() { Flush(); }

void Http2Relay::OnClosing() {
  for (auto& [id, s] : streams_) AuditOnce(*s);
}

void Http2Relay::OnClientEof() {
  if (closed_) return;
  // What came with the end is read first: it may break the protocol, which is then the reason.
  if (!Feed(host_.client(), *client_, "")) {
    Flush();
    return;
  }
  closed_ = true;  // (OnClosing writes the records of streams still open)
  host_.Close("client_closed");
}

void Http2Relay::OnUpstreamRead() {
  if (closed_) return;
  Feed(host_.upstream(), *upstream_, "upstream_");
  Flush();
}

void Http2Relay::OnUpstreamWrite() { Flush(); }

void Http2Relay::OnUpstreamEof() {
  if (closed_) return;
  Feed(host_.upstream(), *upstream_, "upstream_");  // what it sent last (GOAWAY, a response's end)
  if (draining_.empty()) draining_ = "upstream_closed";
  Flush();  // last: may close
}

void Http2Relay::OnUpstreamError(bool timeout) {
  if (closed_) return;
  if (draining_.empty()) draining_ = timeout ? "idle_timeout" : "upstream_error";
  Flush();
}

}  // namespace airlock::server
