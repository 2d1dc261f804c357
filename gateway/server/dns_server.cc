// The sandboxes' DNS responder.
#include "gateway/server/dns_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "gateway/credentials/placeholder.h"
#include "gateway/net/host.h"
#include "gateway/policy/decide.h"
#include "gateway/server/sockaddr.h"

namespace airlock::server {
namespace {

using std::chrono::steady_clock;

constexpr auto kTcpIdle = timeval{10, 0};

// One TCP client; freed on EOF, error or idle timeout.
struct TcpClient {
  BufferEventPtr bev;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  sockaddr_storage peer{};
  std::function<void(std::string, const sockaddr_storage&)> on_query;
  ~TcpClient() { *alive = false; }
};

void OnTcpRead(bufferevent* bev, void* arg) {
  auto* c = static_cast<TcpClient*>(arg);
  evbuffer* in = bufferevent_get_input(bev);
  while (evbuffer_get_length(in) >= 2) {
    uint8_t len_bytes[2];
    evbuffer_copyout(in, len_bytes, 2);
    size_t len = (size_t{len_bytes[0]} << 8) | len_bytes[1];
    if (evbuffer_get_length(in) < 2 + len) return;
    evbuffer_drain(in, 2);
    std::string msg(len, '\0');
    evbuffer_remove(in, msg.data(), len);
    c->on_query(std::move(msg), c->peer);
  }
}

void OnTcpEvent(bufferevent*, short, void* arg) { delete static_cast<TcpClient*>(arg); }

}  // namespace

// Where an answer goes.
struct DnsServer::Reply {
  evutil_socket_t udp_fd = -1;
  sockaddr_storage peer{};
  bufferevent* tcp = nullptr;
  std::shared_ptr<bool> tcp_alive;

  void Send(const std::string& msg) const {
    if (msg.empty()) return;
    if (tcp) {
      if (!*tcp_alive) return;
      uint8_t len[2] = {static_cast<uint8_t>(msg.size() >> 8),
                        static_cast<uint8_t>(msg.size() & 0xff)};
      bufferevent_write(tcp, len, 2);
      bufferevent_write(tcp, msg.data(), msg.size());
      return;
    }
    socklen_t len = peer.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    // UDP answers larger than 512 bytes without EDNS would need truncation; ours never are
    // (at most a few records).
    (void)sendto(udp_fd, msg.data(), msg.size(), 0, reinterpret_cast<const sockaddr*>(&peer), len);
  }
};

DnsServer::DnsServer(GatewayState& g, Worker& worker) : g_(g), worker_(worker) {}

DnsServer::~DnsServer() {
  *alive_ = false;
  udp_event_.reset();
  tcp_listener_.reset();
  if (udp_fd_ >= 0) ::close(udp_fd_);
}

Status DnsServer::Listen(const sockaddr* addr, socklen_t len) {
  udp_fd_ = ::socket(addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (udp_fd_ < 0 || ::bind(udp_fd_, addr, len) != 0) {
    return Status::Error(std::string("cannot bind the DNS responder (UDP): ") +
                         std::strerror(errno));
  }
  udp_event_.reset(event_new(worker_.base(), udp_fd_, EV_READ | EV_PERSIST, OnUdp, this));
  event_add(udp_event_.get(), nullptr);
  tcp_listener_.reset(
      evconnlistener_new_bind(worker_.base(), OnTcpAccept, this,
                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                              128, addr, static_cast<int>(len)));
  if (!tcp_listener_) {
    return Status::Error(std::string("cannot bind the DNS responder (TCP): ") +
                         std::strerror(errno));
  }
  tcp_pause_ = std::make_unique<AcceptPause>(tcp_listener_.get(), OnTcpAccept, this, "dns");
  return Status::Ok();
}

void DnsServer::OnUdp(evutil_socket_t fd, short, void* arg) {
  auto* self = static_cast<DnsServer*>(arg);
  for (int i = 0; i < 64; ++i) {  // drain a burst, then let other events run
    char buf[dns::kMaxMessage + 1];
    sockaddr_storage peer{};
    socklen_t plen = sizeof(peer);
    ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&peer), &plen);
    if (n < 0) return;
    auto reply = std::make_shared<Reply>();
    reply->udp_fd = fd;
    reply->peer = peer;
    self->Handle(std::string(buf, static_cast<size_t>(n)), peer, reply);
  }
}

void DnsServer::OnTcpAccept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int salen,
                            void* arg) {
  auto* self = static_cast<DnsServer*>(arg);
  auto* c = new TcpClient;
  std::memcpy(&c->peer, sa, std::min<size_t>(static_cast<size_t>(salen), sizeof(c->peer)));
  c->bev.reset(bufferevent_socket_new(self->worker_.base(), fd, BEV_OPT_CLOSE_ON_FREE));
  bufferevent* bev = c->bev.get();
  std::shared_ptr<bool> alive = c->alive;
  c->on_query = [self, bev, alive](std::string msg, const sockaddr_storage& peer) {
    auto reply = std::make_shared<Reply>();
    reply->tcp = bev;
    reply->tcp_alive = alive;
    self->Handle(std::move(msg), peer, reply);
  };
  bufferevent_setcb(bev, OnTcpRead, nullptr, OnTcpEvent, c);
  bufferevent_set_timeouts(bev, &kTcpIdle, &kTcpIdle);
  bufferevent_enable(bev, EV_READ);
}

bool DnsServer::TakeToken(const std::string& session) {
  const double rate = g_.config.dns_queries_per_second;
  auto now = steady_clock::now();
  auto [it, fresh] = buckets_.try_emplace(session, Bucket{2 * rate, now});
  Bucket& b = it->second;
  if (!fresh) {
    double elapsed = std::chrono::duration<double>(now - b.last).count();
    b.tokens = std::min(2 * rate, b.tokens + elapsed * rate);
    b.last = now;
  }
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

void DnsServer::Audit(const std::string& session, const std::string& policy,
                      const sockaddr_storage& peer, const dns::Query& q,
                      const std::string& decision, const std::string& reason,
                      const std::vector<net::IpAddress>& answers, bool* recorded) {
  audit::Record r("dns.query");
  if (!session.empty()) {
    r.Set("session", session);
    r.Set("policy", policy);
  }
  auto addr = AddressOf(peer);
  r.Set("src", addr ? addr->ToString() : "unknown");
  r.Set("src_port", PortOf(peer));
  r.Set("name", q.name);
  r.Set("qtype", std::string(dns::TypeName(q.type)));
  r.Set("decision", decision);
  r.Set("reason", reason);
  if (!answers.empty()) {
    std::vector<std::string> ips;
    for (const auto& a : answers) ips.push_back(a.ToString());
    r.Set("answers", ips);
  }
  g_.metrics.CountDecision(decision, reason);
  *recorded = g_.audit->TryAppend(std::move(r));
}

void DnsServer::Handle(std::string packet, const sockaddr_storage& peer,
                       std::shared_ptr<Reply> reply) {
  dns::Query q;
  dns::ParseStatus st = dns::ParseQuery(packet, &q);
  if (st == dns::ParseStatus::kIgnore) return;
  bool recorded = false;
  auto source = AddressOf(peer);
  auto session = source ? g_.sessions->FindBySource(*source) : std::nullopt;
  std::string sid = session ? session->id : "";
  std::string pname = session ? session->policy : "";
  // A placeholder in a name is a credential on its way out through DNS: refused, and recorded
  // by the credential's name, never with the query name that carries it.
  std::set<std::string> keys;
  credentials::CollectPlaceholderKeys(q.name, &keys);
  if (auto owner = g_.sessions->FindPlaceholder(keys)) {
    audit::Record r("credential.leak_blocked");
    r.Set("credential", owner->credential).Set("where", "dns");
    if (session) {
      r.Set("session", sid);
      r.Set("policy", pname);
    }
    if (owner->session != sid) r.Set("placeholder_session", owner->session);
    r.Set("src", source ? source->ToString() : "unknown");
    r.Set("qtype", std::string(dns::TypeName(q.type)));
    g_.metrics.CountDecision("deny", "credential_leak_blocked");
    g_.audit->TryAppend(std::move(r));
    reply->Send(dns::BuildAnswer(q, dns::Rcode::kRefused, {}, 0));
    return;
  }
  if (st != dns::ParseStatus::kOk) {
    Audit(sid, pname, peer, q, "deny",
          st == dns::ParseStatus::kMalformed ? "malformed_query" : "not_implemented", {},
          &recorded);
    reply->Send(dns::BuildError(
        packet, st == dns::ParseStatus::kMalformed ? dns::Rcode::kFormErr : dns::Rcode::kNotImp));
    return;
  }
  auto answer = [&](dns::Rcode rcode, const std::string& decision, const std::string& reason) {
    Audit(sid, pname, peer, q, decision, reason, {}, &recorded);
    reply->Send(dns::BuildAnswer(q, recorded ? rcode : dns::Rcode::kRefused, {}, 0));
  };
  if (!session) return answer(dns::Rcode::kRefused, "deny", "unknown_session");
  if (!TakeToken(sid)) return answer(dns::Rcode::kRefused, "deny", "rate_limited");
  auto policies = g_.policies.Get();
  policy::Decision d = policy::DecideName(*policies, sid, pname, q.name);
  const bool address_query = q.type == dns::kTypeA || q.type == dns::kTypeAaaa;
  if (!d.allowed() || q.klass != 1) {
    // Unknown names: NXDOMAIN or REFUSED as the policy says, other types REFUSED; never asked
    // upstream.
    bool nx = address_query && d.policy &&
              d.policy->policy().unknown_names == policy::UnknownNames::kNxdomain;
    return answer(nx ? dns::Rcode::kNxDomain : dns::Rcode::kRefused, "deny",
                  std::string(policy::ReasonName(d.reason)));
  }
  std::string decision(policy::VerdictName(d.verdict));
  if (!address_query) return answer(dns::Rcode::kNoError, decision, "no_data_for_type");

  net::NormalizedHost host = net::NormalizeHost(q.name);
  std::weak_ptr<bool> alive = alive_;
  Worker* worker = &worker_;
  g_.resolver->Resolve(host.name, [this, alive, worker, q, peer, reply, sid, pname, decision,
                                   policies](Result<std::vector<net::IpAddress>> r) mutable {
    worker->Post([this, alive, q, peer, reply, sid, pname, decision, policies, r = std::move(r)]() {
      if (alive.expired() || !*alive.lock()) return;
      bool written = false;
      if (!r.ok()) {
        g_.metrics.resolver_errors++;
        bool nx = r.status().code() == StatusCode::kNotFound;
        Audit(sid, pname, peer, q, decision, nx ? "name_not_found" : "dns_failed", {}, &written);
        reply->Send(dns::BuildAnswer(q,
                                     !written ? dns::Rcode::kRefused
                                     : nx     ? dns::Rcode::kNxDomain
                                              : dns::Rcode::kServFail,
                                     {}, 0));
        return;
      }
      const policy::CompiledPolicy* cp = policies->Find(pname);
      std::vector<net::IpAddress> kept;
      for (const auto& a : r.value()) {
        if (cp && policy::AnswerAllowed(*cp, a)) kept.push_back(a);
      }
      std::string reason = kept.size() == r.value().size() ? "allowed"
                           : kept.empty()                  ? "answers_denied"
                                                           : "some_answers_denied";
      Audit(sid, pname, peer, q, decision, reason, kept, &written);
      net::NormalizedHost name = net::NormalizeHost(q.name);
      for (const auto& a : kept) g_.dns_mappings.Record(sid, a, name.name);
      reply->Send(dns::BuildAnswer(q, written ? dns::Rcode::kNoError : dns::Rcode::kRefused, kept,
                                   g_.config.dns_answer_ttl));
    });
  });
}

}  // namespace airlock::server
