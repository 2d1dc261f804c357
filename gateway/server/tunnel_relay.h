// TunnelRelay: moves bytes both ways unchanged (passthrough TLS, raw TCP, WebSocket after its
// 101), with back-pressure (a side stops being read while the other has kRelayHighWater queued)
// and half-close (an EOF is passed on once everything before it is written). The connection
// ends when both sides have closed and everything is written. Lives on its connection's worker.
#pragma once

#include "gateway/server/relay.h"

namespace airlock::server {

class TunnelRelay : public Relay {
 public:
  explicit TunnelRelay(RelayHost& host) : host_(host) {}
  // Moves whatever both sides have buffered already (a ClientHello read while deciding, bytes
  // after a 101). May close the connection: call last.
  void Start();

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

}  // namespace airlock::server
