// RAII ownership of libevent handles, and Worker: one thread running one event_base, with a
// thread-safe Post() to run a function on that thread. Only server/ includes event2 headers.
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace airlock::server {

struct EventBaseFree {
  void operator()(event_base* b) const { event_base_free(b); }
};
struct EventFree {
  void operator()(event* e) const { event_free(e); }
};
struct BufferEventFree {
  void operator()(bufferevent* b) const { bufferevent_free(b); }
};
struct EvBufferFree {
  void operator()(evbuffer* b) const { evbuffer_free(b); }
};
struct ListenerFree {
  void operator()(evconnlistener* l) const { evconnlistener_free(l); }
};
using EventBasePtr = std::unique_ptr<event_base, EventBaseFree>;
using EventPtr = std::unique_ptr<event, EventFree>;
using BufferEventPtr = std::unique_ptr<bufferevent, BufferEventFree>;
using EvBufferPtr = std::unique_ptr<evbuffer, EvBufferFree>;
using ListenerPtr = std::unique_ptr<evconnlistener, ListenerFree>;

// A duration as libevent's timeouts take it.
inline timeval ToTimeval(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

// Must run once, before any event_base is created (enables cross-thread event_active).
void EnableLibeventThreads();

class Worker {
 public:
  Worker();
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  event_base* base() const { return base_.get(); }
  void Start();  // runs the loop on a new thread
  void Stop();   // ends the loop and joins
  // Runs fn on this worker's thread, soon. Safe from any thread.
  void Post(std::function<void()> fn);
  bool OnThread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  static void OnPosted(evutil_socket_t, short, void* arg);

  EventBasePtr base_;
  EventPtr wake_;
  std::mutex mu_;
  std::vector<std::function<void()>> posted_;
  std::thread thread_;
};

}  // namespace airlock::server
