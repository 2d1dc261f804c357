// libevent's OpenSSL filter bufferevents (see tls_bufferevent.h).
#include "gateway/server/tls_bufferevent.h"

#include <event2/bufferevent_ssl.h>

namespace airlock::server {

BufferEventPtr WrapTls(event_base* base, BufferEventPtr underlying, ssl_st* ssl, TlsRole role) {
  bufferevent* bev = bufferevent_openssl_filter_new(
      base, underlying.get(), ssl,
      role == TlsRole::kServer ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_CONNECTING,
      BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
  if (!bev) return nullptr;  // the caller still owns `underlying` (freed with it) and `ssl`
  // The filter encrypts into the socket's buffer only up to this much queued: past it the
  // filter's own output grows, which is what the relays watch for back-pressure (without it a
  // slow reader would have everything encrypted and queued under the filter, unbounded).
  bufferevent_setwatermark(underlying.get(), EV_WRITE, kTlsSocketQueue / 4, kTlsSocketQueue);
  underlying.release();
  bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
  return BufferEventPtr(bev);
}

namespace {

void FreeFilter(bufferevent*, void* arg) {
  auto* l = static_cast<Lingering*>(arg);
  bufferevent* filter = l->filter;
  l->owner->erase(filter);  // deletes `l`
  bufferevent_free(filter);
}

void FreeFilterOnEvent(bufferevent* under, short, void* arg) { FreeFilter(under, arg); }

}  // namespace

void FreeTlsAfterFlush(BufferEventPtr bev, timeval linger, LingeringTls* lingering) {
  bufferevent* under = bufferevent_get_underlying(bev.get());
  if (!under || evbuffer_get_length(bufferevent_get_output(under)) == 0) return;
  // The filter is done with: its callbacks on the bufferevent under it give way to ours, and the
  // filter (with the SSL object and the socket) is freed when the last byte is written.
  bufferevent_setcb(bev.get(), nullptr, nullptr, nullptr, nullptr);
  bufferevent* filter = bev.release();
  auto l = std::make_unique<Lingering>(Lingering{filter, lingering});
  Lingering* arg = l.get();
  (*lingering)[filter] = std::move(l);
  bufferevent_setwatermark(under, EV_WRITE, 0, 0);  // called back when all is written
  bufferevent_setcb(under, nullptr, FreeFilter, FreeFilterOnEvent, arg);
  bufferevent_set_timeouts(under, nullptr, &linger);
  bufferevent_disable(under, EV_READ);
  bufferevent_enable(under, EV_WRITE);
}

void FreeLingering(LingeringTls* lingering) {
  while (!lingering->empty()) {
    auto it = lingering->begin();
    FreeFilter(nullptr, it->second.get());
  }
}

ssl_st* SslOf(bufferevent* bev) { return bufferevent_openssl_get_ssl(bev); }

unsigned long TlsErrorOf(bufferevent* bev) { return bufferevent_get_openssl_error(bev); }

}  // namespace airlock::server
