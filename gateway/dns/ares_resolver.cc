// The c-ares resolver. One thread owns the ares channel and runs poll() over its sockets and an
// eventfd that wakes it for new requests; the cache is guarded by the request mutex.
#include <ares.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "gateway/dns/resolver.h"

namespace airlock::dns {
namespace {

using Clock = std::chrono::steady_clock;

class AresResolver final : public Resolver {
 public:
  explicit AresResolver(ResolverOptions options) : options_(std::move(options)) {}

  ~AresResolver() override {
    stop_ = true;
    Wake();
    if (thread_.joinable()) thread_.join();
    if (channel_) ares_destroy(channel_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    ares_library_cleanup();
  }

  Status Init() {
    if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
      return Status::Error("c-ares initialisation failed");
    }
    ares_options opts{};
    opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
    opts.timeout = static_cast<int>(options_.timeout.count());
    opts.tries = options_.tries;
    opts.lookups = const_cast<char*>("b");  // DNS only, never /etc/hosts
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS;
    if (int rc = ares_init_options(&channel_, &opts, mask); rc != ARES_SUCCESS) {
      return Status::Error(std::string("c-ares: ") + ares_strerror(rc));
    }
    if (!options_.servers.empty()) {
      std::string csv;
      for (const auto& s : options_.servers) csv += (csv.empty() ? "" : ",") + s;
      if (int rc = ares_set_servers_ports_csv(channel_, csv.c_str()); rc != ARES_SUCCESS) {
        return Status::Error("bad resolver servers '" + csv + "': " + ares_strerror(rc));
      }
    }
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) return Status::Error("eventfd failed");
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "al-resolver");
      Run();
    });
    return Status::Ok();
  }

  void Resolve(const std::string& name, ResolveCallback callback) override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      auto it = cache_.find(name);
      bool fresh = it != cache_.end() && it->second.expires > Clock::now();
      pending_.push_back({name, std::move(callback),
                          fresh ? it->second.addresses : std::vector<net::IpAddress>{}, fresh});
    }
    Wake();
  }

 private:
  struct Request {
    std::string name;
    ResolveCallback callback;
    std::vector<net::IpAddress> cached;
    bool from_cache;
  };
  struct Query {
    AresResolver* self;
    std::string name;
    ResolveCallback callback;
  };
  struct Entry {
    std::vector<net::IpAddress> addresses;
    Clock::time_point expires;
  };

  void Wake() {
    uint64_t one = 1;
    if (wake_fd_ >= 0) (void)::write(wake_fd_, &one, sizeof(one));
  }

  static void OnResult(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
    std::unique_ptr<Query> q(static_cast<Query*>(arg));
    if (status != ARES_SUCCESS) {
      if (result) ares_freeaddrinfo(result);
      if (status == ARES_ENOTFOUND) {
        q->callback(Status::Error("no such name", StatusCode::kNotFound));
      } else {
        q->callback(Status::Error(status == ARES_ENODATA ? "no addresses for the name"
                                                         : ares_strerror(status)));
      }
      return;
    }
    std::vector<net::IpAddress> addrs;
    int min_ttl = INT32_MAX;
    for (ares_addrinfo_node* n = result->nodes; n; n = n->ai_next) {
      min_ttl = std::min(min_ttl, n->ai_ttl);
      if (n->ai_family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(n->ai_addr);
        addrs.push_back(net::IpAddress::V4(ntohl(sin->sin_addr.s_addr)));
      } else if (n->ai_family == AF_INET6) {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(n->ai_addr);
        std::array<uint8_t, 16> b{};
        std::memcpy(b.data(), &sin6->sin6_addr, 16);
        addrs.push_back(net::IpAddress::V6(b));
      }
    }
    ares_freeaddrinfo(result);
    if (addrs.empty()) {
      q->callback(Status::Error("no addresses for the name"));
      return;
    }
    auto ttl =
        std::clamp<std::chrono::seconds>(std::chrono::seconds(std::max(min_ttl, 0)),
                                         q->self->options_.min_ttl, q->self->options_.max_ttl);
    if (min_ttl > 0 && ttl.count() > 0) {
      std::lock_guard<std::mutex> lk(q->self->mu_);
      q->self->cache_[q->name] = Entry{addrs, Clock::now() + ttl};
    }
    q->callback(std::move(addrs));
  }

  void Run() {
    while (!stop_) {
      std::deque<Request> work;
      {
        std::lock_guard<std::mutex> lk(mu_);
        work.swap(pending_);
      }
      for (auto& r : work) {
        if (r.from_cache) {
          r.callback(std::move(r.cached));
          continue;
        }
        ares_addrinfo_hints hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_flags = ARES_AI_NOSORT;
        auto* q = new Query{this, r.name, std::move(r.callback)};
        ares_getaddrinfo(channel_, r.name.c_str(), nullptr, &hints, OnResult, q);
      }
      ares_socket_t socks[ARES_GETSOCK_MAXNUM];
      int bits = ares_getsock(channel_, socks, ARES_GETSOCK_MAXNUM);
      std::vector<pollfd> fds;
      fds.push_back({wake_fd_, POLLIN, 0});
      for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
        short ev = 0;
        if (ARES_GETSOCK_READABLE(bits, i)) ev |= POLLIN;
        if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= POLLOUT;
        if (ev) fds.push_back({socks[i], ev, 0});
      }
      timeval tv{}, max{1, 0};
      timeval* tvp = ares_timeout(channel_, &max, &tv);
      int timeout_ms = static_cast<int>(tvp->tv_sec * 1000 + tvp->tv_usec / 1000);
      int n = ::poll(fds.data(), fds.size(), std::max(timeout_ms, 1));
      if (n < 0) continue;
      if (fds[0].revents & POLLIN) {
        uint64_t v;
        (void)::read(wake_fd_, &v, sizeof(v));
      }
      bool any = false;
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!fds[i].revents) continue;
        any = true;
        ares_socket_t r =
            (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd : ARES_SOCKET_BAD;
        ares_socket_t w = (fds[i].revents & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD;
        ares_process_fd(channel_, r, w);
      }
      if (!any) ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
    }
  }

  ResolverOptions options_;
  ares_channel channel_ = nullptr;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::deque<Request> pending_;
  std::map<std::string, Entry, std::less<>> cache_;
};

}  // namespace

Result<std::unique_ptr<Resolver>> MakeAresResolver(const ResolverOptions& options) {
  auto r = std::make_unique<AresResolver>(options);
  if (Status s = r->Init(); !s.ok()) return s;
  return std::unique_ptr<Resolver>(std::move(r));
}

}  // namespace airlock::dns
