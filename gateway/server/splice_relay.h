// SpliceRelay: a byte tunnel between two plain sockets (passthrough TLS, raw TCP, cleartext
// WebSocket after its 101) that moves the bytes with splice(2) through a pipe per direction, so
// they never enter the gateway's memory. It keeps TunnelRelay's promises: back-pressure (a side
// is read only while its pipe has room, so a slow reader holds at most a pipe's worth), half-
// close (an EOF is passed on once everything before it is written), the idle timeout on each
// side's reads and writes, and byte accounting as bytes are read; bytes past the session's byte
// budget are never written. Bytes the connection had buffered before (a ClientHello read while
// deciding, bytes after a 101) go first. While it runs, the connection's bufferevents are
// disabled: it watches the two descriptors itself. The pipes are the worker's (PipePool), held
// only while bytes are in them, so an idle tunnel costs its two sockets; when none can be had
// (out of descriptors) the bytes go through user space, as bounded. Lives on its connection's
// worker.
#pragma once

#include <memory>

#include "gateway/server/relay.h"

namespace airlock::server {

class SpliceRelay : public Tunnel {
 public:
  // Null when the bufferevents are not both plain sockets (TLS filters: the bytes are
  // decrypted in user space anyway); the caller uses TunnelRelay.
  static std::unique_ptr<SpliceRelay> Create(RelayHost& host);
  ~SpliceRelay() override;

  void Start() override;

  // The bufferevents are disabled while splicing: none of these is called, but for an upstream
  // error the bufferevent had seen before Start() (delivered late), which ends the tunnel.
  void OnClientRead() override {}
  void OnClientWrite() override {}
  void OnClientEof() override {}
  void OnUpstreamRead() override {}
  void OnUpstreamWrite() override {}
  void OnUpstreamEof() override {}
  void OnUpstreamError(bool timeout) override;

 private:
  struct Direction;
  explicit SpliceRelay(RelayHost& host);
  bool Setup(Direction& d, bufferevent* from, bufferevent* to, bool upward);
  static void OnEvent(evutil_socket_t fd, short what, void* arg);
  // Moves what it can in `d` and sets its events; false once the connection was closed.
  bool Pump(Direction& d);
  // Ends the connection when both directions have passed their EOF on. Call last.
  void MaybeFinish();

  RelayHost& host_;
  const timeval idle_;
  std::unique_ptr<Direction> up_;
  std::unique_ptr<Direction> down_;
};

}  // namespace airlock::server
