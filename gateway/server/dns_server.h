// DnsServer: the DNS responder sandboxes use (UDP and TCP). A query is answered only for the
// session its source address belongs to: a name some rule of the session's policy allows is
// resolved through the gateway's resolver, every answer address is checked (AnswerAllowed) and
// denied ones dropped, TTLs clamped; any other name gets NXDOMAIN (or REFUSED, per the policy's
// dns.unknown_names) without an upstream query; malformed queries FORMERR; a per-session token
// bucket limits the rate; every query is audited (and refused if it cannot be). Runs on a worker
// of its own; all state is touched only on that thread.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "gateway/dns/message.h"
#include "gateway/server/accept_pause.h"
#include "gateway/server/event_loop.h"
#include "gateway/server/gateway_state.h"

namespace airlock::server {

class DnsServer {
 public:
  DnsServer(GatewayState& g, Worker& worker);
  ~DnsServer();
  Status Listen(const sockaddr* addr, socklen_t len);

 private:
  struct Reply;  // where an answer goes: a UDP peer or a TCP connection
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point last;
  };

  static void OnUdp(evutil_socket_t fd, short, void* arg);
  static void OnTcpAccept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int, void* arg);
  void Handle(std::string packet, const sockaddr_storage& peer, std::shared_ptr<Reply> reply);
  bool TakeToken(const std::string& session);
  void Audit(const std::string& session, const std::string& policy, const sockaddr_storage& peer,
             const dns::Query& q, const std::string& decision, const std::string& reason,
             const std::vector<net::IpAddress>& answers, bool* recorded);

  GatewayState& g_;
  Worker& worker_;
  evutil_socket_t udp_fd_ = -1;
  EventPtr udp_event_;
  ListenerPtr tcp_listener_;
  std::unique_ptr<AcceptPause> tcp_pause_;  // (freed before the listener)
  std::map<std::string, Bucket> buckets_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace airlock::server
