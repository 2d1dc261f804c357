// Http2Relay: the HTTP/2 relay inside inspected TLS, when both the sandbox and the upstream
// chose h2 in ALPN (the gateway offers the sandbox only what the upstream chose, so nothing is
// translated). Every stream is a request of its own: decided by its host with method, path and
// :authority (which must name the SNI), its credentials written, its body scanned for
// placeholders, its response filtered for reflected credentials, and its own http.request
// record; a refused stream is answered on that stream with the JSON denial and the connection
// lives on. Bodies and trailers are relayed stream to stream, and a stream's window reopens
// only as the other side takes its bytes, so a slow reader slows its writer, not the gateway's
// memory. A peer that breaks HTTP/2 or floods it (h2/session.h) gets GOAWAY and the connection
// closes with the violation as its reason. Lives on its connection's worker thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "gateway/credentials/reflection.h"
#include "gateway/h2/session.h"
#include "gateway/http/http_head.h"
#include "gateway/server/credential_guard.h"
#include "gateway/server/http_exchange.h"
#include "gateway/server/relay.h"
#include "gateway/server/request_checks.h"

namespace airlock::server {

// One stream's request as its host decided it: where it goes, the decision (with the policy
// set it points into, kept alive) and its credentials.
struct StreamScope {
  explicit StreamScope(CredentialGuard g) : guard(std::move(g)) {}
  Target target;
  std::shared_ptr<const policy::PolicySet> policies;
  policy::Decision decision;
  CredentialGuard guard;
};

class Http2Host : public virtual RelayHost {
 public:
  virtual std::unique_ptr<StreamScope> NewStream() = 0;
  // Decides a stream's request (`head`: method, origin-form target, Host from :authority) and
  // writes the credentials its rule binds into `head` and scope->target. A refusal has its
  // records written: answer it on the stream.
  virtual std::optional<Refusal> AdmitStream(http::HttpHead* head, StreamScope* scope) = 0;
  // The next piece of an admitted stream's body: a refusal (its records written) when it
  // carries a placeholder that may not go where the stream goes.
  virtual std::optional<Refusal> StreamBodyLeak(StreamScope* scope, std::string_view piece) = 0;
  // The whole body of such a stream is in: the host may rewrite head and body, or refuse.
  virtual std::optional<Refusal> RewriteStream(StreamScope* scope, http::HttpHead* head,
                                               std::string* body) = 0;
  // A stream refused after its admission (body leak, rewrite, 413): its http.request record.
  virtual void AuditStreamRefused(const StreamScope& scope, const RequestSummary& summary,
                                  const Refusal& refusal) = 0;
  virtual void AuditStream(const StreamScope& scope, const RequestSummary& summary) = 0;
  virtual void AuditStreamReflection(const StreamScope& scope, const std::string& where) = 0;
  // The JSON body of a gateway answer on a stream (http/denial.h).
  virtual std::string DenialBody(const Refusal& refusal, const StreamScope& scope) = 0;
  // Ends the connection once the client's output is written.
  virtual void CloseAfterFlush(const std::string& reason) = 0;
  enum class H2Event { kStreamReset, kGoAway };
  virtual void CountH2(H2Event event) = 0;
};

class Http2Relay : public Relay, private h2::Handler {
 public:
  // Fails when nghttp2 cannot set up its sessions.
  static Result<std::unique_ptr<Http2Relay>> Create(Http2Host& host);
  ~Http2Relay() override;

  // Reads what the sandbox has sent already and sends both sides' SETTINGS. May close the
  // connection: call last.
  void Start();

  void OnClientRead() override;
  void OnClientWrite() override;
  void OnClientEof() override;
  void OnUpstreamRead() override;
  void OnUpstreamWrite() override;
  void OnUpstreamEof() override;
  void OnUpstreamError(bool timeout) override;
  void OnClosing() override;

 private:
  struct Stream;
  // The sandbox's session and the upstream's call into the same relay: a Handler for each.
  class UpstreamHandler;

  explicit Http2Relay(Http2Host& host);

  // h2::Handler for the sandbox's session.
  void OnHeaders(int32_t id, h2::HeadersKind kind, h2::Fields fields, bool end) override;
  void OnData(int32_t id, std::string_view data) override;
  void OnEndStream(int32_t id) override;
  void OnBodySent(int32_t id, size_t n) override;
  void OnStreamClose(int32_t id, uint32_t error_code) override;
  void OnRefused(int32_t id, uint32_t error_code, h2::Fields partial) override;
  // The same for the upstream's session.
  void OnUpstreamHeaders(int32_t id, h2::HeadersKind kind, h2::Fields fields, bool end);
  void OnUpstreamData(int32_t id, std::string_view data);
  void OnUpstreamEndStream(int32_t id);
  void OnUpstreamBodySent(int32_t id, size_t n);
  void OnUpstreamStreamClose(int32_t id, uint32_t error_code);

  void Admit(Stream& s, h2::Fields fields, bool end);
  void SendRequest(Stream& s);
  // Reopens the sandbox's window for request bytes of `s` that will not be sent upstream (the
  // connection's window would otherwise shrink for good), and gives back what it held.
  void ReleaseUp(Stream& s);
  // The upstream is gone: streams without an answer get a 502 and answers cut short a reset;
  // new streams are answered 502; the connection ends (with GOAWAY) once every answer has
  // reached the sandbox.
  void StartDraining();
  // Answers `s` on its stream with a gateway response and forgets the rest of its request.
  void Answer(Stream& s, const Refusal& refusal);
  // Refuses a stream after its admission: its record, the upstream's stream cancelled.
  void RefuseAdmitted(Stream& s, const Refusal& refusal);
  Stream* ByUpstream(int32_t id);
  // Its http.request record, unless it has one.
  void AuditOnce(Stream& s);
  // Feeds a side's input to its session; false (closing_ set, `side` its prefix) when the
  // peer broke the protocol.
  bool Feed(bufferevent* bev, h2::Session& session, const char* side);
  // Moves what `session` has to send into `out` while `out` holds less than kRelayHighWater,
  // frames gathered in staged_ first so that `out` (a TLS bufferevent's, which encrypts on
  // every addition) takes them in one piece; true if anything moved.
  bool Drain(h2::Session& session, evbuffer* out);
  // Writes what both sessions have to send and ends the connection when they are done. Call
  // last: may close.
  void Flush();

  Http2Host& host_;
  std::unique_ptr<UpstreamHandler> upstream_handler_;
  std::unique_ptr<h2::Session> client_;
  std::unique_ptr<h2::Session> upstream_;
  EvBufferPtr staged_;                                            // Drain's
  std::unordered_map<int32_t, std::unique_ptr<Stream>> streams_;  // by the sandbox's stream id
  std::unordered_map<int32_t, int32_t> upstream_ids_;             // upstream stream id -> sandbox's
  std::string closing_;   // why the connection ends now (the sandbox broke the protocol)
  std::string draining_;  // why the upstream is gone: the connection ends once drained
  bool drain_started_ = false;
  size_t buffered_ = 0;  // bytes of request bodies held whole (kMaxBufferedBodies)
  bool closed_ = false;  // Close() was called: return at once
};

}  // namespace airlock::server
