// Gateway assembly, reload, session lifecycle and shutdown.
#include "gateway/server/gateway.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstring>
#include <fstream>
#include <future>
#include <thread>

#include "gateway/audit/chain.h"
#include "gateway/credentials/placeholder.h"
#include "gateway/oplog/operator_log.h"
#include "gateway/policy/policy_loader.h"
#include "gateway/server/sd_notify.h"
#include "gateway/server/sockaddr.h"

namespace airlock::server {
namespace {

// Below this many open files the gateway says so at start: a connection holds two descriptors
// (a spliced tunnel up to six while bytes move: two pipes lent by its worker).
constexpr uint64_t kFewOpenFiles = 16384;

// Raises the soft open-file limit (often 1024) to the hard one; returns the limit in force.
uint64_t RaiseOpenFileLimit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return 0;
  if (r.rlim_cur < r.rlim_max) {
    rlimit raised = r;
    raised.rlim_cur = r.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) r = raised;
  }
  return static_cast<uint64_t>(r.rlim_cur);
}

// Names for the operator's log: "a,b,c".
std::string Joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ",") + name;
  return out;
}

sockaddr_storage MakeAddr(const config::HostPort& hp, socklen_t* len) {
  return ToSockaddr(*net::IpAddress::Parse(hp.host), hp.port, len);
}

// credential.refresh or credential.error: names and times, never a token.
audit::Record CredentialRecord(const credentials::RefreshEvent& e) {
  audit::Record r(e.ok ? "credential.refresh" : "credential.error");
  r.Set("credential", e.credential).Set("next_attempt_s", e.next_attempt.count());
  if (!e.ok) r.Set("error", e.error);
  if (e.expires_at) r.Set("expires_at", audit::FormatTimestamp(*e.expires_at));
  if (!e.ok) r.Set("token_valid", e.serving);
  return r;
}

}  // namespace

Gateway::Gateway(config::GatewayConfig config) { state_.config = std::move(config); }

Gateway::~Gateway() {
  if (dns_worker_) dns_worker_->Stop();
  dns_server_.reset();
  for (auto& w : workers_) w->worker.Stop();
}

Result<std::unique_ptr<Gateway>> Gateway::Create(config::GatewayConfig config) {
  EnableLibeventThreads();
  std::unique_ptr<Gateway> g(new Gateway(std::move(config)));
  if (Status s = g->Init(); !s.ok()) return s;
  return g;
}

Status Gateway::Init() {
  const config::GatewayConfig& c = state_.config;
  open_files_ = RaiseOpenFileLimit();
  audit::AuditOptions ao;
  ao.path = c.audit_path;
  ao.rotate_bytes = c.audit_rotate_bytes;
  ao.sync_interval = c.audit_sync_interval;
  if (!c.audit_hmac_key_file.empty()) {
    std::ifstream in(c.audit_hmac_key_file);
    if (!in) return Status::Error("cannot read " + c.audit_hmac_key_file);
    std::getline(in, ao.hmac_key);
  }
  auto log = audit::AuditLog::Open(ao);
  if (!log.ok()) return log.status();
  audit_ = std::move(log).value();
  state_.audit = audit_.get();

  auto broker = credentials::CredentialBroker::Create(c.credentials, {c.tls_upstream_ca_file});
  if (!broker.ok()) return broker.status();
  credentials_ = std::move(broker).value();
  state_.credentials = credentials_.get();
  if (Status s = credentials_->Start([this](const credentials::RefreshEvent& e) {
        audit_->Append(CredentialRecord(e));
        if (!e.ok) {
          oplog::Log(oplog::Level::kWarn, "credential.refresh_failed",
                     {oplog::F("credential", e.credential), oplog::F("error", e.error),
                      oplog::F("retry_s", static_cast<uint64_t>(e.next_attempt.count())),
                      oplog::F("token_valid", e.serving ? "true" : "false")});
        }
      });
      !s.ok()) {
    return s;
  }

  config::Diagnostics diags;
  auto set = policy::LoadPolicySet({c.policy_dir}, PolicyOptions(), &diags);
  if (!set)
    return Status::Error("policies in " + c.policy_dir + " are invalid:\n" + diags.ToString());
  state_.policies.Set(std::make_shared<const policy::PolicySet>(std::move(*set)));

  std::filesystem::create_directories(c.state_dir);
  sessions_ =
      std::make_unique<control::SessionTable>(c.state_dir + "/sessions.json", SystemClock());
  auto restored = sessions_->Load();
  if (!restored.ok()) return restored.status();
  if (*restored > 0) {
    oplog::Log(oplog::Level::kWarn, "session.restore_damaged",
               {oplog::F("file", c.state_dir + "/sessions.json"), oplog::F("dropped", *restored)});
  }
  state_.sessions = sessions_.get();

  dns::ResolverOptions ro;
  ro.servers = c.resolver_servers;
  ro.timeout = c.resolver_timeout;
  ro.max_ttl = c.resolver_max_ttl;
  auto resolver = dns::MakeAresResolver(ro);
  if (!resolver.ok()) return resolver.status();
  resolver_ = std::move(resolver).value();
  state_.resolver = resolver_.get();

  tls::InspectorOptions to;
  to.ca_cert_file = c.tls_ca_cert;
  to.ca_key_file = c.tls_ca_key;
  to.state_dir = c.state_dir;
  to.upstream_ca_file = c.tls_upstream_ca_file;
  to.leaf_validity = c.tls_leaf_validity;
  to.leaf_cache_size = c.tls_leaf_cache_size;
  auto inspector = tls::TlsInspector::Create(to, SystemClock());
  if (!inspector.ok()) return inspector.status();
  tls_ = std::move(inspector).value();
  state_.tls = tls_.get();

  main_base_.reset(event_base_new());
  int n = c.workers > 0 ? c.workers
                        : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < n; ++i) {
    workers_.push_back(std::make_unique<WorkerConnections>());
    // The worker decides when to wake the audit writer (AuditWaker, ARCHITECTURE.md 44).
    Worker* w = &workers_.back()->worker;
    AuditWaker* waker = audit_wakers_.emplace_back(std::make_unique<AuditWaker>(*w, *audit_)).get();
    w->Post([waker] { waker->Register(); });
  }

  socklen_t len = 0;
  sockaddr_storage ss = MakeAddr(c.proxy, &len);
  proxy_listener_.reset(
      evconnlistener_new_bind(main_base_.get(), OnProxyAccept, this,
                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                              1024, reinterpret_cast<sockaddr*>(&ss), static_cast<int>(len)));
  if (!proxy_listener_) {
    return Status::Error("cannot listen on " + c.proxy.host + ":" + std::to_string(c.proxy.port) +
                         ": " + std::strerror(errno));
  }
  proxy_pause_ = std::make_unique<AcceptPause>(proxy_listener_.get(), OnProxyAccept, this, "proxy");

  if (c.transparent) {
    socklen_t tlen = 0;
    sockaddr_storage ts = MakeAddr(*c.transparent, &tlen);
    transparent_listener_.reset(
        evconnlistener_new_bind(main_base_.get(), OnTransparentAccept, this,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                1024, reinterpret_cast<sockaddr*>(&ts), static_cast<int>(tlen)));
    if (!transparent_listener_) {
      return Status::Error("cannot listen on " + c.transparent->host + ":" +
                           std::to_string(c.transparent->port) + ": " + std::strerror(errno));
    }
    transparent_pause_ = std::make_unique<AcceptPause>(transparent_listener_.get(),
                                                       OnTransparentAccept, this, "transparent");
  }

  control::ControlHooks hooks;
  hooks.policy_names = [this] { return state_.policies.Get()->Names(); };
  hooks.reload = [this] { return Reload("control"); };
  hooks.audit_healthy = [this] { return audit_->healthy(); };
  hooks.ca_certificate = [this] { return tls_->ca_certificate_pem(); };
  hooks.make_placeholders = [this](const std::string& policy) { return MakePlaceholders(policy); };
  hooks.session_created = [this](const control::Session& s) {
    audit::Record r("session.create");
    r.Set("session", s.id).Set("policy", s.policy);
    if (s.source) r.Set("src", s.source->ToString());
    audit_->Append(std::move(r));
  };
  hooks.session_ended = [this](const control::Session& s, const char* reason) {
    EndSession(s, "session.delete", reason);
  };
  control_api_ = std::make_unique<control::ControlApi>(*sessions_, hooks);
  control_server_ = std::make_unique<SimpleHttpServer>(
      main_base_.get(), [this](const std::string& m, const std::string& p, const std::string& b) {
        auto r = control_api_->Handle({m, p, b});
        return SimpleResponse{r.status, "application/json", r.Text()};
      });
  std::filesystem::create_directories(std::filesystem::path(c.control_socket).parent_path());
  if (Status s = control_server_->ListenUnix(c.control_socket); !s.ok()) return s;
  if (c.metrics) {
    metrics_server_ = std::make_unique<SimpleHttpServer>(
        main_base_.get(), [this](const std::string& m, const std::string& p, const std::string&) {
          if (m != "GET" || p != "/metrics")
            return SimpleResponse{404, "text/plain", "not found\n"};
          return SimpleResponse{200, "text/plain; version=0.0.4",
                                state_.metrics.Render(sessions_->size(), audit_->queue_depth(),
                                                      credentials_->Statuses())};
        });
    socklen_t mlen = 0;
    sockaddr_storage ms = MakeAddr(*c.metrics, &mlen);
    if (Status s = metrics_server_->ListenTcp(reinterpret_cast<sockaddr*>(&ms), mlen); !s.ok()) {
      return s;
    }
  }

  if (c.dns) {
    dns_worker_ = std::make_unique<Worker>();
    dns_server_ = std::make_unique<DnsServer>(state_, *dns_worker_);
    socklen_t dlen = 0;
    sockaddr_storage ds = MakeAddr(*c.dns, &dlen);
    if (Status s = dns_server_->Listen(reinterpret_cast<sockaddr*>(&ds), dlen); !s.ok()) return s;
  }

  for (int sig : {SIGHUP, SIGTERM, SIGINT}) {
    signals_.emplace_back(evsignal_new(main_base_.get(), sig, OnSignal, this));
    evsignal_add(signals_.back().get(), nullptr);
  }
  error_summary_ = std::make_unique<ErrorSummary>(state_.metrics);
  tick_.reset(event_new(main_base_.get(), -1, EV_PERSIST, OnTick, this));
  timeval second{1, 0};
  event_add(tick_.get(), &second);
  ::signal(SIGPIPE, SIG_IGN);
  return Status::Ok();
}

int Gateway::Run() {
  for (auto& w : workers_) w->worker.Start();
  if (dns_worker_) dns_worker_->Start();
  audit::Record start("gateway.start");
  start.Set("version", "0.1.0")
      .Set("policies", state_.policies.Get()->Names())
      .Set("sessions", sessions_->size())
      .Set("workers", workers_.size());
  audit_->Append(std::move(start));
  const auto& c = state_.config;
  oplog::Log(oplog::Level::kInfo, "gateway.start",
             {oplog::F("config", c.source),
              oplog::F("proxy", c.proxy.host + ":" + std::to_string(c.proxy.port)),
              oplog::F("policies", Joined(state_.policies.Get()->Names())),
              oplog::F("sessions", sessions_->size()), oplog::F("workers", workers_.size()),
              oplog::F("audit", c.audit_path), oplog::F("open_files", open_files_)});
  if (open_files_ < kFewOpenFiles) {
    oplog::Log(oplog::Level::kWarn, "gateway.open_files_low",
               {oplog::F("open_files", open_files_),
                oplog::F("hint",
                         "a tunnel holds up to 6 descriptors: raise the hard limit "
                         "(LimitNOFILE=, ulimit -Hn) for more than a few thousand")});
  }
  SdNotify("READY=1\nSTATUS=serving");
  event_base_dispatch(main_base_.get());
  audit_->Append(audit::Record("gateway.stop"));
  audit_->Flush();
  oplog::Log(oplog::Level::kInfo, "gateway.stop",
             {oplog::F("audit_healthy", audit_->healthy() ? "true" : "false")});
  return 0;
}

void Gateway::OnProxyAccept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* arg) {
  static_cast<Gateway*>(arg)->Dispatch(fd, sa, len, ProxyConnection::Mode::kExplicit);
}

void Gateway::OnTransparentAccept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len,
                                  void* arg) {
  static_cast<Gateway*>(arg)->Dispatch(fd, sa, len, ProxyConnection::Mode::kTransparent);
}

void Gateway::Dispatch(evutil_socket_t fd, sockaddr* sa, int len, ProxyConnection::Mode mode) {
  sockaddr_storage peer{};
  std::memcpy(&peer, sa, std::min<size_t>(static_cast<size_t>(len), sizeof(peer)));
  WorkerConnections* w = workers_[next_worker_++ % workers_.size()].get();
  GatewayState* g = &state_;
  w->worker.Post([g, w, fd, peer, mode] { ProxyConnection::Accept(*g, *w, fd, peer, mode); });
}

void Gateway::ForEachConnection(std::function<void(ProxyConnection*)> fn) {
  for (auto& w : workers_) {
    WorkerConnections* wc = w.get();
    wc->worker.Post([wc, fn] {
      std::vector<ProxyConnection*> conns;
      for (auto& [id, c] : wc->live) conns.push_back(c);
      for (auto* c : conns) fn(c);
    });
  }
}

policy::LoadOptions Gateway::PolicyOptions() const {
  policy::LoadOptions o;
  o.known_credentials = config::CredentialNames(state_.config);
  return o;
}

std::vector<control::Placeholder> Gateway::MakePlaceholders(const std::string& policy) const {
  std::vector<control::Placeholder> out;
  auto set = state_.policies.Get();
  const policy::CompiledPolicy* p = set->Find(policy);
  if (!p) return out;
  std::set<std::string> bound;
  for (const auto& rule : p->policy().egress)
    bound.insert(rule.credentials.begin(), rule.credentials.end());
  for (const auto& name : bound) {
    if (const config::CredentialConfig* c = credentials_->Find(name)) {
      out.push_back({name, c->placeholder_env, credentials::NewPlaceholder(c->placeholder_prefix)});
      // A signing credential's secret key: the sandbox signs with it; the gateway signs again.
      if (c->signs_requests()) {
        out.push_back({name, c->secret_placeholder_env, credentials::NewPlaceholder("")});
      }
    }
  }
  return out;
}

Status Gateway::Reload(const char* trigger) {
  // systemd's ExecReload waits for READY=1 again (Type=notify).
  const auto usec = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count();
  SdNotify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
  Status result = ApplyReload(trigger);
  SdNotify(result.ok() ? "READY=1\nSTATUS=serving" : "READY=1\nSTATUS=reload refused");
  return result;
}

Status Gateway::ApplyReload(const char* trigger) {
  config::Diagnostics diags;
  auto set = policy::LoadPolicySet({state_.config.policy_dir}, PolicyOptions(), &diags);
  if (!set) {
    audit_->Append(audit::Record("policy.reject")
                       .Set("trigger", trigger)
                       .Set("reason", "invalid_policy")
                       .Set("errors", diags.ToString()));
    oplog::Log(oplog::Level::kWarn, "policy.reject",
               {oplog::F("trigger", trigger), oplog::F("dir", state_.config.policy_dir),
                oplog::F("errors", diags.ToString())});
    return Status::Error(diags.ToString());
  }
  auto shared = std::make_shared<const policy::PolicySet>(std::move(*set));
  state_.policies.Set(shared);
  oplog::Log(oplog::Level::kInfo, "policy.load",
             {oplog::F("trigger", trigger), oplog::F("policies", Joined(shared->Names()))});
  audit_->Append(
      audit::Record("policy.load").Set("trigger", trigger).Set("policies", shared->Names()));
  ForEachConnection([shared](ProxyConnection* c) {
    if (!c->StillAllowed(*shared)) c->Terminate("policy_reload");
  });
  return Status::Ok();
}

void Gateway::EndSession(const control::Session& s, const char* event, const char* reason) {
  audit_->Append(
      audit::Record(event).Set("session", s.id).Set("policy", s.policy).Set("reason", reason));
  std::string id = s.id;
  state_.dns_mappings.DropSession(id);
  ForEachConnection([id](ProxyConnection* c) {
    if (c->session_id() == id) c->Terminate("session_ended");
  });
}

void Gateway::OnSignal(evutil_socket_t sig, short, void* arg) {
  auto* self = static_cast<Gateway*>(arg);
  if (sig == SIGHUP) {
    (void)self->Reload("sighup");
    return;
  }
  self->BeginShutdown();
}

void Gateway::BeginShutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  SdNotify("STOPPING=1");
  proxy_pause_.reset();  // (its timer would enable the listener)
  transparent_pause_.reset();
  proxy_listener_.reset();  // stop accepting
  transparent_listener_.reset();
  drain_deadline_ = std::chrono::steady_clock::now() + state_.config.drain_timeout;
}

void Gateway::OnTick(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Gateway*>(arg);
  for (const auto& s : self->sessions_->Expire()) self->EndSession(s, "session.expire", "ttl");
  self->error_summary_->Tick(std::chrono::steady_clock::now());
  self->state_.dns_mappings.Expire();
  if (!self->shutting_down_) return;
  if (self->state_.metrics.active_connections.load() == 0 ||
      std::chrono::steady_clock::now() >= self->drain_deadline_) {
    std::vector<std::future<void>> done;
    for (auto& w : self->workers_) {
      auto p = std::make_shared<std::promise<void>>();
      done.push_back(p->get_future());
      WorkerConnections* wc = w.get();
      wc->worker.Post([wc, p] {
        std::vector<ProxyConnection*> conns;
        for (auto& [id, c] : wc->live) conns.push_back(c);
        for (auto* c : conns) c->Terminate("shutdown");
        FreeLingering(&wc->lingering);  // a reader that never read its last bytes
        p->set_value();
      });
    }
    for (auto& f : done) f.wait();
    event_base_loopexit(self->main_base_.get(), nullptr);
  }
}

}  // namespace airlock::server
