// sockaddr conversions.
#include "gateway/server/sockaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cstring>

namespace airlock::server {

std::optional<net::IpAddress> AddressOf(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    return net::IpAddress::V4(ntohl(sin->sin_addr.s_addr));
  }
  if (ss.ss_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    std::array<uint8_t, 16> b{};
    std::memcpy(b.data(), &sin6->sin6_addr, 16);
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(b.data(), kMapped, 12) == 0) {
      return net::IpAddress::V4((uint32_t{b[12]} << 24) | (uint32_t{b[13]} << 16) |
                                (uint32_t{b[14]} << 8) | b[15]);
    }
    return net::IpAddress::V6(b);
  }
  return std::nullopt;
}

uint16_t PortOf(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
  }
  return 0;
}

sockaddr_storage ToSockaddr(const net::IpAddress& a, uint16_t port, socklen_t* len) {
  sockaddr_storage ss{};
  if (a.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, a.bytes().data(), 4);
    *len = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    std::memcpy(&sin6->sin6_addr, a.bytes().data(), 16);
    *len = sizeof(sockaddr_in6);
  }
  return ss;
}

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // not TCP (a test's unix
                                                                // socket): nothing to do
}

}  // namespace airlock::server
