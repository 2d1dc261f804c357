// Byte tunnels: back-pressure and half-close (see tunnel_relay.h).
#include "gateway/server/tunnel_relay.h"

#include <sys/socket.h>

#include "gateway/server/splice_relay.h"

namespace airlock::server {

std::unique_ptr<Tunnel> MakeTunnel(RelayHost& host) {
  if (auto splice = SpliceRelay::Create(host)) return splice;
  return std::make_unique<TunnelRelay>(host);
}

void TunnelRelay::Start() {
  bufferevent_enable(host_.upstream(), EV_READ);
  bufferevent_enable(host_.client(), EV_READ);
  Move(host_.upstream(), host_.client(), false);
  Move(host_.client(), host_.upstream(), true);
}

void TunnelRelay::Move(bufferevent* from, bufferevent* to, bool upward) {
  evbuffer* in = bufferevent_get_input(from);
  size_t n = evbuffer_get_length(in);
  if (n == 0) return;
  evbuffer_add_buffer(bufferevent_get_output(to), in);
  host_.CountBytes(n, upward);
  if (evbuffer_get_length(bufferevent_get_output(to)) >= kRelayHighWater) {
    bufferevent_disable(from, EV_READ);  // resumes from the other side's write callback
  }
}

void TunnelRelay::OnClientRead() { Move(host_.client(), host_.upstream(), true); }

void TunnelRelay::OnUpstreamRead() { Move(host_.upstream(), host_.client(), false); }

void TunnelRelay::OnClientWrite() {
  // Back-pressure relief: the client drained, read from upstream again.
  if (!upstream_eof_) bufferevent_enable(host_.upstream(), EV_READ);
  MaybeFinish();
}

void TunnelRelay::OnUpstreamWrite() {
  if (!client_eof_) bufferevent_enable(host_.client(), EV_READ);
  MaybeFinish();
}

void TunnelRelay::OnClientEof() {
  client_eof_ = true;
  OnClientRead();
  MaybeFinish();
}

void TunnelRelay::OnUpstreamEof() {
  upstream_eof_ = true;
  OnUpstreamRead();
  MaybeFinish();
}

void TunnelRelay::OnUpstreamError(bool timeout) {
  host_.Close(timeout ? "idle_timeout" : "upstream_error");
}

void TunnelRelay::MaybeFinish() {
  bufferevent* client = host_.client();
  bufferevent* upstream = host_.upstream();
  const bool up_drained = evbuffer_get_length(bufferevent_get_output(upstream)) == 0;
  const bool down_drained = evbuffer_get_length(bufferevent_get_output(client)) == 0;
  // Half-close: pass an EOF on once everything before it has been written.
  if (client_eof_ && up_drained) shutdown(bufferevent_getfd(upstream), SHUT_WR);
  if (upstream_eof_ && down_drained) shutdown(bufferevent_getfd(client), SHUT_WR);
  if (client_eof_ && upstream_eof_ && up_drained && down_drained) host_.Close("done");
}

}  // namespace airlock::server
