// The seam between a connection's admission and what moves its bytes after the dial. Admission
// (ProxyConnection) identifies the session, decides, resolves, decides per address, writes
// connection.open and dials; then it hands both ends to a Relay chosen by the decision: a byte
// tunnel (passthrough TLS, raw TCP, WebSocket after 101) or an HTTP/1.1 exchange (cleartext, or
// decrypted inside terminated TLS). The connection keeps owning the two bufferevents and
// forwards their callbacks to the relay. Everything here lives on the connection's worker thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "gateway/server/event_loop.h"

namespace airlock::server {

class PipePool;

// What a relay may ask of the connection that owns it.
class RelayHost {
 public:
  virtual ~RelayHost() = default;
  virtual bufferevent* client() = 0;
  virtual bufferevent* upstream() = 0;  // null while there is no upstream
  // Payload bytes relayed: the connection's, the session's and the gateway's counters. False
  // once the session's byte budget is spent (the connection is then ended shortly): a relay
  // that can hold the bytes back (SpliceRelay) sends nothing more upward.
  virtual bool CountBytes(size_t n, bool upward) = 0;
  // How long a side may stay silent (or not take bytes) before the connection ends.
  virtual std::chrono::milliseconds IdleTimeout() const = 0;
  // Of those, bytes that went through a pipe, never copied (SpliceRelay): a metric.
  virtual void CountSpliced(size_t n) = 0;
  // The worker's pipes, lent to a SpliceRelay while bytes move.
  virtual PipePool& Pipes() = 0;
  // Head bytes written by the gateway: the connection's counters only.
  virtual void CountHead(size_t n, bool upward) = 0;
  // Ends the connection now (writes connection.close). The relay is destroyed with it: return
  // at once after calling.
  virtual void Close(const std::string& reason) = 0;
};

class Relay {
 public:
  virtual ~Relay() = default;
  virtual void OnClientRead() = 0;
  virtual void OnClientWrite() = 0;  // the client's output drained
  virtual void OnClientEof() = 0;
  virtual void OnUpstreamRead() = 0;
  virtual void OnUpstreamWrite() = 0;  // the upstream's output drained
  virtual void OnUpstreamEof() = 0;
  // The upstream failed (error or timeout) after the dial.
  virtual void OnUpstreamError(bool timeout) = 0;
  // The connection is ending, for whatever reason (also from outside: a reload, the session's
  // end, shutdown): write the records of requests still in flight. Must not close.
  virtual void OnClosing() {}
};

// A relay that moves bytes both ways unchanged (TunnelRelay, SpliceRelay: MakeTunnel picks).
class Tunnel : public Relay {
 public:
  // Moves whatever both sides have buffered already (a ClientHello read while deciding, bytes
  // after a 101). May close the connection: call last.
  virtual void Start() = 0;
};

// Pause reading from a side once the other side has this much queued for writing.
constexpr size_t kRelayHighWater = 1 << 20;

}  // namespace airlock::server
