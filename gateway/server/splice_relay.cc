// Zero-copy tunnels: splice(2) from socket to pipe to socket (see splice_relay.h).
#include "gateway/server/splice_relay.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "gateway/server/pipe_pool.h"

namespace airlock::server {

// One way through the tunnel: `from`'s bytes into the pipe, the pipe's into `to`.
struct SpliceRelay::Direction {
  SpliceRelay* relay = nullptr;
  bool upward = false;
  int from = -1;
  int to = -1;
  evbuffer* queued = nullptr;  // `to`'s bufferevent output: bytes from before splicing, first
  PipePool::Pipe pipe;         // the worker's, lent while bytes are in it
  size_t in_pipe = 0;
  // The pipe took nothing more though it holds less than its capacity: its slots are used up
  // (each piece of a TCP segment takes one). Read again once bytes leave it.
  bool pipe_full = false;
  bool eof = false;      // `from` has ended
  bool shut = false;     // ... and `to` was told (SHUT_WR)
  bool stopped = false;  // over the byte budget: nothing more is written
  bool writable = true;  // `to` took everything last time it was offered
  EventPtr read_event;   // `from` readable
  EventPtr write_event;  // `to` writable

  // Whether `from` may be read: room in the pipe; without a pipe, room to take one (or, when
  // none can be had, to copy through `queued`, which must then be empty).
  bool Room() const {
    if (pipe.valid()) return !pipe_full && in_pipe < pipe.capacity;
    return evbuffer_get_length(queued) == 0;
  }
};

namespace {

constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
// Bytes one callback moves at most before it lets the worker's other connections run.
constexpr size_t kMaxPerCall = 1 << 20;
// Bytes read into user space at a time when no pipe can be had (out of descriptors).
constexpr size_t kCopyChunk = 64 << 10;

bool Blocked(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

}  // namespace

SpliceRelay::SpliceRelay(RelayHost& host) : host_(host), idle_(ToTimeval(host.IdleTimeout())) {}

SpliceRelay::~SpliceRelay() {
  for (Direction* d : {up_.get(), down_.get()}) {
    if (!d) continue;
    if (d->in_pipe == 0) {
      host_.Pipes().Give(&d->pipe);
    } else {
      PipePool::Discard(&d->pipe);  // bytes nobody will read
    }
  }
}

std::unique_ptr<SpliceRelay> SpliceRelay::Create(RelayHost& host) {
  bufferevent* client = host.client();
  bufferevent* upstream = host.upstream();
  if (!upstream || bufferevent_get_underlying(client) || bufferevent_get_underlying(upstream)) {
    return nullptr;  // TLS filters: their bytes pass through OpenSSL in user space
  }
  std::unique_ptr<SpliceRelay> r(new SpliceRelay(host));
  r->up_ = std::make_unique<Direction>();
  r->down_ = std::make_unique<Direction>();
  if (!r->Setup(*r->up_, client, upstream, true) || !r->Setup(*r->down_, upstream, client, false)) {
    return nullptr;  // out of memory
  }
  return r;
}

bool SpliceRelay::Setup(Direction& d, bufferevent* from, bufferevent* to, bool upward) {
  d.relay = this;
  d.upward = upward;
  d.from = bufferevent_getfd(from);
  d.to = bufferevent_getfd(to);
  d.queued = bufferevent_get_output(to);
  event_base* base = bufferevent_get_base(from);
  d.read_event.reset(event_new(base, d.from, EV_READ | EV_PERSIST, OnEvent, &d));
  d.write_event.reset(event_new(base, d.to, EV_WRITE | EV_PERSIST, OnEvent, &d));
  return d.read_event && d.write_event;
}

void SpliceRelay::Start() {
  bufferevent* client = host_.client();
  bufferevent* upstream = host_.upstream();
  // From here on the descriptors are this relay's to watch.
  bufferevent_disable(client, EV_READ | EV_WRITE);
  bufferevent_disable(upstream, EV_READ | EV_WRITE);
  // What was read before splicing began goes out first, counted like the rest.
  for (auto [from, d] : {std::pair{client, up_.get()}, std::pair{upstream, down_.get()}}) {
    evbuffer* in = bufferevent_get_input(from);
    size_t n = evbuffer_get_length(in);
    if (n > 0) {
      evbuffer_add_buffer(d->queued, in);
      if (!host_.CountBytes(n, d->upward)) d->stopped = true;
    }
  }
  if (!Pump(*down_) || !Pump(*up_)) return;
  MaybeFinish();
}

void SpliceRelay::OnUpstreamError(bool timeout) {
  host_.Close(timeout ? "idle_timeout" : "upstream_error");
}

void SpliceRelay::OnEvent(evutil_socket_t, short what, void* arg) {
  auto* d = static_cast<Direction*>(arg);
  SpliceRelay* self = d->relay;
  if (what & EV_TIMEOUT) {
    self->host_.Close("idle_timeout");
    return;
  }
  if (what & EV_WRITE) d->writable = true;
  if (!self->Pump(*d)) return;
  self->MaybeFinish();
}

bool SpliceRelay::Pump(Direction& d) {
  // The side a failure is on names the reason, as the bufferevents' errors did.
  auto fail = [&](bool on_from) {
    const bool client_side = on_from == d.upward;
    host_.Close(client_side ? "client_error" : "upstream_error");
    return false;
  };
  size_t moved = 0;
  bool more = false;     // stopped at kMaxPerCall: to be continued from the event loop
  bool no_pipe = false;  // the pool could not lend one in this call
  for (bool progress = true; progress;) {
    if (moved >= kMaxPerCall) {
      more = true;
      break;
    }
    progress = false;
    // 1. Out to `to`: the bytes queued before splicing, then the pipe's.
    while (!d.stopped && d.writable && evbuffer_get_length(d.queued) > 0) {
      // A bufferevent's output is frozen at its start for all but the bufferevent: thawed for
      // this write, as libevent's own writer does.
      evbuffer_unfreeze(d.queued, 1);
      int n = evbuffer_write(d.queued, d.to);
      const int err = errno;
      evbuffer_freeze(d.queued, 1);
      if (n < 0 && !Blocked(err)) return fail(false);
      if (n <= 0) d.writable = false;
    }
    if (!d.stopped && d.writable && d.in_pipe > 0 && evbuffer_get_length(d.queued) == 0) {
      ssize_t n = splice(d.pipe.read_end, nullptr, d.to, nullptr, d.in_pipe, kSpliceFlags);
      if (n < 0 && !Blocked(errno)) return fail(false);
      if (n > 0) {
        d.in_pipe -= static_cast<size_t>(n);
        d.pipe_full = false;
        moved += static_cast<size_t>(n);
        host_.CountSpliced(static_cast<size_t>(n));
        progress = true;
      } else {
        d.writable = false;
      }
    }
    // 2. In from `from`, while there is room (the back-pressure: a slow `to` stops this).
    if (!d.eof && !d.stopped && d.Room()) {
      ssize_t n = -1;
      int err = EAGAIN;
      if (d.pipe.valid() || (!no_pipe && host_.Pipes().Take(&d.pipe))) {
        n = splice(d.from, nullptr, d.pipe.write_end, nullptr, d.pipe.capacity - d.in_pipe,
                   kSpliceFlags);
        err = errno;
        // Nothing taken with bytes already in the pipe: no data, or no slot left; either way
        // there is no point in reading before some leave it (otherwise a level-triggered read
        // event on a socket the pipe cannot take from would fire in a loop).
        if (n < 0 && d.in_pipe > 0) d.pipe_full = true;
        if (n > 0) d.in_pipe += static_cast<size_t>(n);
      } else {
        // No pipe to be had (the process is out of descriptors; not asked again in this call):
        // these bytes go through user space, no more than kCopyChunk, written before anything
        // more is read. (evbuffer_read would read 4 KiB at a time.)
        no_pipe = true;
        evbuffer_iovec space;
        if (evbuffer_reserve_space(d.queued, kCopyChunk, &space, 1) != 1) return fail(true);
        n = read(d.from, space.iov_base, std::min(space.iov_len, kCopyChunk));
        err = errno;
        space.iov_len = n > 0 ? static_cast<size_t>(n) : 0;
        evbuffer_commit_space(d.queued, &space, 1);
        if (n > 0) moved += static_cast<size_t>(n);
      }
      if (n < 0 && !Blocked(err)) return fail(true);
      if (n == 0) d.eof = true;
      if (n > 0) {
        if (!host_.CountBytes(static_cast<size_t>(n), d.upward)) d.stopped = true;
        progress = true;
      }
    }
  }
  // An empty pipe goes back to the worker's pool: an idle tunnel holds none.
  if (d.pipe.valid() && d.in_pipe == 0) {
    host_.Pipes().Give(&d.pipe);
    d.pipe_full = false;
  }
  // Half-close: the EOF goes on once everything before it is out.
  if (d.eof && !d.shut && d.in_pipe == 0 && evbuffer_get_length(d.queued) == 0) {
    shutdown(d.to, SHUT_WR);
    d.shut = true;
  }
  // Watch `from` while there is room to read into, `to` while bytes wait for it. The idle
  // timeout runs on each: no byte read (or no room to write) for that long ends the tunnel.
  const bool want_read = !d.eof && !d.stopped && d.Room();
  const bool want_write = !d.stopped && !d.writable;
  if (want_read != static_cast<bool>(event_pending(d.read_event.get(), EV_READ, nullptr))) {
    want_read ? event_add(d.read_event.get(), &idle_) : event_del(d.read_event.get());
  }
  if (want_write != static_cast<bool>(event_pending(d.write_event.get(), EV_WRITE, nullptr))) {
    want_write ? event_add(d.write_event.get(), &idle_) : event_del(d.write_event.get());
  }
  if (more) event_active(d.read_event.get(), EV_READ, 1);  // the rest, after the others
  return true;
}

void SpliceRelay::MaybeFinish() {
  if (up_->shut && down_->shut) host_.Close("done");
}

}  // namespace airlock::server
