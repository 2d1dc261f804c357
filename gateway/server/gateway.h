// Gateway: assembles the running airlock-gateway: audit log, policies, sessions, resolver,
// workers, the proxy listener, the control socket, metrics, signals (SIGHUP reloads; SIGTERM and
// SIGINT drain and stop), and session expiry. Run() blocks on the main thread's event loop;
// connections run on the workers.
#pragma once

#include <memory>
#include <vector>

#include "gateway/base/status.h"
#include "gateway/config/gateway_config.h"
#include "gateway/control/control_api.h"
#include "gateway/credentials/broker.h"
#include "gateway/policy/policy_loader.h"
#include "gateway/server/accept_pause.h"
#include "gateway/server/audit_waker.h"
#include "gateway/server/dns_server.h"
#include "gateway/server/error_summary.h"
#include "gateway/server/event_loop.h"
#include "gateway/server/gateway_state.h"
#include "gateway/server/proxy_connection.h"
#include "gateway/server/simple_http.h"

namespace airlock::server {

class Gateway {
 public:
  static Result<std::unique_ptr<Gateway>> Create(config::GatewayConfig config);
  ~Gateway();
  int Run();

 private:
  explicit Gateway(config::GatewayConfig config);
  Status Init();
  Status Reload(const char* trigger);         // tells systemd around ApplyReload()
  Status ApplyReload(const char* trigger);    // all or nothing
  policy::LoadOptions PolicyOptions() const;  // credential names checked against the config
  std::vector<control::Placeholder> MakePlaceholders(const std::string& policy) const;
  void EndSession(const control::Session& s, const char* event, const char* reason);
  void ForEachConnection(std::function<void(ProxyConnection*)> fn);
  static void OnProxyAccept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* arg);
  static void OnTransparentAccept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len,
                                  void* arg);
  void Dispatch(evutil_socket_t fd, sockaddr* sa, int len, ProxyConnection::Mode mode);
  static void OnSignal(evutil_socket_t sig, short, void* arg);
  static void OnTick(evutil_socket_t, short, void* arg);
  void BeginShutdown();

  GatewayState state_;
  std::unique_ptr<audit::AuditLog> audit_;
  std::unique_ptr<control::SessionTable> sessions_;
  std::unique_ptr<dns::Resolver> resolver_;
  std::unique_ptr<tls::TlsInspector> tls_;
  std::unique_ptr<credentials::CredentialBroker> credentials_;
  std::unique_ptr<control::ControlApi> control_api_;
  EventBasePtr main_base_;
  std::vector<std::unique_ptr<WorkerConnections>> workers_;
  std::vector<std::unique_ptr<AuditWaker>> audit_wakers_;  // one per worker, freed before it
  size_t next_worker_ = 0;
  uint64_t open_files_ = 0;  // the open-file limit, raised to the hard one at start
  ListenerPtr proxy_listener_;
  ListenerPtr transparent_listener_;
  std::unique_ptr<AcceptPause> proxy_pause_;
  std::unique_ptr<AcceptPause> transparent_pause_;
  std::unique_ptr<SimpleHttpServer> control_server_;
  std::unique_ptr<SimpleHttpServer> metrics_server_;
  std::unique_ptr<Worker> dns_worker_;  // the DNS responder's thread
  std::unique_ptr<DnsServer> dns_server_;
  std::vector<EventPtr> signals_;
  EventPtr tick_;
  std::unique_ptr<ErrorSummary> error_summary_;
  bool shutting_down_ = false;
  std::chrono::steady_clock::time_point drain_deadline_;
};

}  // namespace airlock::server
