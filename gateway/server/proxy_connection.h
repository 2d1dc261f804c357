// ProxyConnection: one client connection to the explicit proxy listener, from the first byte to
// the last: read and check the request head, identify the session, decide, resolve, decide again
// for every address, dial exactly an allowed address, then forward HTTP (keep-alive, pipelined
// requests answered in order) or relay a CONNECT tunnel / WebSocket with back-pressure and
// half-close. Every attempt is audited at decision time; every accepted connection also gets a
// connection.close record. Owned by its worker's registry; lives and dies on that worker thread.
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "gateway/control/session_table.h"
#include "gateway/http/message_parser.h"
#include "gateway/net/ip_address.h"
#include "gateway/policy/decide.h"
#include "gateway/server/event_loop.h"
#include "gateway/server/gateway_state.h"

namespace airlock::server {

class ProxyConnection;

// The connections of one worker, by id. Touched only on that worker's thread.
struct WorkerConnections {
  Worker worker;
  std::unordered_map<uint64_t, ProxyConnection*> live;
};

class ProxyConnection {
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

 private:
  enum class State {
    kSniffing,  // transparent: TLS, HTTP or opaque bytes?
    kReadingHead,
    kResolving,
    kAuditing,  // waiting for connection.open to be in the audit file before dialling
    kConnecting,
    kAwaitingHello,
    kSendingBody,
    kAwaitingResponse,
    kTunnel,
    kClosing,
  };

  ProxyConnection(GatewayState& g, WorkerConnections& w, evutil_socket_t fd,
                  const sockaddr_storage& peer, Mode mode);
  ~ProxyConnection();

  static void OnClientRead(bufferevent* bev, void* arg);
  static void OnClientWrite(bufferevent* bev, void* arg);
  static void OnClientEvent(bufferevent* bev, short what, void* arg);
  static void OnUpstreamRead(bufferevent* bev, void* arg);
  static void OnUpstreamWrite(bufferevent* bev, void* arg);
  static void OnUpstreamEvent(bufferevent* bev, short what, void* arg);

  void Sniff(bool deadline_passed);
  void TransparentTls(const std::string& sni);
  void TransparentOpaque();
  void DecideAndResolve();
  void HandleHead();
  bool Identify();
  bool ParseTarget();
  policy::Request MakeRequest(std::optional<net::IpAddress> address) const;
  void StartResolve();
  void OnResolved(Result<std::vector<net::IpAddress>> result);
  void OpenThenDial();
  void Dial();
  void OnUpstreamConnected();
  void CheckHello();
  void StartHttpRequest();
  void PumpRequestBody();
  void HandleResponse();
  void Relay(bufferevent* from, bufferevent* to, bool upward);
  // Payload bytes relayed: this connection's, the session's and the gateway's counters.
  void CountBytes(size_t n, bool upward);
  void MaybeFinishTunnel();
  void FinishExchange();
  void AuditHttpRequest(int status);

  void Deny(int status, const std::string& reason, const std::string& message,
            const std::string& hint);
  void AuditOpen(const std::string& decision, const std::string& reason);
  void CloseAfterFlush(const std::string& reason);
  void Close(const std::string& reason);

  audit::Record BaseRecord(const char* event) const;
  std::string DecisionName(policy::Verdict v) const;

  GatewayState& g_;
  WorkerConnections& w_;
  const uint64_t id_;
  const std::chrono::steady_clock::time_point started_;
  BufferEventPtr client_;
  BufferEventPtr upstream_;
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

  // The destination of the current request or tunnel.
  bool is_connect_ = false;
  std::string host_;  // as requested
  uint16_t port_ = 0;
  std::string origin_target_;
  policy::Protocol protocol_ = policy::Protocol::kHttp;
  policy::Decision decision_;
  std::vector<net::IpAddress> allowed_;
  size_t next_address_ = 0;
  std::optional<net::IpAddress> dialed_;
  std::string upstream_key_;  // host:port:address of the open upstream, for reuse
  bool opened_ = false;       // connection.open written with decision allow/report
  bool upstream_keep_alive_ = false;

  // Counters.
  uint64_t bytes_up_ = 0;
  uint64_t bytes_down_ = 0;
  bool client_eof_ = false;
  bool upstream_eof_ = false;
  std::chrono::steady_clock::time_point request_started_;
  std::string request_method_;
  std::string request_path_;
  bool counted_in_session_ = false;
  bool over_budget_ = false;
  std::string closing_reason_;
  static inline const std::string empty_;
};

}  // namespace airlock::server
