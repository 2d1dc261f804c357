// The explicit proxy's connection state machine.
#include "gateway/server/proxy_connection.h"

#include <arpa/inet.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "gateway/audit/chain.h"
#include "gateway/base/base64.h"
#include "gateway/http/denial.h"
#include "gateway/http/serialize.h"
#include "gateway/net/host.h"
#include "gateway/server/sockaddr.h"
#include "gateway/tls/client_hello.h"

namespace airlock::server {
namespace {

constexpr size_t kHighWater = 1 << 20;  // pause reading when the other side has 1 MiB queued
constexpr ev_ssize_t kMaxIo =
    256 << 10;  // bytes per read(2)/write(2); libevent's default is 16 KiB
constexpr size_t kHelloMax = 65536 + 4096;

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

timeval ToTimeval(milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

// Splits "host:port" / "[v6]:port"; false if malformed.
bool SplitAuthority(std::string_view a, uint16_t default_port, std::string* host, uint16_t* port) {
  std::string_view h = a;
  std::string_view p;
  if (!a.empty() && a.front() == '[') {
    size_t close = a.find(']');
    if (close == std::string_view::npos) return false;
    h = a.substr(0, close + 1);
    std::string_view rest = a.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      p = rest.substr(1);
      if (p.empty()) return false;
    }
  } else {
    size_t colon = a.rfind(':');
    if (colon != std::string_view::npos) {
      h = a.substr(0, colon);
      p = a.substr(colon + 1);
      if (p.empty()) return false;
    }
  }
  if (h.empty()) return false;
  *host = std::string(h);
  if (p.empty()) {
    *port = default_port;
    return default_port != 0;
  }
  int v = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
    if (v > 65535) return false;
  }
  if (v == 0) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

}  // namespace

void ProxyConnection::Accept(GatewayState& g, WorkerConnections& w, evutil_socket_t fd,
                             const sockaddr_storage& peer, Mode mode) {
  auto* c = new ProxyConnection(g, w, fd, peer, mode);
  w.live[c->id_] = c;
  g.metrics.active_connections++;
  if (!g.audit->healthy()) {
    c->Deny(503, "audit_unavailable", "the audit log cannot be written; no connection is allowed",
            "retry later; operators: check the audit log's disk");
    return;
  }
  if (mode == Mode::kTransparent) {
    if (!c->original_dst_) {
      c->Deny(400, "no_original_destination", "the connection was not redirected by nftables",
              "connect through the proxy port instead");
      return;
    }
    c->state_ = State::kSniffing;
    timeval sniff = ToTimeval(g.config.sniff_timeout);
    bufferevent_set_timeouts(c->client_.get(), &sniff, nullptr);
  }
  bufferevent_enable(c->client_.get(), EV_READ);
}

ProxyConnection::ProxyConnection(GatewayState& g, WorkerConnections& w, evutil_socket_t fd,
                                 const sockaddr_storage& peer, Mode mode)
    : g_(g),
      w_(w),
      id_(g.next_connection++),
      started_(steady_clock::now()),
      mode_(mode),
      request_(http::MessageParser::Kind::kRequest,
               {g.config.max_request_line, g.config.max_head_bytes, g.config.max_headers}),
      response_(http::MessageParser::Kind::kResponse,
                {g.config.max_request_line, g.config.max_head_bytes, g.config.max_headers}) {
  client_.reset(
      bufferevent_socket_new(w.worker.base(), fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS));
  bufferevent_setcb(client_.get(), OnClientRead, OnClientWrite, OnClientEvent, this);
  bufferevent_set_max_single_read(client_.get(), kMaxIo);
  bufferevent_set_max_single_write(client_.get(), kMaxIo);
  bufferevent_setwatermark(client_.get(), EV_READ, 0, g.config.max_head_bytes + 65536);
  timeval header = ToTimeval(g.config.header_timeout);
  bufferevent_set_timeouts(client_.get(), &header, nullptr);
  peer_addr_ = AddressOf(peer);
  peer_ip_ = peer_addr_ ? peer_addr_->ToString() : "unknown";
  peer_port_ = PortOf(peer);
  if (mode == Mode::kTransparent) {
    sockaddr_storage orig{};
    socklen_t olen = sizeof(orig);
    bool ok = peer.ss_family == AF_INET6
                  ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &orig, &olen) == 0
                  : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &orig, &olen) == 0;
    if (ok) {
      original_dst_ = AddressOf(orig);
      original_port_ = PortOf(orig);
    }
  }
  policies_ = g.policies.Get();
}

ProxyConnection::~ProxyConnection() = default;

audit::Record ProxyConnection::BaseRecord(const char* event) const {
  audit::Record r;
  r["event"] = event;
  r["conn"] = id_;
  if (session_) {
    r["session"] = session_->id;
    r["policy"] = session_->policy;
  }
  r["src"] = peer_ip_;
  r["src_port"] = peer_port_;
  if (!host_.empty()) {
    r["host"] = host_;
    r["port"] = port_;
  }
  if (original_dst_) r["original_ip"] = original_dst_->ToString();
  return r;
}

std::string ProxyConnection::DecisionName(policy::Verdict v) const {
  return std::string(policy::VerdictName(v));
}

void ProxyConnection::AuditOpen(const std::string& decision, const std::string& reason) {
  audit::Record r = BaseRecord("connection.open");
  if (!decision_.rule_id().empty()) r["rule"] = std::string(decision_.rule_id());
  r["decision"] = decision;
  r["reason"] = reason;
  r["proto"] = is_connect_ ? (protocol_ == policy::Protocol::kTcp ? "tcp" : "tls") : "http";
  g_.metrics.CountDecision(decision, reason);
  g_.audit->Append(std::move(r));
}

void ProxyConnection::OpenThenDial() {
  state_ = State::kAuditing;
  bufferevent_disable(client_.get(), EV_READ);
  std::string decision = DecisionName(decision_.verdict);
  std::string reason(policy::ReasonName(decision_.reason));
  audit::Record r = BaseRecord("connection.open");
  if (!decision_.rule_id().empty()) r["rule"] = std::string(decision_.rule_id());
  r["decision"] = decision;
  r["reason"] = reason;
  r["ip"] = allowed_[next_address_].ToString();
  r["proto"] = is_connect_ ? (protocol_ == policy::Protocol::kTcp ? "tcp" : "tls") : "http";
  uint64_t id = id_;
  WorkerConnections* w = &w_;
  bool queued = g_.audit->TryAppend(std::move(r), [w, id] {
    w->worker.Post([w, id] {
      auto it = w->live.find(id);
      if (it != w->live.end() && it->second->state_ == State::kAuditing) it->second->Dial();
    });
  });
  if (!queued) {
    // The attempt cannot be recorded: refuse it (fail closed).
    Deny(503, "audit_unavailable", "the audit log cannot be written; no connection is allowed",
         "retry later; operators: check the audit log's disk");
    return;
  }
  g_.metrics.CountDecision(decision, reason);
  opened_ = true;
}

void ProxyConnection::Deny(int status, const std::string& reason, const std::string& message,
                           const std::string& hint) {
  // A refusal because the log cannot be written is not written to it (that would block this
  // worker on a full queue); it is counted in metrics, and nothing went upstream.
  if (reason == "audit_unavailable") {
    g_.metrics.CountDecision("deny", reason);
  } else if (!opened_) {
    AuditOpen("deny", reason);
  }
  if (mode_ == Mode::kTransparent && protocol_ != policy::Protocol::kHttp) {
    // Not an HTTP conversation: an HTTP answer would be noise. Reset.
    linger lg{1, 0};
    setsockopt(bufferevent_getfd(client_.get()), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    state_ = State::kClosing;
    Close(reason);
    return;
  }
  http::GatewayResponse resp;
  resp.status = status;
  resp.reason = reason;
  resp.message = message;
  resp.hint = hint;
  resp.host = host_;
  resp.port = port_;
  resp.rule = std::string(decision_.rule_id());
  resp.session = session_id();
  std::string out = http::RenderGatewayResponse(resp);
  bufferevent_write(client_.get(), out.data(), out.size());
  CloseAfterFlush(reason);
}

void ProxyConnection::CloseAfterFlush(const std::string& reason) {
  state_ = State::kClosing;
  closing_reason_ = reason;
  bufferevent_disable(client_.get(), EV_READ);
  if (upstream_) upstream_.reset();
  if (evbuffer_get_length(bufferevent_get_output(client_.get())) == 0) Close(reason);
  // Otherwise OnClientWrite closes once everything is written.
}

void ProxyConnection::Close(const std::string& reason) {
  if (opened_) {
    audit::Record r = BaseRecord("connection.close");
    if (!decision_.rule_id().empty()) r["rule"] = std::string(decision_.rule_id());
    if (dialed_) r["ip"] = dialed_->ToString();
    r["bytes_up"] = bytes_up_;
    r["bytes_down"] = bytes_down_;
    r["duration_ms"] = duration_cast<milliseconds>(steady_clock::now() - started_).count();
    r["reason"] = reason;
    g_.audit->Append(std::move(r));
  }
  if (counted_in_session_) session_->usage->connections--;
  g_.metrics.active_connections--;
  w_.live.erase(id_);
  delete this;
}

void ProxyConnection::Terminate(const std::string& reason) {
  if (state_ == State::kClosing) return;
  Close(reason);
}

policy::Request ProxyConnection::MakeRequest(std::optional<net::IpAddress> address) const {
  policy::Request r;
  if (session_) {
    r.session = session_->id;
    r.policy = session_->policy;
    r.usage.connections = session_->usage->connections.load() - (counted_in_session_ ? 1 : 0);
    r.usage.bytes_out = session_->usage->bytes_out.load();
  }
  r.host = host_;
  r.port = port_;
  r.protocol = protocol_;
  r.address = address;
  return r;
}

bool ProxyConnection::StillAllowed(const policy::PolicySet& set) const {
  if (!session_ || host_.empty()) return true;
  auto sess = g_.sessions->Get(session_->id);
  if (!sess) return false;
  policy::Request r = MakeRequest(dialed_);
  r.policy = sess->policy;
  r.usage = {};
  return policy::Decide(set, r).allowed();
}

// Callbacks.

void ProxyConnection::OnClientRead(bufferevent*, void* arg) {
  auto* self = static_cast<ProxyConnection*>(arg);
  switch (self->state_) {
    case State::kSniffing:
      self->Sniff(false);
      break;
    case State::kReadingHead:
      self->HandleHead();
      break;
    case State::kAwaitingHello:
      self->CheckHello();
      break;
    case State::kSendingBody:
      self->PumpRequestBody();
      break;
    case State::kTunnel:
      self->Relay(self->client_.get(), self->upstream_.get(), true);
      break;
    default:
      break;  // bytes wait in the buffer (pipelined requests)
  }
}

void ProxyConnection::OnClientWrite(bufferevent*, void* arg) {
  auto* self = static_cast<ProxyConnection*>(arg);
  if (self->state_ == State::kClosing) {
    self->Close(self->closing_reason_);
    return;
  }
  if (self->state_ == State::kTunnel || self->state_ == State::kAwaitingResponse) {
    // Back-pressure relief: the client drained, read from upstream again.
    if (self->upstream_ && !self->upstream_eof_) bufferevent_enable(self->upstream_.get(), EV_READ);
    if (self->state_ == State::kTunnel) self->MaybeFinishTunnel();
  }
}

void ProxyConnection::OnClientEvent(bufferevent*, short what, void* arg) {
  auto* self = static_cast<ProxyConnection*>(arg);
  if (what & BEV_EVENT_TIMEOUT) {
    if (self->state_ == State::kSniffing) {
      self->Sniff(true);  // the client sent nothing: a server-speaks-first protocol
      return;
    }
    if (self->state_ == State::kReadingHead && !self->host_.empty()) {
      self->Close("idle_timeout");
    } else if (self->state_ == State::kReadingHead) {
      self->Deny(408, "header_timeout", "the request head did not arrive in time",
                 "send the whole request head promptly");
    } else {
      self->Close("idle_timeout");
    }
    return;
  }
  if (what & BEV_EVENT_EOF) {
    if (self->state_ == State::kTunnel) {
      self->client_eof_ = true;
      self->Relay(self->client_.get(), self->upstream_.get(), true);
      self->MaybeFinishTunnel();
      return;
    }
    self->Close("client_closed");
    return;
  }
  self->Close("client_error");
}

void ProxyConnection::OnUpstreamRead(bufferevent*, void* arg) {
  auto* self = static_cast<ProxyConnection*>(arg);
  if (self->state_ == State::kTunnel) {
    self->Relay(self->upstream_.get(), self->client_.get(), false);
  } else if (self->state_ == State::kAwaitingResponse || self->state_ == State::kSendingBody) {
    self->HandleResponse();
  }
}

void ProxyConnection::OnUpstreamWrite(bufferevent*, void* arg) {
  auto* self = static_cast<ProxyConnection*>(arg);
  if (self->state_ == State::kTunnel) {
    if (!self->client_eof_) bufferevent_enable(self->client_.get(), EV_READ);
    self->MaybeFinishTunnel();
  } else if (self->state_ == State::kSendingBody) {
    self->PumpRequestBody();
  }
}

void ProxyConnection::OnUpstreamEvent(bufferevent*, short what, void* arg) {
  auto* self = static_cast<ProxyConnection*>(arg);
  if (what & BEV_EVENT_CONNECTED) {
    self->OnUpstreamConnected();
    return;
  }
  if (self->state_ == State::kConnecting) {
    // This address failed; try the next one that was checked (never a new lookup).
    bool timeout = what & BEV_EVENT_TIMEOUT;
    self->upstream_.reset();
    if (self->next_address_ < self->allowed_.size()) {
      self->Dial();
      return;
    }
    if (timeout) {
      self->Deny(504, "upstream_timeout", "connecting to the upstream timed out",
                 "the destination did not answer; retry later");
    } else {
      self->Deny(502, "upstream_connect_failed", "could not connect to the upstream",
                 "the destination refused the connection or is unreachable");
    }
    return;
  }
  if (what & BEV_EVENT_EOF) {
    self->upstream_eof_ = true;
    if (self->state_ == State::kTunnel) {
      self->Relay(self->upstream_.get(), self->client_.get(), false);
      self->MaybeFinishTunnel();
      return;
    }
    if (self->state_ == State::kAwaitingResponse) {
      self->HandleResponse();
      if (self->state_ == State::kAwaitingResponse) {
        if (self->response_.head_size() > 0 && self->response_.FinishOnClose()) {
          self->FinishExchange();
        } else {
          self->Close("upstream_closed");
        }
      }
      return;
    }
    self->upstream_.reset();
    self->upstream_key_.clear();
    return;
  }
  if (self->state_ == State::kReadingHead) {
    self->upstream_.reset();  // an idle kept-alive upstream went away
    self->upstream_key_.clear();
    return;
  }
  self->Close(what & BEV_EVENT_TIMEOUT ? "idle_timeout" : "upstream_error");
}

// Request head, identity, target.

void ProxyConnection::HandleHead() {
  evbuffer* in = bufferevent_get_input(client_.get());
  size_t len = evbuffer_get_length(in);
  if (len == 0) return;
  size_t want = std::min(len, g_.config.max_head_bytes + 1);
  auto* data = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(want)));
  auto result = request_.ParseHead(std::string_view(data, want));
  if (result == http::MessageParser::HeadResult::kNeedMore) return;
  if (result == http::MessageParser::HeadResult::kError) {
    const auto& e = request_.error();
    Deny(e.status, e.reason, e.message, "send a well-formed HTTP/1.1 request");
    return;
  }
  evbuffer_drain(in, request_.head_size());
  timeval idle = ToTimeval(g_.config.idle_timeout);
  bufferevent_set_timeouts(client_.get(), &idle, &idle);
  if (!ParseTarget()) return;  // first, so that every record names the destination
  if (!Identify()) return;
  DecideAndResolve();
}

void ProxyConnection::DecideAndResolve() {
  // 1st decision: before resolution, on the name.
  policy::Request req = MakeRequest(std::nullopt);
  if (!is_connect_) req.http = policy::HttpRequestInfo{request_.head().method, origin_target_};
  if (!is_connect_ && session_) {
    req.usage.requests_last_minute =
        session_->usage->RequestsLastMinute(std::chrono::system_clock::now());
  }
  decision_ = policy::Decide(*policies_, req);
  if (!decision_.allowed()) {
    Deny(403, std::string(policy::ReasonName(decision_.reason)),
         "airlock denied " + std::string(is_connect_ ? "CONNECT to " : "the request to ") + host_ +
             ":" + std::to_string(port_),
         std::string(policy::ReasonHint(decision_.reason)));
    return;
  }
  if (decision_.rule && decision_.rule->inspect) {
    Deny(403, "inspection_unavailable",
         "the matching rule inspects TLS, which this gateway build cannot do yet",
         "ask the policy author for a rule without inspect, or wait for TLS inspection");
    return;
  }
  if (!is_connect_ && session_) session_->usage->CountRequest(std::chrono::system_clock::now());
  request_started_ = steady_clock::now();
  request_method_ = request_.head().method;
  request_path_ = audit::RedactTarget(origin_target_);

  // Reuse the upstream when the next request goes to the same place.
  if (!is_connect_ && upstream_ && !upstream_key_.empty() &&
      upstream_key_.rfind(host_ + ":" + std::to_string(port_) + ":", 0) == 0) {
    StartHttpRequest();
    return;
  }
  upstream_.reset();
  upstream_key_.clear();
  StartResolve();
}

// Transparent capture.

void ProxyConnection::Sniff(bool deadline_passed) {
  evbuffer* in = bufferevent_get_input(client_.get());
  size_t len = std::min(evbuffer_get_length(in), kHelloMax);
  if (len == 0 && !deadline_passed) return;
  auto* data = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
  std::string_view bytes(data ? data : "", len);
  if (!bytes.empty() && static_cast<uint8_t>(bytes[0]) == 0x16) {
    tls::ClientHello hello;
    tls::HelloStatus st = tls::ParseClientHello(bytes, &hello);
    if (st == tls::HelloStatus::kNeedMore && len < kHelloMax && !deadline_passed) return;
    is_connect_ = true;
    protocol_ = policy::Protocol::kTls;
    port_ = original_port_;
    if (!Identify()) return;
    if (st != tls::HelloStatus::kOk) {
      host_ = original_dst_->ToString();
      Deny(400, "malformed_client_hello", "", "");
      return;
    }
    if (!hello.sni) {
      host_ = original_dst_->ToString();
      Deny(400, "sni_missing", "", "");
      return;
    }
    TransparentTls(*hello.sni);
    return;
  }
  // An HTTP request line starts with an upper-case method and a space.
  size_t sp = bytes.find(' ');
  bool http = sp != std::string_view::npos && sp > 0 && sp <= 16 &&
              std::all_of(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(sp),
                          [](char c) { return c >= 'A' && c <= 'Z'; });
  if (http) {
    protocol_ = policy::Protocol::kHttp;
    state_ = State::kReadingHead;
    timeval header = ToTimeval(g_.config.header_timeout);
    bufferevent_set_timeouts(client_.get(), &header, nullptr);
    HandleHead();
    return;
  }
  TransparentOpaque();
}

void ProxyConnection::TransparentTls(const std::string& sni) {
  // Decided on the SNI; dialled at an address the gateway resolves itself for that name.
  host_ = sni;
  bufferevent_disable(client_.get(), EV_READ);
  timeval idle = ToTimeval(g_.config.idle_timeout);
  bufferevent_set_timeouts(client_.get(), &idle, &idle);
  DecideAndResolve();
}

void ProxyConnection::TransparentOpaque() {
  // No name on the wire: the name the DNS responder gave this session for this address.
  is_connect_ = true;
  protocol_ = policy::Protocol::kTcp;
  port_ = original_port_;
  if (!Identify()) return;
  auto name = g_.dns_mappings.Find(session_->id, *original_dst_);
  if (!name) {
    host_ = original_dst_->ToString();
    Deny(403, "no_dns_mapping", "", "");
    return;
  }
  host_ = *name;
  decision_ = policy::Decide(*policies_, MakeRequest(original_dst_));
  if (!decision_.allowed()) {
    Deny(403, std::string(policy::ReasonName(decision_.reason)), "", "");
    return;
  }
  bufferevent_disable(client_.get(), EV_READ);
  timeval idle = ToTimeval(g_.config.idle_timeout);
  bufferevent_set_timeouts(client_.get(), &idle, &idle);
  allowed_ = {*original_dst_};
  next_address_ = 0;
  OpenThenDial();
}

bool ProxyConnection::Identify() {
  if (session_) return true;  // decided on the first request of the connection
  const std::string* auth =
      mode_ == Mode::kExplicit ? request_.head().Find("Proxy-Authorization") : nullptr;
  if (auth) {
    std::string_view v = *auth;
    if (v.size() > 6 && http::EqualsIgnoreCase(v.substr(0, 6), "Basic ")) {
      auto decoded = Base64Decode(v.substr(6));
      size_t colon = decoded ? decoded->find(':') : std::string::npos;
      if (colon != std::string::npos) {
        session_ = g_.sessions->FindByToken(decoded->substr(0, colon), decoded->substr(colon + 1));
      }
    }
    if (!session_) {
      Deny(407, "unknown_session", "the proxy credentials name no live session",
           "send Proxy-Authorization: Basic base64(session:token) with a live session's token");
      return false;
    }
  } else if (peer_addr_) {
    session_ = g_.sessions->FindBySource(*peer_addr_);
  }
  if (!session_) {
    Deny(407, "unknown_session", "this connection belongs to no session",
         "send Proxy-Authorization: Basic base64(session:token)");
    return false;
  }
  session_->usage->connections++;
  counted_in_session_ = true;
  return true;
}

bool ProxyConnection::ParseTarget() {
  const http::HttpHead& h = request_.head();
  is_connect_ = h.method == "CONNECT";
  if (is_connect_) {
    if (!SplitAuthority(h.target, 0, &host_, &port_)) {
      Deny(400, "bad_connect_target", "CONNECT needs host:port", "use CONNECT host:port");
      return false;
    }
    protocol_ = policy::Protocol::kTls;
    return true;
  }
  std::string_view t = h.target;
  if (mode_ == Mode::kTransparent) {
    // Captured HTTP: origin-form, the host from Host, the port from the original destination.
    const std::string* host_header = h.Find("Host");
    uint16_t hp = 0;
    if (!t.starts_with("/") || !host_header ||
        !SplitAuthority(*host_header, original_port_, &host_, &hp) || hp != original_port_) {
      Deny(400, "host_mismatch", "a captured HTTP request needs a Host header for its port",
           "send Host: name[:port] matching the destination");
      return false;
    }
    port_ = original_port_;
    origin_target_ = std::string(t);
    protocol_ = policy::Protocol::kHttp;
    return true;
  }
  constexpr std::string_view kScheme = "http://";
  if (t.size() < kScheme.size() || !http::EqualsIgnoreCase(t.substr(0, kScheme.size()), kScheme)) {
    Deny(400, "not_absolute_form",
         t.starts_with("/") ? "a proxy request needs an absolute URL (http://host/path)"
                            : "only http:// URLs are forwarded; use CONNECT for https",
         "set HTTP_PROXY/HTTPS_PROXY so that clients send absolute-form requests and CONNECT");
    return false;
  }
  t.remove_prefix(kScheme.size());
  size_t end = t.find_first_of("/?#");
  std::string_view authority = t.substr(0, end);
  if (authority.find('@') != std::string_view::npos) {
    Deny(400, "userinfo_in_url", "URLs with user:password@ are refused",
         "remove the credentials from the URL");
    return false;
  }
  if (!SplitAuthority(authority, 80, &host_, &port_)) {
    Deny(400, "bad_url", "the URL's host or port is malformed", "check the URL");
    return false;
  }
  std::string_view rest = end == std::string_view::npos ? std::string_view() : t.substr(end);
  if (rest.find('#') != std::string_view::npos) {
    Deny(400, "bad_url", "a fragment in a request target", "remove the #fragment");
    return false;
  }
  origin_target_ =
      rest.empty() || rest.front() == '?' ? "/" + std::string(rest) : std::string(rest);
  if (const std::string* host_header = h.Find("Host")) {
    std::string hh;
    uint16_t hp = 0;
    if (!SplitAuthority(*host_header, 80, &hh, &hp) || !http::EqualsIgnoreCase(hh, host_) ||
        hp != port_) {
      Deny(400, "host_mismatch", "the Host header names another host than the URL",
           "send a Host header equal to the URL's authority, or none");
      return false;
    }
  }
  protocol_ = policy::Protocol::kHttp;
  return true;
}

// Resolution and dialing.

void ProxyConnection::StartResolve() {
  state_ = State::kResolving;
  bufferevent_disable(client_.get(), EV_READ);
  net::NormalizedHost nh = net::NormalizeHost(host_);
  if (nh.address) {
    OnResolved(std::vector<net::IpAddress>{*nh.address});
    return;
  }
  uint64_t id = id_;
  WorkerConnections* w = &w_;
  g_.resolver->Resolve(nh.name, [w, id](Result<std::vector<net::IpAddress>> r) {
    w->worker.Post([w, id, r = std::move(r)]() mutable {
      auto it = w->live.find(id);
      if (it != w->live.end()) it->second->OnResolved(std::move(r));
    });
  });
}

void ProxyConnection::OnResolved(Result<std::vector<net::IpAddress>> result) {
  if (!result.ok()) {
    g_.metrics.resolver_errors++;
    Deny(502, "dns_failed", "could not resolve " + host_ + ": " + result.status().message(),
         "check the host name");
    return;
  }
  // 2nd decision, for every address: only checked addresses are ever dialled.
  std::optional<policy::Decision> first_denial;
  allowed_.clear();
  for (const auto& a : result.value()) {
    policy::Request req = MakeRequest(a);
    if (!is_connect_) req.http = policy::HttpRequestInfo{request_method_, origin_target_};
    policy::Decision d = policy::Decide(*policies_, req);
    if (d.allowed()) {
      if (allowed_.empty()) decision_ = d;
      allowed_.push_back(a);
    } else if (!first_denial) {
      first_denial = d;
    }
  }
  if (allowed_.empty()) {
    decision_ = *first_denial;
    Deny(403, std::string(policy::ReasonName(decision_.reason)),
         "airlock denied " + host_ + ":" + std::to_string(port_) + " (it resolves to " +
             result.value().front().ToString() + ")",
         std::string(policy::ReasonHint(decision_.reason)));
    return;
  }
  next_address_ = 0;
  if (mode_ == Mode::kExplicit && is_connect_ && decision_.rule &&
      decision_.rule->protocol != policy::Protocol::kTcp) {
    // TLS: the ClientHello must name the CONNECT host before anything is dialled.
    const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    bufferevent_write(client_.get(), ok, sizeof(ok) - 1);
    state_ = State::kAwaitingHello;
    bufferevent_enable(client_.get(), EV_READ);
    CheckHello();
    return;
  }
  if (is_connect_ && mode_ == Mode::kExplicit) protocol_ = policy::Protocol::kTcp;
  OpenThenDial();
}

void ProxyConnection::CheckHello() {
  evbuffer* in = bufferevent_get_input(client_.get());
  size_t len = std::min(evbuffer_get_length(in), kHelloMax);
  if (len == 0) return;
  auto* data = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
  tls::ClientHello hello;
  tls::HelloStatus st = tls::ParseClientHello(std::string_view(data, len), &hello);
  if (st == tls::HelloStatus::kNeedMore && len < kHelloMax) return;
  std::string reason;
  if (st == tls::HelloStatus::kNotTls) {
    reason = "not_tls";
  } else if (st != tls::HelloStatus::kOk) {
    reason = "malformed_client_hello";
  } else if (!hello.sni) {
    reason = "sni_missing";
  } else {
    net::NormalizedHost sni = net::NormalizeHost(*hello.sni);
    net::NormalizedHost want = net::NormalizeHost(host_);
    if (sni.error != net::HostError::kNone || sni.name != want.name) reason = "sni_mismatch";
  }
  if (!reason.empty()) {
    // After 200 an HTTP answer is impossible: record and drop the tunnel; nothing was dialled.
    AuditOpen("deny", reason);
    state_ = State::kClosing;
    Close(reason);
    return;
  }
  OpenThenDial();
}

void ProxyConnection::Dial() {
  state_ = State::kConnecting;
  bufferevent_disable(client_.get(), EV_READ);
  dialed_ = allowed_[next_address_++];
  socklen_t len = 0;
  sockaddr_storage ss = ToSockaddr(*dialed_, port_, &len);
  upstream_.reset(bufferevent_socket_new(w_.worker.base(), -1,
                                         BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS));
  bufferevent_setcb(upstream_.get(), OnUpstreamRead, OnUpstreamWrite, OnUpstreamEvent, this);
  bufferevent_set_max_single_read(upstream_.get(), kMaxIo);
  bufferevent_set_max_single_write(upstream_.get(), kMaxIo);
  timeval connect = ToTimeval(g_.config.connect_timeout);
  bufferevent_set_timeouts(upstream_.get(), &connect, &connect);
  if (bufferevent_socket_connect(upstream_.get(), reinterpret_cast<sockaddr*>(&ss),
                                 static_cast<int>(len)) != 0) {
    OnUpstreamEvent(upstream_.get(), BEV_EVENT_ERROR, this);
  }
}

void ProxyConnection::OnUpstreamConnected() {
  timeval idle = ToTimeval(g_.config.idle_timeout);
  bufferevent_set_timeouts(upstream_.get(), &idle, &idle);
  upstream_key_ = host_ + ":" + std::to_string(port_) + ":" + dialed_->ToString();
  if (is_connect_) {
    if (protocol_ == policy::Protocol::kTcp && mode_ == Mode::kExplicit) {
      const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
      bufferevent_write(client_.get(), ok, sizeof(ok) - 1);
    }
    state_ = State::kTunnel;
    bufferevent_enable(upstream_.get(), EV_READ);
    bufferevent_enable(client_.get(), EV_READ);
    Relay(client_.get(), upstream_.get(), true);  // the buffered ClientHello, if any
    return;
  }
  StartHttpRequest();
}

// HTTP forwarding.

void ProxyConnection::StartHttpRequest() {
  const http::HttpHead& h = request_.head();
  std::string host_header = host_;
  if (port_ != 80) host_header += ":" + std::to_string(port_);
  std::string head = http::SerializeRequestHead(h, origin_target_, host_header);
  bufferevent_write(upstream_.get(), head.data(), head.size());
  bytes_up_ += head.size();
  response_.Reset();
  response_.set_no_body_expected(h.method == "HEAD");
  state_ = State::kSendingBody;
  bufferevent_enable(upstream_.get(), EV_READ);
  bufferevent_enable(client_.get(), EV_READ);
  PumpRequestBody();
}

void ProxyConnection::PumpRequestBody() {
  if (state_ != State::kSendingBody) return;
  evbuffer* in = bufferevent_get_input(client_.get());
  evbuffer* out = bufferevent_get_output(upstream_.get());
  const bool chunked = request_.head().framing == http::BodyFraming::kChunked;
  while (!request_.complete() && evbuffer_get_length(in) > 0) {
    if (evbuffer_get_length(out) >= kHighWater) {
      bufferevent_disable(client_.get(), EV_READ);  // resumes from OnUpstreamWrite
      return;
    }
    size_t len = std::min<size_t>(evbuffer_get_length(in), 65536);
    auto* data = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
    size_t used = request_.FeedBody(std::string_view(data, len), [&](std::string_view piece) {
      std::string framed = chunked ? http::EncodeChunk(piece) : std::string(piece);
      evbuffer_add(out, framed.data(), framed.size());
      CountBytes(piece.size(), true);
    });
    if (used == http::MessageParser::npos) {
      const auto& e = request_.error();
      Deny(e.status, e.reason, e.message, "send a well-formed request body");
      return;
    }
    evbuffer_drain(in, used);
  }
  bufferevent_enable(client_.get(), EV_READ);
  if (request_.complete()) {
    if (chunked) evbuffer_add(out, http::kLastChunk.data(), http::kLastChunk.size());
    state_ = State::kAwaitingResponse;
    HandleResponse();
  }
}

void ProxyConnection::HandleResponse() {
  evbuffer* in = bufferevent_get_input(upstream_.get());
  evbuffer* out = bufferevent_get_output(client_.get());
  while (evbuffer_get_length(in) > 0) {
    if (response_.head_size() == 0) {
      size_t len = std::min(evbuffer_get_length(in), g_.config.max_head_bytes + 1);
      auto* data = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
      auto r = response_.ParseHead(std::string_view(data, len));
      if (r == http::MessageParser::HeadResult::kNeedMore) return;
      if (r == http::MessageParser::HeadResult::kError) {
        Deny(502, "bad_upstream_response", response_.error().message,
             "the upstream sent a malformed response");
        return;
      }
      evbuffer_drain(in, response_.head_size());
      http::HttpHead& rh = response_.mutable_head();
      if (rh.status >= 100 && rh.status < 200 && rh.status != 101) {
        std::string interim = http::SerializeResponseHead(rh, true);
        evbuffer_add(out, interim.data(), interim.size());
        response_.Reset();
        response_.set_no_body_expected(request_method_ == "HEAD");
        continue;
      }
      bool client_keep = request_.head().keep_alive && request_.head().version_minor == 1;
      upstream_keep_alive_ = rh.keep_alive && rh.framing != http::BodyFraming::kUntilClose;
      if (rh.upgrade && request_.head().upgrade) {
        std::string head = http::SerializeResponseHead(rh, true);
        evbuffer_add(out, head.data(), head.size());
        bytes_down_ += head.size();
        AuditHttpRequest(rh.status);
        state_ = State::kTunnel;  // WebSocket: raw relay from here on
        Relay(upstream_.get(), client_.get(), false);
        Relay(client_.get(), upstream_.get(), true);
        return;
      }
      std::string head = http::SerializeResponseHead(rh, client_keep);
      evbuffer_add(out, head.data(), head.size());
      bytes_down_ += head.size();
      if (response_.complete()) {
        FinishExchange();
        return;
      }
      continue;
    }
    if (evbuffer_get_length(out) >= kHighWater) {
      bufferevent_disable(upstream_.get(), EV_READ);  // resumes from OnClientWrite
      return;
    }
    const bool rechunk = response_.head().framing == http::BodyFraming::kChunked ||
                         response_.head().framing == http::BodyFraming::kUntilClose;
    size_t len = std::min<size_t>(evbuffer_get_length(in), 65536);
    auto* data = reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ssize_t>(len)));
    size_t used = response_.FeedBody(std::string_view(data, len), [&](std::string_view piece) {
      std::string framed = rechunk ? http::EncodeChunk(piece) : std::string(piece);
      evbuffer_add(out, framed.data(), framed.size());
      CountBytes(piece.size(), false);
    });
    if (used == http::MessageParser::npos) {
      Close("bad_upstream_body");
      return;
    }
    evbuffer_drain(in, used);
    if (response_.complete()) {
      FinishExchange();
      return;
    }
  }
}

void ProxyConnection::FinishExchange() {
  const http::HttpHead& rh = response_.head();
  evbuffer* out = bufferevent_get_output(client_.get());
  if (rh.framing == http::BodyFraming::kChunked || rh.framing == http::BodyFraming::kUntilClose) {
    evbuffer_add(out, http::kLastChunk.data(), http::kLastChunk.size());
  }
  AuditHttpRequest(rh.status);

  bool client_keep = request_.head().keep_alive && request_.head().version_minor == 1;
  if (!upstream_keep_alive_) {
    upstream_.reset();
    upstream_key_.clear();
  }
  if (!client_keep) {
    CloseAfterFlush("done");
    return;
  }
  // Next request on this connection (pipelined bytes may already be waiting).
  request_.Reset();
  state_ = State::kReadingHead;
  bufferevent_enable(client_.get(), EV_READ);
  HandleHead();
}

void ProxyConnection::AuditHttpRequest(int status) {
  audit::Record rec = BaseRecord("http.request");
  rec["method"] = request_method_;
  rec["path"] = request_path_;
  rec["status"] = status;
  rec["decision"] = DecisionName(decision_.verdict);
  rec["reason"] = std::string(policy::ReasonName(decision_.reason));
  if (!decision_.rule_id().empty()) rec["rule"] = std::string(decision_.rule_id());
  rec["duration_ms"] = duration_cast<milliseconds>(steady_clock::now() - request_started_).count();
  g_.audit->Append(std::move(rec));
}

void ProxyConnection::CountBytes(size_t n, bool upward) {
  if (upward) {
    bytes_up_ += n;
    g_.metrics.bytes_up += n;
    if (!session_) return;
    uint64_t sent = session_->usage->bytes_out += n;
    const policy::CompiledPolicy* p = decision_.policy;
    if (p && p->policy().limits.bytes_out && sent > *p->policy().limits.bytes_out &&
        p->policy().mode == policy::Mode::kEnforce && !over_budget_) {
      // Over the session's byte budget: end the connection once this callback has returned.
      over_budget_ = true;
      uint64_t id = id_;
      WorkerConnections* w = &w_;
      w_.worker.Post([w, id] {
        auto it = w->live.find(id);
        if (it != w->live.end()) it->second->Terminate("limit_bytes_out");
      });
    }
  } else {
    bytes_down_ += n;
    if (session_) session_->usage->bytes_in += n;
    g_.metrics.bytes_down += n;
  }
}

// Tunnels.

void ProxyConnection::Relay(bufferevent* from, bufferevent* to, bool upward) {
  if (!from || !to) return;
  evbuffer* in = bufferevent_get_input(from);
  size_t n = evbuffer_get_length(in);
  if (n == 0) return;
  evbuffer_add_buffer(bufferevent_get_output(to), in);
  CountBytes(n, upward);
  if (evbuffer_get_length(bufferevent_get_output(to)) >= kHighWater) {
    bufferevent_disable(from, EV_READ);  // resumes from the other side's write callback
  }
}

void ProxyConnection::MaybeFinishTunnel() {
  // Half-close: pass an EOF on once everything before it has been written.
  if (client_eof_ && upstream_ &&
      evbuffer_get_length(bufferevent_get_output(upstream_.get())) == 0) {
    shutdown(bufferevent_getfd(upstream_.get()), SHUT_WR);
  }
  if (upstream_eof_ && evbuffer_get_length(bufferevent_get_output(client_.get())) == 0) {
    shutdown(bufferevent_getfd(client_.get()), SHUT_WR);
  }
  bool up_drained = !upstream_ || evbuffer_get_length(bufferevent_get_output(upstream_.get())) == 0;
  bool down_drained = evbuffer_get_length(bufferevent_get_output(client_.get())) == 0;
  if (client_eof_ && upstream_eof_ && up_drained && down_drained) Close("done");
}

}  // namespace airlock::server
