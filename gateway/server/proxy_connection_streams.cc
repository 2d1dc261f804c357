// ProxyConnection as the host of the HTTP/2 relay: every stream of an inspected h2 connection
// decided, its credentials written and its records kept, as for one HTTP/1.1 request
// (proxy_connection.h, http2_relay.h). On the connection's worker thread.
#include "gateway/audit/chain.h"
#include "gateway/http/denial.h"
#include "gateway/server/proxy_connection.h"
#include "gateway/server/tls_bufferevent.h"

namespace airlock::server {

void ProxyConnection::StartHttp2() {
  // Offered only h2, a sandbox that did not take it speaks something that cannot be relayed.
  if (tls::TlsInspector::Negotiated(SslOf(client_.get())) != tls::AppProtocol::kHttp2) {
    Close("alpn_mismatch");
    return;
  }
  auto relay = Http2Relay::Create(*this);
  if (!relay.ok()) {
    Close("h2_setup_failed");
    return;
  }
  Http2Relay* r = relay.value().get();
  AddConnectionFields(&stream_fields_);  // what every stream's records repeat
  exchange_ = nullptr;
  relay_ = std::move(relay).value();
  request_.Reset();
  g_.metrics.h2_connections++;
  r->Start();
}

void ProxyConnection::CountH2(H2Event event) {
  (event == H2Event::kGoAway ? g_.metrics.h2_goaways : g_.metrics.h2_stream_resets)++;
}

std::unique_ptr<StreamScope> ProxyConnection::NewStream() {
  g_.metrics.h2_streams++;
  return std::make_unique<StreamScope>(CredentialGuard(*g_.sessions, *g_.credentials));
}

audit::Record ProxyConnection::StreamRecord(const char* event, const StreamScope& scope) const {
  audit::Record r(event, stream_fields_);
  if (!scope.decision.rule_id().empty()) r.Set("rule", scope.decision.rule_id());
  return r;
}

CredentialGuard::Scope ProxyConnection::StreamGuardScope(const StreamScope& scope) const {
  CredentialGuard::Scope g;
  g.session = session_ ? &*session_ : nullptr;
  if (scope.decision.allowed() && scope.decision.rule) g.bound = &scope.decision.rule->credentials;
  g.target = &scope.target;
  return g;
}

std::optional<Refusal> ProxyConnection::AdmitStream(http::HttpHead* head, StreamScope* scope) {
  // Each stream is decided by the policies in force when it opens.
  scope->policies = g_.policies.Get();
  // One TLS connection is one destination: :authority must name the SNI it was decided on.
  TargetContext tc{TargetForm::kInspected, target_.port, sni_};
  if (auto refusal = ParseTarget(*head, tc, &scope->target)) {
    DenyStream(*scope, *head, *refusal);
    return refusal;
  }
  scope->decision =
      DecideTarget(*scope->policies, Context(true), scope->target, head->method, dialed_);
  if (auto leak = scope->guard.FindInHead(StreamGuardScope(*scope), head, "")) {
    Refusal r = AuditStreamLeak(*scope, *leak);
    DenyStream(*scope, *head, r);
    return r;
  }
  if (!scope->decision.allowed()) {
    Refusal r = RefusalFor(scope->decision, scope->target);
    DenyStream(*scope, *head, r);
    return r;
  }
  if (auto refusal =
          scope->guard.Inject(StreamGuardScope(*scope), head, &scope->target.origin_target)) {
    DenyStream(*scope, *head, *refusal);
    return refusal;
  }
  if (session_) session_->usage->CountRequest(std::chrono::system_clock::now());
  return std::nullopt;
}

void ProxyConnection::DenyStream(const StreamScope& scope, const http::HttpHead& head,
                                 const Refusal& refusal) {
  RequestSummary s;
  s.method = head.method;
  s.path = audit::RedactTarget(head.target);
  AuditStreamRefused(scope, s, refusal);
}

void ProxyConnection::AuditStreamRefused(const StreamScope& scope, const RequestSummary& summary,
                                         const Refusal& refusal) {
  audit::Record rec = StreamRecord("http.request", scope);
  rec.Set("method", summary.method);
  rec.Set("path", guard_.Scrub(summary.path));
  rec.Set("status", refusal.status);
  rec.Set("decision", "deny");
  rec.Set("reason", refusal.reason);
  rec.Set("bytes_up", summary.bytes_up);  // 0 unless refused while its body was being forwarded
  rec.Set("bytes_down", 0);
  rec.Set("tls", "inspected");
  rec.Set("proto", "h2");
  g_.metrics.CountDecision("deny", refusal.reason);
  g_.audit->Append(std::move(rec));
}

void ProxyConnection::AuditStream(const StreamScope& scope, const RequestSummary& s) {
  audit::Record rec = StreamRecord("http.request", scope);
  rec.Set("method", s.method);
  rec.Set("path", guard_.Scrub(s.path));
  rec.Set("status", s.status);
  rec.Set("decision", std::string(policy::VerdictName(scope.decision.verdict)));
  rec.Set("reason", std::string(policy::ReasonName(scope.decision.reason)));
  rec.Set("bytes_up", s.bytes_up);
  rec.Set("bytes_down", s.bytes_down);
  rec.Set("duration_ms", s.duration.count());
  rec.Set("tls", "inspected");
  rec.Set("proto", "h2");
  if (!scope.guard.injected().empty()) rec.Set("credentials", scope.guard.injected());
  g_.audit->Append(std::move(rec));
}

Refusal ProxyConnection::AuditStreamLeak(const StreamScope& scope,
                                         const CredentialGuard::Leak& leak) {
  audit::Record r = StreamRecord("credential.leak_blocked", scope);
  r.Set("credential", leak.credential);
  r.Set("where", leak.where);
  if (!leak.placeholder_session.empty()) r.Set("placeholder_session", leak.placeholder_session);
  g_.audit->Append(std::move(r));
  return CredentialGuard::LeakRefusal(leak, target_.host);
}

std::optional<Refusal> ProxyConnection::StreamBodyLeak(StreamScope* scope, std::string_view piece) {
  auto leak = scope->guard.FindInBody(StreamGuardScope(*scope), piece);
  if (!leak) return std::nullopt;
  return AuditStreamLeak(*scope, *leak);
}

std::optional<Refusal> ProxyConnection::RewriteStream(StreamScope* scope, http::HttpHead* head,
                                                      std::string* body) {
  return scope->guard.RewriteBody(StreamGuardScope(*scope), head, body);
}

void ProxyConnection::AuditStreamReflection(const StreamScope& scope, const std::string& where) {
  audit::Record r = StreamRecord("credential.reflection_blocked", scope);
  r.Set("credentials", scope.guard.injected());
  r.Set("where", where);
  g_.audit->Append(std::move(r));
}

std::string ProxyConnection::DenialBody(const Refusal& refusal, const StreamScope& scope) {
  return http::RenderDenialBody(ResponseFor(refusal, scope.decision.rule_id()));
}

}  // namespace airlock::server
