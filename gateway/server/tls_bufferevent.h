// TLS on a bufferevent: wraps a connected bufferevent in libevent's OpenSSL filter, which then
// owns both the SSL object (made by tls/) and the bufferevent under it. server/ never calls
// OpenSSL itself; it passes the SSL objects tls/ hands out. Used on the connection's worker.
#pragma once

#include <cstddef>
#include <memory>
#include <unordered_map>

#include "gateway/server/event_loop.h"

struct ssl_st;

namespace airlock::server {

enum class TlsRole { kServer, kClient };

// Encrypted bytes queued on a TLS bufferevent's socket before the filter stops encrypting more.
constexpr size_t kTlsSocketQueue = 256 << 10;

// Wraps `underlying` (bytes already in its input, such as a ClientHello, are read first).
// Dirty shutdowns (no close_notify) read as EOF, as most peers close that way.
BufferEventPtr WrapTls(event_base* base, BufferEventPtr underlying, ssl_st* ssl, TlsRole role);

// TLS bufferevents left to finish writing (FreeTlsAfterFlush), by filter, so that a worker
// that stops frees them. Touched only on the worker's thread.
struct Lingering;
using LingeringTls = std::unordered_map<bufferevent*, std::unique_ptr<Lingering>>;
struct Lingering {
  bufferevent* filter;
  LingeringTls* owner;
};

// Frees a TLS bufferevent once the bytes it has encrypted are written to its socket, or after
// `linger`, or by FreeLingering(), whichever comes first. The connection that owned it may be
// gone by then.
void FreeTlsAfterFlush(BufferEventPtr bev, timeval linger, LingeringTls* lingering);
// Frees every TLS bufferevent still lingering (a worker shutting down).
void FreeLingering(LingeringTls* lingering);

// The SSL object of a TLS bufferevent.
ssl_st* SslOf(bufferevent* bev);
// The first OpenSSL error queued on a TLS bufferevent (0: none).
unsigned long TlsErrorOf(bufferevent* bev);

}  // namespace airlock::server
