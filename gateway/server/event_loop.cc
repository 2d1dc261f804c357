// Worker threads.
#include "gateway/server/event_loop.h"

#include <event2/thread.h>
#include <pthread.h>

#include <cstdlib>

namespace airlock::server {

void EnableLibeventThreads() {
  if (evthread_use_pthreads() != 0) std::abort();
}

namespace {

// A worker's loop. With epoll's change list, the registrations a callback changes (a
// bufferevent's read disabled then enabled again within one request, say) are applied once, when
// the loop next waits, instead of an epoll_ctl(2) each. Its caveat: a descriptor closed while
// another copy of it lives on (dup(), or a child process between fork and exec) stays in the
// epoll set, since the deferred removal comes after the close. The gateway dups none, makes
// every socket and pipe close-on-exec (upstream sockets too: ProxyConnection::Dial), and its
// credential helpers are spawned with everything above stderr closed.
event_base* NewWorkerBase() {
  event_config* cfg = event_config_new();
  if (!cfg) return nullptr;
  event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  event_base* base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  return base;
}

}  // namespace

Worker::Worker() : base_(NewWorkerBase()) {
  if (!base_) std::abort();
  wake_.reset(event_new(base_.get(), -1, 0, OnPosted, this));
}

Worker::~Worker() { Stop(); }

void Worker::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "al-worker");  // as top -H and perf show it
    // Keep the loop alive while idle.
    EventPtr keepalive(event_new(
        base_.get(), -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr));
    timeval forever{3600 * 24 * 365, 0};
    event_add(keepalive.get(), &forever);
    event_base_loop(base_.get(), 0);
  });
}

void Worker::Stop() {
  if (!thread_.joinable()) return;
  event_base_loopbreak(base_.get());
  thread_.join();
}

void Worker::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    posted_.push_back(std::move(fn));
  }
  event_active(wake_.get(), EV_READ, 0);
}

void Worker::OnPosted(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Worker*>(arg);
  std::vector<std::function<void()>> run;
  {
    std::lock_guard<std::mutex> lk(self->mu_);
    run.swap(self->posted_);
  }
  for (auto& fn : run) fn();
}

}  // namespace airlock::server
