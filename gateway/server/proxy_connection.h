// ProxyConnection: one client connection, from accept to close, and its admission: identify the
// session, decide, resolve, decide again for every address, write connection.open (and wait
// until it is in the file), dial exactly an allowed address. After the dial it hands both ends
// to the Relay the decision calls for (relay.h): a TunnelRelay for CONNECT tunnels, captured TLS
// and opaque TCP, an Http1Exchange for HTTP. For a rule that inspects TLS it first terminates
// TLS on both ends (the upstream's verified, then the sandbox's with a minted leaf) and runs the
// Http1Exchange inside, deciding every request, or, when both ends chose h2 in ALPN, the
// Http2Relay, deciding every stream (proxy_connection_streams.cc; docs/TLS.md). It owns the two
// bufferevents, the connection's counters and its audit records (connection.open, http.request,
// connection.close), and forwards bufferevent callbacks to the relay. Owned by its worker's
// registry; lives and dies on that worker thread.
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "gateway/control/session_table.h"
#include "gateway/http/denial.h"
#include "gateway/http/message_parser.h"
#include "gateway/net/ip_address.h"
#include "gateway/policy/decide.h"
#include "gateway/server/credential_guard.h"
#include "gateway/server/event_loop.h"
#include "gateway/server/gateway_state.h"
#include "gateway/server/http2_relay.h"
#include "gateway/server/http_exchange.h"
#include "gateway/server/pipe_pool.h"
#include "gateway/server/request_checks.h"
#include "gateway/server/tls_bufferevent.h"
#include "gateway/tls/inspector.h"

namespace airlock::server {

class ProxyConnection;

// The connections of one worker, by id. Touched only on that worker's thread.
struct WorkerConnections {
  Worker worker;
  PipePool pipes{16};  // declared before `live`: outlives every relay that borrows from it
  std::unordered_map<uint64_t, ProxyConnection*> live;
  LingeringTls lingering;  // closed connections' TLS, writing its last bytes
};

class ProxyConnection : public ExchangeHost, public Http2Host {
 public:
  enum class Mode {
    kExplicit,     // HTTP_PROXY clients: absolute-form requests and CONNECT
    kTransparent,  // connections redirected by nftables: the original destination, sniffed
  };

  // Takes ownership of `fd`; registers itself in `w.live`.
  static void Accept(GatewayState& g, WorkerConnections& w, evutil_socket_t fd,
                     const sockaddr_storage& peer, Mode mode);

  uint64_t id() const { return id_; }
  const std::string& session_id() const { return session_ ? session_->id : empty_; }
  // Ends the connection from outside (session ended, policy no longer allows it, shutdown).
  void Terminate(const std::string& reason);
  // Decides again against `set`; false if the connection is no longer allowed.
  bool StillAllowed(const policy::PolicySet& set) const;

  // RelayHost and ExchangeHost.
  bufferevent* client() override { return client_.get(); }
  bufferevent* upstream() override { return upstream_.get(); }
  bool CountBytes(size_t n, bool upward) override;
  void CountSpliced(size_t n) override;
  PipePool& Pipes() override { return w_.pipes; }
  std::chrono::milliseconds IdleTimeout() const override { return g_.config.idle_timeout; }
  void CountHead(size_t n, bool upward) override;
  void Close(const std::string& reason) override;
  Admission AdmitRequest(const http::HttpHead& head) override;
  const Target& target() const override { return target_; }
  void Refuse(const Refusal& refusal) override;
  void AuditRequest(const RequestSummary& summary) override;
  void DropUpstream() override;
  void CloseAfterFlush(const std::string& reason) override;
  std::unique_ptr<credentials::ReflectionFilter> ResponseFilter() override;
  void AuditReflection(const std::string& where) override;
  std::optional<Refusal> RequestBodyLeak(std::string_view piece) override;
  void RefuseForwarded(const Refusal& refusal, uint64_t bytes_up) override;
  size_t WholeBodyLimit() override;
  std::optional<Refusal> RewriteRequest(http::HttpHead* head, std::string* body) override;
  // Http2Host (proxy_connection_streams.cc).
  std::unique_ptr<StreamScope> NewStream() override;
  std::optional<Refusal> AdmitStream(http::HttpHead* head, StreamScope* scope) override;
  std::optional<Refusal> StreamBodyLeak(StreamScope* scope, std::string_view piece) override;
  std::optional<Refusal> RewriteStream(StreamScope* scope, http::HttpHead* head,
                                       std::string* body) override;
  void AuditStreamRefused(const StreamScope& scope, const RequestSummary& summary,
                          const Refusal& refusal) override;
  void AuditStream(const StreamScope& scope, const RequestSummary& summary) override;
  void AuditStreamReflection(const StreamScope& scope, const std::string& where) override;
  std::string DenialBody(const Refusal& refusal, const StreamScope& scope) override;
  void CountH2(H2Event event) override;

 private:
  // Admission phases; kRelaying hands every callback to relay_.
  enum class State {
    kSniffing,  // transparent: TLS, HTTP or opaque bytes?
    kReadingHead,
    kResolving,
    kAwaitingHello,  // CONNECT answered 200: the ClientHello must name the CONNECT host
    kAuditing,       // waiting for connection.open to be in the audit file before dialling
    kConnecting,
    kUpstreamTls,  // inspected: the upstream's handshake (chain and name verified)
    kSandboxTls,   // inspected: the sandbox's handshake with a leaf minted for its SNI
    kRelaying,
    kClosing,
  };

  ProxyConnection(GatewayState& g, WorkerConnections& w, evutil_socket_t fd,
                  const sockaddr_storage& peer, Mode mode);
  ~ProxyConnection() override;

  static void OnClientRead(bufferevent* bev, void* arg);
  static void OnClientWrite(bufferevent* bev, void* arg);
  static void OnClientEvent(bufferevent* bev, short what, void* arg);
  static void OnUpstreamRead(bufferevent* bev, void* arg);
  static void OnUpstreamWrite(bufferevent* bev, void* arg);
  static void OnUpstreamEvent(bufferevent* bev, short what, void* arg);

  void Sniff(bool deadline_passed);
  void TransparentTls(const std::string& sni);
  void TransparentOpaque();
  void HandleFirstHead();
  Admission AdmitTarget();
  bool Identify();
  DecisionContext Context(bool count_request) const;
  void StartResolve();
  void OnResolved(Result<std::vector<net::IpAddress>> result);
  void CheckHello();
  void OpenThenDial();
  void Dial();
  void OnUpstreamConnected();
  void StartUpstreamTls();
  void OnUpstreamTlsFailed(short what);
  void StartSandboxTls();
  // Inspected: an upstream failure after the sandbox was told 200 is answered inside its TLS.
  void FailInspected(const Refusal& refusal);
  Admission AdmitInspected(const http::HttpHead& head);
  void StartRelay();
  // Inspected with h2 on both ends: the HTTP/2 relay. May close.
  void StartHttp2();
  // Credentials (guard_ decides): a placeholder where its credential may not go blocks the
  // request (true, and the connection is refusing); the rule's credentials are written into an
  // allowed inspected request (false when one cannot be: refused).
  CredentialGuard::Scope GuardScope() const;
  bool FindLeak(const http::HttpHead* head);
  bool InjectCredentials();
  // The credential.leak_blocked record, and the answer to give.
  Refusal AuditLeak(const CredentialGuard::Leak& leak);

  void Deny(const Refusal& refusal);
  // The gateway's answer to `refusal` on this connection, naming `rule`.
  http::GatewayResponse ResponseFor(const Refusal& refusal, std::string_view rule) const;
  // A request refused inside inspected TLS: its http.request record, then the answer.
  void DenyRequest(const Refusal& refusal, uint64_t bytes_up = 0);
  const char* TlsMode() const;
  void AuditOpen(const std::string& decision, const std::string& reason);
  const char* ProtoName() const;
  audit::Record BaseRecord(const char* event) const;  // with the connection's rule
  audit::Record BaseRecord(const char* event, std::string_view rule) const;
  // The fields that say which connection a record is about (conn, session, src, host...).
  void AddConnectionFields(audit::Record* r) const;
  // A stream's records: the connection's fields (stream_fields_) with the stream's rule.
  audit::Record StreamRecord(const char* event, const StreamScope& scope) const;
  CredentialGuard::Scope StreamGuardScope(const StreamScope& scope) const;
  Refusal AuditStreamLeak(const StreamScope& scope, const CredentialGuard::Leak& leak);
  // A stream refused at admission: its http.request record.
  void DenyStream(const StreamScope& scope, const http::HttpHead& head, const Refusal& refusal);

  GatewayState& g_;
  WorkerConnections& w_;
  const uint64_t id_;
  const std::chrono::steady_clock::time_point started_;
  BufferEventPtr client_;
  BufferEventPtr upstream_;
  std::unique_ptr<Relay> relay_;
  Http1Exchange* exchange_ = nullptr;  // relay_, when it is the HTTP exchange
  const Mode mode_;
  std::optional<net::IpAddress> original_dst_;  // transparent: where the client was going
  uint16_t original_port_ = 0;
  std::string peer_ip_;
  uint16_t peer_port_ = 0;
  std::optional<net::IpAddress> peer_addr_;
  State state_ = State::kReadingHead;

  http::MessageParser request_;
  http::MessageParser response_;
  std::optional<control::Session> session_;
  std::shared_ptr<const policy::PolicySet> policies_;

  // The destination of the current request or tunnel, and what was decided for it.
  Target target_;
  policy::Decision decision_;
  std::vector<net::IpAddress> allowed_;
  size_t next_address_ = 0;
  std::optional<net::IpAddress> dialed_;
  std::string upstream_key_;  // host:port of the open upstream, for reuse
  bool opened_ = false;       // connection.open written with decision allow/report

  // Inspection.
  bool inspected_ = false;    // the rule inspects: TLS is terminated on both ends
  bool sandbox_tls_ = false;  // the sandbox's handshake is done
  std::string sni_;
  audit::Record stream_fields_;    // HTTP/2: AddConnectionFields once for every stream's records
  bool client_offers_h2_ = false;  // the sandbox's ClientHello lists h2
  tls::AppProtocol app_protocol_ = tls::AppProtocol::kHttp11;  // what the upstream chose
  std::optional<Refusal> upstream_failure_;  // answers the next request inside TLS
  std::string tls_error_;                    // why the upstream's handshake failed
  std::string client_tls_error_;             // why the sandbox's handshake failed
  CredentialGuard guard_;                    // the current request's placeholders and credentials

  uint64_t bytes_up_ = 0;
  uint64_t bytes_down_ = 0;
  bool counted_in_session_ = false;
  bool over_budget_ = false;
  std::string closing_reason_;
  static inline const std::string empty_;
};

}  // namespace airlock::server
