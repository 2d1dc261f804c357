// TunnelRelay: moves bytes both ways unchanged (passthrough TLS, raw TCP, WebSocket after its
// 101), with back-pressure (a side stops being read while the other has kRelayHighWater queued)
// and half-close (an EOF is passed on once everything before it is written). The connection
// ends when both sides have closed and everything is written. Lives on its connection's worker.
#pragma once

#include <memory>

#include "gateway/server/relay.h"

namespace airlock::server {

class TunnelRelay : public Tunnel {
 public:
  explicit TunnelRelay(RelayHost& host) : host_(host) {}
  void Start() override;

  void OnClientRead() override;
  void OnClientWrite() override;
  void OnClientEof() override;
  void OnUpstreamRead() override;
  void OnUpstreamWrite() override;
  void OnUpstreamEof() override;
  void OnUpstreamError(bool timeout) override;

 private:
  void Move(bufferevent* from, bufferevent* to, bool upward);
  void MaybeFinish();

  RelayHost& host_;
  bool client_eof_ = false;
  bool upstream_eof_ = false;
};

// The tunnel for the connection's two ends: SpliceRelay between plain sockets (zero copy),
// TunnelRelay when either end is TLS or splicing cannot be set up.
std::unique_ptr<Tunnel> MakeTunnel(RelayHost& host);

}  // namespace airlock::server
