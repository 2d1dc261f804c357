// StandInServer: a unix socket served by a thread of the test, standing in for the server of a
// unix-socket API (the gateway's control API, Firecracker's API) in unit tests of its clients.
// It accepts `connections` connections one after another and hands each to `serve`; the
// destructor stops accepting, waits for the thread and removes the socket. ReadHttpRequest
// reads one request (headers and a Content-Length body) from a connection.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

namespace airlock::testing {

class StandInServer {
 public:
  StandInServer(int connections, std::function<void(int fd, int index)> serve) {
    path_ = (std::filesystem::temp_directory_path() /
             ("stand-in-" + std::to_string(getpid()) + "-" + std::to_string(counter_++) + ".sock"))
                .string();
    ::unlink(path_.c_str());
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::strncpy(sun.sun_path, path_.c_str(), sizeof(sun.sun_path) - 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0 || ::listen(fd_, 4) != 0) {
      connections = 0;
    }
    thread_ = std::thread([this, connections, serve = std::move(serve)] {
      for (int i = 0; i < connections; ++i) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        serve(c, i);
        ::close(c);
      }
    });
  }
  ~StandInServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  StandInServer(const StandInServer&) = delete;
  StandInServer& operator=(const StandInServer&) = delete;

  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
  int fd_ = -1;
  std::thread thread_;
};

inline std::string ReadHttpRequest(int fd) {
  std::string raw;
  char buf[4096];
  while (true) {
    const size_t head_end = raw.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      const size_t at = raw.find("Content-Length: ");
      const size_t length = at == std::string::npos ? 0 : std::stoul(raw.substr(at + 16));
      if (raw.size() >= head_end + 4 + length) return raw;
    }
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) return raw;
    raw.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace airlock::testing
