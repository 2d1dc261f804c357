// Conversions between sockaddr_storage and net::IpAddress, for listeners and dialling, and the
// options every relayed TCP socket gets.
// Pure functions; no thread ownership.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>

#include "gateway/net/ip_address.h"

namespace airlock::server {

// The peer's address; an IPv4-mapped IPv6 peer is reported as its IPv4 address.
std::optional<net::IpAddress> AddressOf(const sockaddr_storage& ss);
uint16_t PortOf(const sockaddr_storage& ss);
sockaddr_storage ToSockaddr(const net::IpAddress& address, uint16_t port, socklen_t* len);

// Turns Nagle's algorithm off: the relays write whole heads and frames, and holding a small one
// back until the last is acknowledged adds a delayed-ACK wait (tens of ms) to HTTP/2 streams
// and pipelined answers.
void SetNoDelay(int fd);

}  // namespace airlock::server
