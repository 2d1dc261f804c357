// A connection's admission, and the dispatch of its callbacks to its relay.
#include "gateway/server/proxy_connection.h"

#include <arpa/inet.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "gateway/audit/chain.h"
#include "gateway/base/base64.h"
#include "gateway/http/denial.h"
#include "gateway/net/host.h"
#include "gateway/server/sockaddr.h"
#include "gateway/server/tls_bufferevent.h"
#include "gateway/server/tunnel_relay.h"
#include "gateway/tls/client_hello.h"

namespace airlock::server {
namespace {

constexpr ev_ssize_t kMaxIo =
    256 << 10;  // bytes per read(2)/write(2); libevent's default is 16 KiB
constexpr size_t kHelloMax = 65536 + 4096;
// Plaintext bytes a TLS filter decrypts into at a time. libevent's filter reserves this much in
// its input before every SSL_read, and a connection waiting for its next request keeps the
// reservation: 96 KiB with the read high-water mark, 4 KiB with this (an idle inspected
// connection's resident memory fell by 5 KiB; bench/README.md, "Idle memory"). A record of
// 16 KiB then takes four SSL_read calls.
constexpr ev_ssize_t kTlsMaxRead = 4096 - 128;

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

Refusal AuditUnavailable() {
  return Refusal{503, "audit_unavailable",
                 "the audit log cannot be written; no connection is allowed",
                 "retry later; operators: check the audit log's disk"};
}

}  // namespace

void ProxyConnection::Accept(GatewayState& g, WorkerConnections& w, evutil_socket_t fd,
                             const sockaddr_storage& peer, Mode mode) {
  auto* c = new ProxyConnection(g, w, fd, peer, mode);
  w.live[c->id_] = c;
  g.metrics.active_connections++;
  if (!g.audit->healthy()) {
    c->Deny(AuditUnavailable());
    return;
  }
  if (mode == Mode::kTransparent) {
    if (!c->original_dst_) {
      c->Deny(Refusal{400, "no_original_destination",
                      "the connection was not redirected by nftables",
                      "connect through the proxy port instead"});
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
                {g.config.max_request_line, g.config.max_head_bytes, g.config.max_headers}),
      guard_(*g.sessions, *g.credentials) {
  SetNoDelay(fd);
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

// Audit records.

audit::Record ProxyConnection::BaseRecord(const char* event, std::string_view rule) const {
  audit::Record r(event);
  AddConnectionFields(&r);
  if (!rule.empty()) r.Set("rule", rule);
  return r;
}

void ProxyConnection::AddConnectionFields(audit::Record* record) const {
  audit::Record& r = *record;
  r.Set("conn", id_);
  if (session_) {
    r.Set("session", session_->id);
    r.Set("policy", session_->policy);
  }
  r.Set("src", peer_ip_);
  r.Set("src_port", peer_port_);
  if (!target_.host.empty()) {
    r.Set("host", guard_.Scrub(target_.host));  // a name can carry one (CONNECT, SNI)
    r.Set("port", target_.port);
  }
  if (original_dst_) r.Set("original_ip", original_dst_->ToString());
}

audit::Record ProxyConnection::BaseRecord(const char* event) const {
  return BaseRecord(event, decision_.rule_id());
}

const char* ProxyConnection::TlsMode() const {
  if (inspected_) return "inspected";
  if (target_.tunnel && target_.protocol == policy::Protocol::kTls) return "passthrough";
  return nullptr;
}

const char* ProxyConnection::ProtoName() const {
  if (inspected_) return "tls";
  if (!target_.tunnel) return "http";
  return target_.protocol == policy::Protocol::kTcp ? "tcp" : "tls";
}

void ProxyConnection::AuditOpen(const std::string& decision, const std::string& reason) {
  audit::Record r = BaseRecord("connection.open");
  r.Set("decision", decision);
  r.Set("reason", reason);
  r.Set("proto", ProtoName());
  if (const char* mode = TlsMode()) r.Set("tls", mode);
  g_.metrics.CountDecision(decision, reason);
  g_.audit->Append(std::move(r));
}

void ProxyConnection::AuditRequest(const RequestSummary& s) {
  audit::Record rec = BaseRecord("http.request");
  rec.Set("method", s.method);
  rec.Set("path", guard_.Scrub(s.path));
  rec.Set("status", s.status);
  rec.Set("decision", std::string(policy::VerdictName(decision_.verdict)));
  rec.Set("reason", std::string(policy::ReasonName(decision_.reason)));
  rec.Set("bytes_up", s.bytes_up);
  rec.Set("bytes_down", s.bytes_down);
  rec.Set("duration_ms", s.duration.count());
  if (inspected_) rec.Set("tls", "inspected");
  if (!guard_.injected().empty()) rec.Set("credentials", guard_.injected());  // never values
  g_.audit->Append(std::move(rec));
}

void ProxyConnection::DenyRequest(const Refusal& refusal, uint64_t bytes_up) {
  audit::Record rec = BaseRecord("http.request");
  rec.Set("method", request_.head().method);
  rec.Set("path", guard_.Scrub(audit::RedactTarget(request_.head().target)));
  rec.Set("status", refusal.status);
  rec.Set("decision", "deny");
  rec.Set("reason", refusal.reason);
  rec.Set("bytes_up", bytes_up);  // 0 unless refused while its body was being forwarded
  rec.Set("bytes_down", 0);
  rec.Set("tls", "inspected");
  g_.metrics.CountDecision("deny", refusal.reason);
  g_.audit->Append(std::move(rec));
  Refuse(refusal);
}

void ProxyConnection::OpenThenDial() {
  state_ = State::kAuditing;
  bufferevent_disable(client_.get(), EV_READ);
  std::string decision(policy::VerdictName(decision_.verdict));
  std::string reason(policy::ReasonName(decision_.reason));
  audit::Record r = BaseRecord("connection.open");
  r.Set("decision", decision);
  r.Set("reason", reason);
  r.Set("ip", allowed_[next_address_].ToString());
  r.Set("proto", ProtoName());
  if (const char* mode = TlsMode()) r.Set("tls", mode);
  uint64_t id = id_;
  WorkerConnections* w = &w_;
  bool queued = g_.audit->TryAppend(std::move(r), [w, id] {
    w->worker.Post([w, id] {
      auto it = w->live.find(id);
      if (it != w->live.end() && it->second->state_ == State::kAuditing) it->second->Dial();
    });
  });
  if (!queued) {
    Deny(AuditUnavailable());  // the attempt cannot be recorded: refuse it (fail closed)
    return;
  }
  g_.metrics.CountDecision(decision, reason);
  opened_ = true;
}

// Ending.

void ProxyConnection::Deny(const Refusal& refusal) {
  // A refusal because the log cannot be written is not written to it (that would block this
  // worker on a full queue); it is counted in metrics, and nothing went upstream.
  if (refusal.reason == "audit_unavailable") {
    g_.metrics.CountDecision("deny", refusal.reason);
  } else if (!opened_) {
    AuditOpen("deny", refusal.reason);
  }
  if (mode_ == Mode::kTransparent && target_.protocol != policy::Protocol::kHttp) {
    // Not an HTTP conversation: an HTTP answer would be noise. Reset.
    linger lg{1, 0};
    setsockopt(bufferevent_getfd(client_.get()), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    state_ = State::kClosing;
    Close(refusal.reason);
    return;
  }
  Refuse(refusal);
}

http::GatewayResponse ProxyConnection::ResponseFor(const Refusal& refusal,
                                                   std::string_view rule) const {
  http::GatewayResponse resp;
  resp.status = refusal.status;
  resp.reason = refusal.reason;
  resp.message = refusal.message;
  resp.hint = refusal.hint;
  resp.host = target_.host;
  resp.port = target_.port;
  resp.rule = std::string(rule);
  resp.session = session_id();
  return resp;
}

void ProxyConnection::Refuse(const Refusal& refusal) {
  std::string out = http::RenderGatewayResponse(ResponseFor(refusal, decision_.rule_id()));
  bufferevent_write(client_.get(), out.data(), out.size());
  CloseAfterFlush(refusal.reason);
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
  if (relay_) relay_->OnClosing();
  if (opened_) {
    audit::Record r = BaseRecord("connection.close");
    if (dialed_) r.Set("ip", dialed_->ToString());
    r.Set("bytes_up", bytes_up_);
    r.Set("bytes_down", bytes_down_);
    r.Set("duration_ms", duration_cast<milliseconds>(steady_clock::now() - started_).count());
    r.Set("reason", reason);
    if (!tls_error_.empty()) r.Set("tls_error", tls_error_);
    if (!client_tls_error_.empty()) r.Set("client_tls_error", client_tls_error_);
    g_.audit->Append(std::move(r));
  }
  if (counted_in_session_) session_->usage->connections--;
  g_.metrics.active_connections--;
  if (sandbox_tls_) {
    // A gateway answer (403, 502) may still sit under the TLS layer: let it reach the client,
    // followed by close_notify.
    tls::TlsInspector::CloseNotify(SslOf(client_.get()));
    FreeTlsAfterFlush(std::move(client_), ToTimeval(g_.config.connect_timeout), &w_.lingering);
  }
  w_.live.erase(id_);
  delete this;
}

void ProxyConnection::Terminate(const std::string& reason) {
  if (state_ == State::kClosing) return;
  Close(reason);
}

void ProxyConnection::DropUpstream() {
  upstream_.reset();
  upstream_key_.clear();
}

// Decisions.

DecisionContext ProxyConnection::Context(bool count_request) const {
  DecisionContext c;
  if (!session_) return c;
  c.session = session_->id;
  c.policy = session_->policy;
  c.usage.connections = session_->usage->connections.load() - (counted_in_session_ ? 1 : 0);
  c.usage.bytes_out = session_->usage->bytes_out.load();
  if (count_request) {
    c.usage.requests_last_minute =
        session_->usage->RequestsLastMinute(std::chrono::system_clock::now());
  }
  return c;
}

bool ProxyConnection::StillAllowed(const policy::PolicySet& set) const {
  if (!session_ || target_.host.empty()) return true;
  auto sess = g_.sessions->Get(session_->id);
  if (!sess) return false;
  DecisionContext c{session_->id, sess->policy, {}};
  return DecideTarget(set, c, target_, "", dialed_).allowed();
}

ProxyConnection::Admission ProxyConnection::AdmitRequest(const http::HttpHead& head) {
  // Each request is decided by the policies in force now: a reload that narrows a rule's
  // methods or paths applies to the next request of a kept-alive connection.
  policies_ = g_.policies.Get();
  guard_.StartRequest();
  if (inspected_) return AdmitInspected(head);
  TargetContext tc{
      mode_ == Mode::kTransparent ? TargetForm::kCaptured : TargetForm::kProxy, original_port_, {}};
  if (auto refusal = ParseTarget(head, tc, &target_)) {
    Deny(*refusal);
    return Admission::kRefused;
  }
  return AdmitTarget();
}

ProxyConnection::Admission ProxyConnection::AdmitTarget() {
  // 1st decision: before resolution, on the name.
  std::string_view method = target_.tunnel ? std::string_view() : request_.head().method;
  decision_ = DecideTarget(*policies_, Context(!method.empty()), target_, method, std::nullopt);
  // Cleartext or a tunnel's name: no credential may travel here, so any placeholder is a leak.
  if (FindLeak(target_.tunnel ? nullptr : &request_.head())) return Admission::kRefused;
  if (!decision_.allowed()) {
    Deny(RefusalFor(decision_, target_));
    return Admission::kRefused;
  }
  inspected_ = target_.tunnel && target_.protocol == policy::Protocol::kTls && decision_.rule &&
               decision_.rule->inspect;
  if (!method.empty() && session_) {
    session_->usage->CountRequest(std::chrono::system_clock::now());
  }
  // Reuse the upstream when the next request goes to the same place, and the address it is
  // connected to is still allowed (a reload may have taken it away).
  std::string key = target_.host + ":" + std::to_string(target_.port);
  if (!target_.tunnel && upstream_ && upstream_key_ == key && dialed_ &&
      DecideTarget(*policies_, Context(false), target_, method, dialed_).allowed()) {
    return Admission::kForward;
  }
  DropUpstream();
  StartResolve();
  return state_ == State::kClosing ? Admission::kRefused : Admission::kPending;
}

ProxyConnection::Admission ProxyConnection::AdmitInspected(const http::HttpHead& head) {
  // One TLS connection is one destination: the request must name the SNI it was decided on.
  TargetContext tc{TargetForm::kInspected, target_.port, sni_};
  Target t;
  if (auto refusal = ParseTarget(head, tc, &t)) {
    DenyRequest(*refusal);
    return Admission::kRefused;
  }
  target_ = std::move(t);
  if (upstream_failure_) {
    DenyRequest(*upstream_failure_);
    return Admission::kRefused;
  }
  decision_ = DecideTarget(*policies_, Context(true), target_, head.method, dialed_);
  if (FindLeak(&head)) return Admission::kRefused;
  if (!decision_.allowed()) {
    DenyRequest(RefusalFor(decision_, target_));
    return Admission::kRefused;
  }
  if (!InjectCredentials()) return Admission::kRefused;
  if (session_) session_->usage->CountRequest(std::chrono::system_clock::now());
  if (upstream_) return Admission::kForward;
  // The upstream closed after the last response: dial the checked addresses again.
  next_address_ = 0;
  Dial();
  return Admission::kPending;
}

// Credentials (docs/CREDENTIALS.md): the guard decides and rewrites; the records and answers
// are written here.

CredentialGuard::Scope ProxyConnection::GuardScope() const {
  CredentialGuard::Scope scope;
  scope.session = session_ ? &*session_ : nullptr;
  if (inspected_ && decision_.allowed() && decision_.rule) {
    scope.bound = &decision_.rule->credentials;
  }
  scope.target = &target_;
  return scope;
}

Refusal ProxyConnection::AuditLeak(const CredentialGuard::Leak& leak) {
  audit::Record r = BaseRecord("credential.leak_blocked");
  r.Set("credential", leak.credential);
  r.Set("where", leak.where);
  if (!leak.placeholder_session.empty()) r.Set("placeholder_session", leak.placeholder_session);
  g_.audit->Append(std::move(r));
  return CredentialGuard::LeakRefusal(leak, target_.host);
}

bool ProxyConnection::FindLeak(const http::HttpHead* head) {
  std::string_view name_where;
  if (target_.tunnel) {
    name_where = target_.protocol == policy::Protocol::kTls && mode_ == Mode::kTransparent
                     ? "sni"
                     : "connect";
  }
  auto leak = guard_.FindInHead(GuardScope(), head, name_where);
  if (!leak) return false;
  RefuseForwarded(AuditLeak(*leak), 0);
  return true;
}

std::optional<Refusal> ProxyConnection::RequestBodyLeak(std::string_view piece) {
  auto leak = guard_.FindInBody(GuardScope(), piece);
  if (!leak) return std::nullopt;
  return AuditLeak(*leak);
}

size_t ProxyConnection::WholeBodyLimit() { return guard_.WholeBodyLimit(); }

std::optional<Refusal> ProxyConnection::RewriteRequest(http::HttpHead* head, std::string* body) {
  return guard_.RewriteBody(GuardScope(), head, body);
}

void ProxyConnection::RefuseForwarded(const Refusal& refusal, uint64_t bytes_up) {
  if (inspected_) {
    DenyRequest(refusal, bytes_up);
  } else {
    Deny(refusal);
  }
}

std::unique_ptr<credentials::ReflectionFilter> ProxyConnection::ResponseFilter() {
  return guard_.ResponseFilter();
}

void ProxyConnection::AuditReflection(const std::string& where) {
  audit::Record r = BaseRecord("credential.reflection_blocked");
  r.Set("credentials", guard_.injected());
  r.Set("where", where);
  g_.audit->Append(std::move(r));
}

bool ProxyConnection::InjectCredentials() {
  auto refusal = guard_.Inject(GuardScope(), &request_.mutable_head(), &target_.origin_target);
  if (refusal) DenyRequest(*refusal);
  return !refusal;
}

// Callbacks: admission phases here, everything after the dial to the relay.

void ProxyConnection::OnClientRead(bufferevent*, void* arg) {
  auto* self = static_cast<ProxyConnection*>(arg);
  switch (self->state_) {
    case State::kSniffing:
      self->Sniff(false);
      break;
    case State::kReadingHead:
      self->HandleFirstHead();
      break;
    case State::kAwaitingHello:
      self->CheckHello();
      break;
    case State::kRelaying:
      self->relay_->OnClientRead();
      break;
    default:
      break;  // bytes wait in the buffer
  }
}

void ProxyConnection::OnClientWrite(bufferevent*, void* arg) {
  auto* self = static_cast<ProxyConnection*>(arg);
  if (self->state_ == State::kClosing) {
    // A deferred callback may come from an earlier drain, after more was queued: wait for it.
    if (evbuffer_get_length(bufferevent_get_output(self->client_.get())) == 0) {
      self->Close(self->closing_reason_);
    }
  } else if (self->state_ == State::kRelaying) {
    self->relay_->OnClientWrite();
  }
}

void ProxyConnection::OnClientEvent(bufferevent*, short what, void* arg) {
  auto* self = static_cast<ProxyConnection*>(arg);
  if (what & BEV_EVENT_CONNECTED) {  // the sandbox's TLS handshake is done
    self->sandbox_tls_ = true;
    timeval idle = ToTimeval(self->g_.config.idle_timeout);
    bufferevent_set_timeouts(self->client_.get(), &idle, &idle);
    self->StartRelay();
    return;
  }
  if (self->state_ == State::kSandboxTls) {
    // Most often a sandbox that does not trust the gateway's CA ("tlsv1 alert unknown ca").
    if (!(what & BEV_EVENT_TIMEOUT)) {
      self->client_tls_error_ = tls::TlsInspector::ErrorReason(TlsErrorOf(self->client_.get()));
    }
    self->Close(what & BEV_EVENT_TIMEOUT ? "client_tls_timeout" : "client_tls_failed");
    return;
  }
  if (what & BEV_EVENT_TIMEOUT) {
    if (self->state_ == State::kSniffing) {
      self->Sniff(true);  // the client sent nothing: a server-speaks-first protocol
    } else if (self->state_ == State::kReadingHead) {
      self->Deny(Refusal{408, "header_timeout", "the request head did not arrive in time",
                         "send the whole request head promptly"});
    } else {
      self->Close("idle_timeout");
    }
    return;
  }
  if (what & BEV_EVENT_EOF) {
    if (self->state_ == State::kRelaying) {
      self->relay_->OnClientEof();
    } else {
      self->Close("client_closed");
    }
    return;
  }
  self->Close("client_error");
}

void ProxyConnection::OnUpstreamRead(bufferevent*, void* arg) {
  auto* self = static_cast<ProxyConnection*>(arg);
  if (self->state_ == State::kRelaying) self->relay_->OnUpstreamRead();
}

void ProxyConnection::OnUpstreamWrite(bufferevent*, void* arg) {
  auto* self = static_cast<ProxyConnection*>(arg);
  if (self->state_ == State::kRelaying) self->relay_->OnUpstreamWrite();
}

void ProxyConnection::OnUpstreamEvent(bufferevent*, short what, void* arg) {
  auto* self = static_cast<ProxyConnection*>(arg);
  if (what & BEV_EVENT_CONNECTED) {
    self->OnUpstreamConnected();
    return;
  }
  if (self->state_ == State::kUpstreamTls) {
    self->OnUpstreamTlsFailed(what);
    return;
  }
  if (self->state_ == State::kConnecting) {
    // This address failed; try the next one that was checked (never a new lookup).
    bool timeout = what & BEV_EVENT_TIMEOUT;
    self->upstream_.reset();
    Refusal failed =
        timeout ? Refusal{504, "upstream_timeout", "connecting to the upstream timed out",
                          "the destination did not answer; retry later"}
                : Refusal{502, "upstream_connect_failed", "could not connect to the upstream",
                          "the destination refused the connection or is unreachable"};
    if (self->next_address_ < self->allowed_.size()) {
      self->Dial();
    } else if (self->inspected_) {
      self->FailInspected(failed);
    } else {
      self->Deny(failed);
    }
    return;
  }
  if (self->state_ != State::kRelaying) return;
  if (what & BEV_EVENT_EOF) {
    self->relay_->OnUpstreamEof();
  } else {
    self->relay_->OnUpstreamError(what & BEV_EVENT_TIMEOUT);
  }
}

// The first request head, identity, target.

void ProxyConnection::HandleFirstHead() {
  auto result =
      ReadRequestHead(bufferevent_get_input(client_.get()), request_, g_.config.max_head_bytes);
  if (result == http::MessageParser::HeadResult::kNeedMore) return;
  if (result == http::MessageParser::HeadResult::kError) {
    const auto& e = request_.error();
    Deny(Refusal{e.status, e.reason, e.message, "send a well-formed HTTP/1.1 request"});
    return;
  }
  timeval idle = ToTimeval(g_.config.idle_timeout);
  bufferevent_set_timeouts(client_.get(), &idle, &idle);
  // The target first, so that every record names the destination.
  TargetContext tc{
      mode_ == Mode::kTransparent ? TargetForm::kCaptured : TargetForm::kProxy, original_port_, {}};
  if (auto refusal = ParseTarget(request_.head(), tc, &target_)) {
    Deny(*refusal);
    return;
  }
  if (!Identify()) return;
  AdmitTarget();
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
      Deny(Refusal{407, "unknown_session", "the proxy credentials name no live session",
                   "send Proxy-Authorization: Basic base64(session:token) with a live session's "
                   "token"});
      return false;
    }
  } else if (peer_addr_) {
    session_ = g_.sessions->FindBySource(*peer_addr_);
  }
  if (!session_) {
    Deny(Refusal{407, "unknown_session", "this connection belongs to no session",
                 "send Proxy-Authorization: Basic base64(session:token)"});
    return false;
  }
  session_->usage->connections++;
  counted_in_session_ = true;
  return true;
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
    client_offers_h2_ = st == tls::HelloStatus::kOk && tls::OffersHttp2(hello.alpn);
    target_.tunnel = true;
    target_.protocol = policy::Protocol::kTls;
    target_.port = original_port_;
    if (!Identify()) return;
    if (st != tls::HelloStatus::kOk || !hello.sni) {
      target_.host = original_dst_->ToString();
      Deny(Refusal{400, st != tls::HelloStatus::kOk ? "malformed_client_hello" : "sni_missing", "",
                   ""});
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
    target_.protocol = policy::Protocol::kHttp;
    state_ = State::kReadingHead;
    timeval header = ToTimeval(g_.config.header_timeout);
    bufferevent_set_timeouts(client_.get(), &header, nullptr);
    HandleFirstHead();
    return;
  }
  TransparentOpaque();
}

void ProxyConnection::TransparentTls(const std::string& sni) {
  // Decided on the SNI; dialled at an address the gateway resolves itself for that name.
  target_.host = sni;
  sni_ = sni;
  bufferevent_disable(client_.get(), EV_READ);
  timeval idle = ToTimeval(g_.config.idle_timeout);
  bufferevent_set_timeouts(client_.get(), &idle, &idle);
  AdmitTarget();
}

void ProxyConnection::TransparentOpaque() {
  // No name on the wire: the name the DNS responder gave this session for this address.
  target_.tunnel = true;
  target_.protocol = policy::Protocol::kTcp;
  target_.port = original_port_;
  if (!Identify()) return;
  auto name = g_.dns_mappings.Find(session_->id, *original_dst_);
  if (!name) {
    target_.host = original_dst_->ToString();
    Deny(Refusal{403, "no_dns_mapping", "", ""});
    return;
  }
  target_.host = *name;
  decision_ = DecideTarget(*policies_, Context(false), target_, "", original_dst_);
  if (!decision_.allowed()) {
    Deny(Refusal{403, std::string(policy::ReasonName(decision_.reason)), "", ""});
    return;
  }
  bufferevent_disable(client_.get(), EV_READ);
  timeval idle = ToTimeval(g_.config.idle_timeout);
  bufferevent_set_timeouts(client_.get(), &idle, &idle);
  allowed_ = {*original_dst_};
  next_address_ = 0;
  OpenThenDial();
}

// Resolution and dialling.

void ProxyConnection::StartResolve() {
  state_ = State::kResolving;
  bufferevent_disable(client_.get(), EV_READ);
  net::NormalizedHost nh = net::NormalizeHost(target_.host);
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
    Deny(Refusal{502, "dns_failed",
                 "could not resolve " + target_.host + ": " + result.status().message(),
                 "check the host name"});
    return;
  }
  // 2nd decision, for every address: only checked addresses are ever dialled.
  std::string_view method = target_.tunnel ? std::string_view() : request_.head().method;
  std::optional<policy::Decision> first_denial;
  allowed_.clear();
  for (const auto& a : result.value()) {
    policy::Decision d = DecideTarget(*policies_, Context(false), target_, method, a);
    if (d.allowed()) {
      if (allowed_.empty()) decision_ = d;
      allowed_.push_back(a);
    } else if (!first_denial) {
      first_denial = d;
    }
  }
  if (allowed_.empty()) {
    decision_ = *first_denial;
    Deny(Refusal{403, std::string(policy::ReasonName(decision_.reason)),
                 "airlock denied " + target_.host + ":" + std::to_string(target_.port) +
                     " (it resolves to " + result.value().front().ToString() + ")",
                 std::string(policy::ReasonHint(decision_.reason))});
    return;
  }
  next_address_ = 0;
  if (mode_ == Mode::kExplicit && target_.tunnel && decision_.rule &&
      decision_.rule->protocol != policy::Protocol::kTcp) {
    // TLS: the ClientHello must name the CONNECT host before anything is dialled.
    const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    bufferevent_write(client_.get(), ok, sizeof(ok) - 1);
    state_ = State::kAwaitingHello;
    bufferevent_enable(client_.get(), EV_READ);
    CheckHello();
    return;
  }
  if (target_.tunnel && mode_ == Mode::kExplicit) target_.protocol = policy::Protocol::kTcp;
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
  } else if (!SameHost(*hello.sni, target_.host)) {
    reason = "sni_mismatch";
  }
  if (reason.empty()) {
    sni_ = *hello.sni;
    client_offers_h2_ = tls::OffersHttp2(hello.alpn);
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
  sockaddr_storage ss = ToSockaddr(*dialed_, target_.port, &len);
  // Made here rather than by libevent so that it is close-on-exec: a credential helper spawned
  // meanwhile must not hold it (the connection would outlive its close, and with epoll's change
  // list a closed descriptor another process still holds would stay registered).
  evutil_socket_t fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  upstream_.reset(bufferevent_socket_new(w_.worker.base(), fd,
                                         BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS));
  bufferevent_setcb(upstream_.get(), OnUpstreamRead, OnUpstreamWrite, OnUpstreamEvent, this);
  bufferevent_set_max_single_read(upstream_.get(), kMaxIo);
  bufferevent_set_max_single_write(upstream_.get(), kMaxIo);
  timeval connect = ToTimeval(g_.config.connect_timeout);
  bufferevent_set_timeouts(upstream_.get(), &connect, &connect);
  if (fd < 0 || bufferevent_socket_connect(upstream_.get(), reinterpret_cast<sockaddr*>(&ss),
                                           static_cast<int>(len)) != 0) {
    OnUpstreamEvent(upstream_.get(), BEV_EVENT_ERROR, this);
  }
}

void ProxyConnection::OnUpstreamConnected() {
  if (state_ == State::kConnecting) SetNoDelay(bufferevent_getfd(upstream_.get()));
  if (inspected_ && state_ == State::kConnecting) {
    StartUpstreamTls();
    return;
  }
  if (inspected_ && !sandbox_tls_) {
    app_protocol_ = tls::TlsInspector::Negotiated(SslOf(upstream_.get()));
  }
  timeval idle = ToTimeval(g_.config.idle_timeout);
  bufferevent_set_timeouts(upstream_.get(), &idle, &idle);
  upstream_key_ = target_.host + ":" + std::to_string(target_.port);
  if (target_.tunnel && target_.protocol == policy::Protocol::kTcp && mode_ == Mode::kExplicit) {
    const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    bufferevent_write(client_.get(), ok, sizeof(ok) - 1);
  }
  StartRelay();
}

// Inspection: TLS terminated on both ends.

void ProxyConnection::StartUpstreamTls() {
  state_ = State::kUpstreamTls;
  // h2 is offered only on the first dial, when the sandbox's protocol is not chosen yet.
  auto ssl = g_.tls->NewUpstreamSide(target_.host, client_offers_h2_ && !sandbox_tls_);
  if (!ssl.ok()) {
    FailInspected(Refusal{502, "upstream_tls_failed", ssl.status().message(), ""});
    return;
  }
  // The socket under TLS idles like any relay; the handshake has its own deadline below.
  timeval idle = ToTimeval(g_.config.idle_timeout);
  bufferevent_set_timeouts(upstream_.get(), &idle, &idle);
  BufferEventPtr tls =
      WrapTls(w_.worker.base(), std::move(upstream_), ssl.value(), TlsRole::kClient);
  if (!tls) {
    tls::TlsInspector::Discard(ssl.value());
    FailInspected(Refusal{502, "upstream_tls_failed", "cannot start TLS to the upstream", ""});
    return;
  }
  upstream_ = std::move(tls);
  bufferevent_setcb(upstream_.get(), OnUpstreamRead, OnUpstreamWrite, OnUpstreamEvent, this);
  bufferevent_set_max_single_read(upstream_.get(), kTlsMaxRead);
  bufferevent_set_max_single_write(upstream_.get(), kMaxIo);
  timeval handshake = ToTimeval(g_.config.connect_timeout);
  bufferevent_set_timeouts(upstream_.get(), &handshake, &handshake);
  bufferevent_enable(upstream_.get(), EV_READ | EV_WRITE);
}

void ProxyConnection::OnUpstreamTlsFailed(short what) {
  tls::UpstreamTlsFailure f =
      what & BEV_EVENT_TIMEOUT
          ? tls::UpstreamTlsFailure{"handshake_timeout",
                                    "the upstream did not complete the TLS handshake in time"}
          : tls::TlsInspector::DescribeFailure(SslOf(upstream_.get()), TlsErrorOf(upstream_.get()));
  upstream_.reset();
  tls_error_ = f.code;
  FailInspected(Refusal{502, "upstream_tls_failed", f.message,
                        "the destination's certificate or TLS setup was refused; it is not "
                        "retried without verification"});
}

void ProxyConnection::FailInspected(const Refusal& refusal) {
  upstream_failure_ = refusal;
  if (!sandbox_tls_) {
    StartSandboxTls();  // the next request is answered inside TLS
  } else {
    state_ = State::kRelaying;
    DenyRequest(refusal);  // the request waiting for a new upstream
  }
}

void ProxyConnection::StartSandboxTls() {
  state_ = State::kSandboxTls;
  auto ssl = g_.tls->NewSandboxSide(sni_, app_protocol_);
  if (!ssl.ok()) {
    Close("tls_setup_failed");
    return;
  }
  BufferEventPtr tls = WrapTls(w_.worker.base(), std::move(client_), ssl.value(), TlsRole::kServer);
  if (!tls) {
    tls::TlsInspector::Discard(ssl.value());
    Close("tls_setup_failed");
    return;
  }
  client_ = std::move(tls);
  bufferevent_setcb(client_.get(), OnClientRead, OnClientWrite, OnClientEvent, this);
  bufferevent_set_max_single_read(client_.get(), kTlsMaxRead);
  bufferevent_set_max_single_write(client_.get(), kMaxIo);
  bufferevent_setwatermark(client_.get(), EV_READ, 0, g_.config.max_head_bytes + 65536);
  timeval handshake = ToTimeval(g_.config.header_timeout);
  bufferevent_set_timeouts(client_.get(), &handshake, &handshake);
  bufferevent_enable(client_.get(), EV_READ | EV_WRITE);
}

void ProxyConnection::StartRelay() {
  if (inspected_ && !sandbox_tls_) {
    StartSandboxTls();  // the upstream is verified; now the sandbox's handshake
    return;
  }
  state_ = State::kRelaying;
  if (exchange_ && !target_.tunnel) {
    exchange_->SendRequest();  // the exchange was waiting for this upstream
    return;
  }
  if (target_.tunnel && !inspected_) {
    std::unique_ptr<Tunnel> tunnel = MakeTunnel(*this);
    Tunnel* t = tunnel.get();
    exchange_ = nullptr;
    relay_ = std::move(tunnel);
    t->Start();  // the buffered ClientHello, if any
    return;
  }
  if (inspected_ && app_protocol_ == tls::AppProtocol::kHttp2) {
    StartHttp2();
    return;
  }
  auto exchange =
      std::make_unique<Http1Exchange>(*this, request_, response_, g_.config.max_head_bytes);
  exchange_ = exchange.get();
  relay_ = std::move(exchange);
  if (inspected_) {
    request_.Reset();           // the CONNECT's head, if any, is done with
    exchange_->ReadNextHead();  // requests arrive inside the sandbox's TLS
  } else {
    exchange_->SendRequest();
  }
}

// Byte accounting.

void ProxyConnection::CountHead(size_t n, bool upward) { (upward ? bytes_up_ : bytes_down_) += n; }

void ProxyConnection::CountSpliced(size_t n) { g_.metrics.spliced_bytes += n; }

bool ProxyConnection::CountBytes(size_t n, bool upward) {
  if (!upward) {
    bytes_down_ += n;
    if (session_) session_->usage->bytes_in += n;
    g_.metrics.bytes_down += n;
    return true;
  }
  bytes_up_ += n;
  g_.metrics.bytes_up += n;
  if (!session_) return true;
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
  return !over_budget_;
}

}  // namespace airlock::server
