// GuestIdentity: the command line's words, SIOCSIF*/SIOCADDRT ioctls on an AF_INET socket, and
// RNDADDENTROPY/RNDRESEEDCRNG on /dev/urandom.
#include "vmlaunch/guest/guest_identity.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/random.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace airlock::vmlaunch {
namespace {

constexpr char kDevice[] = "eth0";

// An IPv4 address in a sockaddr (as ioctls take them); false if `text` is not one.
bool Ipv4(const std::string& text, sockaddr* out) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  if (::inet_pton(AF_INET, text.c_str(), &sin.sin_addr) != 1) return false;
  std::memcpy(out, &sin, sizeof(sin));
  return true;
}

Status Errno(const std::string& what) { return Status::Error(what + ": " + std::strerror(errno)); }

class Socket {
 public:
  Socket() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

ifreq Request(const char* device) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, device, IFNAMSIZ - 1);
  return ifr;
}

Status SetUp(const Socket& s, const char* device, bool up) {
  ifreq ifr = Request(device);
  if (::ioctl(s.fd(), SIOCGIFFLAGS, &ifr) != 0) return Errno(std::string("no ") + device);
  ifr.ifr_flags = static_cast<short>(up ? (ifr.ifr_flags | IFF_UP) : (ifr.ifr_flags & ~IFF_UP));
  if (::ioctl(s.fd(), SIOCSIFFLAGS, &ifr) != 0) return Errno(std::string("cannot set ") + device);
  return Status::Ok();
}

Status SetMac(const Socket& s, const std::string& mac) {
  ifreq ifr = Request(kDevice);
  unsigned b[6];
  char extra;
  if (std::sscanf(mac.c_str(), "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
                  &extra) != 6) {
    return Status::Error("not a MAC address: " + mac);
  }
  ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
  for (int i = 0; i < 6; ++i) {
    if (b[i] > 0xff) return Status::Error("not a MAC address: " + mac);
    ifr.ifr_hwaddr.sa_data[i] = static_cast<char>(b[i]);
  }
  if (::ioctl(s.fd(), SIOCSIFHWADDR, &ifr) != 0) return Errno("cannot set the MAC address");
  return Status::Ok();
}

Status SetAddress(const Socket& s, const std::string& cidr) {
  const size_t slash = cidr.find('/');
  const std::string addr = cidr.substr(0, slash);
  int prefix = 32;
  if (slash != std::string::npos) {
    char* end = nullptr;
    const long p = std::strtol(cidr.c_str() + slash + 1, &end, 10);
    if (*end != '\0' || p < 0 || p > 32) return Status::Error("not an address/prefix: " + cidr);
    prefix = static_cast<int>(p);
  }
  ifreq ifr = Request(kDevice);
  if (!Ipv4(addr, &ifr.ifr_addr)) return Status::Error("not an IPv4 address: " + addr);
  if (::ioctl(s.fd(), SIOCSIFADDR, &ifr) != 0) return Errno("cannot set the address");
  ifreq mask = Request(kDevice);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix));
  std::memcpy(&mask.ifr_netmask, &sin, sizeof(sin));
  if (::ioctl(s.fd(), SIOCSIFNETMASK, &mask) != 0) return Errno("cannot set the netmask");
  return Status::Ok();
}

Status AddDefaultRoute(const Socket& s, const std::string& gateway) {
  rtentry rt{};
  Ipv4("0.0.0.0", &rt.rt_dst);
  Ipv4("0.0.0.0", &rt.rt_genmask);
  if (!Ipv4(gateway, &rt.rt_gateway)) return Status::Error("not an IPv4 address: " + gateway);
  rt.rt_flags = RTF_UP | RTF_GATEWAY;
  char device[sizeof(kDevice)];
  std::memcpy(device, kDevice, sizeof(kDevice));
  rt.rt_dev = device;
  if (::ioctl(s.fd(), SIOCADDRT, &rt) != 0 && errno != EEXIST) {
    return Errno("cannot add the default route");
  }
  return Status::Ok();
}

Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  f.flush();
  return f ? Status::Ok() : Status::Error("cannot write " + path);
}

}  // namespace

GuestIdentity IdentityFromCommandLine(const std::string& cmdline) {
  GuestIdentity id;
  std::istringstream words(cmdline);
  for (std::string w; words >> w;) {
    auto take = [&w](const char* key, std::string* out) {
      const std::string prefix = std::string(key) + "=";
      if (w.rfind(prefix, 0) == 0) *out = w.substr(prefix.size());
    };
    take("airlock.ip", &id.address);
    take("airlock.gw", &id.gateway);
    take("airlock.hostname", &id.hostname);
    take("airlock.proxy", &id.proxy);
  }
  return id;
}

std::map<std::string, std::string> ProxyEnvironment(const std::string& proxy) {
  if (proxy.empty()) return {};
  std::map<std::string, std::string> env;
  for (const char* v : {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"}) env[v] = proxy;
  env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1";
  return env;
}

Status ReseedRandom(const std::string& seed) {
  int fd = ::open("/dev/urandom", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("cannot open /dev/urandom");
  std::vector<uint32_t> buf(sizeof(rand_pool_info) / 4 + (seed.size() + 3) / 4);
  auto* info = reinterpret_cast<rand_pool_info*>(buf.data());
  info->entropy_count = static_cast<int>(seed.size() * 8);
  info->buf_size = static_cast<int>(seed.size());
  std::memcpy(info->buf, seed.data(), seed.size());
  const bool ok = ::ioctl(fd, RNDADDENTROPY, info) == 0 && ::ioctl(fd, RNDRESEEDCRNG) == 0;
  ::close(fd);
  return ok ? Status::Ok()
            : Status::Error(std::string("reseeding failed: ") + std::strerror(errno));
}

Status UpLoopback() {
  Socket s;
  if (s.fd() < 0) return Errno("socket");
  return SetUp(s, "lo", true);
}

Status ApplyIdentity(const GuestIdentity& id, const std::string& etc) {
  const std::string name = id.hostname.empty() ? "airlock" : id.hostname;
  if (::sethostname(name.c_str(), name.size()) != 0) return Errno("cannot set the hostname");
  if (Status s = WriteFile(etc + "/hosts", "127.0.0.1 localhost\n127.0.1.1 " + name + "\n");
      !s.ok()) {
    return s;
  }
  Socket s;
  if (s.fd() < 0) return Errno("socket");
  if (Status st = SetUp(s, "lo", true); !st.ok()) return st;
  if (id.address.empty() && id.mac.empty()) return Status::Ok();
  // The MAC changes only while the device is down.
  if (Status st = SetUp(s, kDevice, false); !st.ok()) return st;
  if (!id.mac.empty()) {
    if (Status st = SetMac(s, id.mac); !st.ok()) return st;
  }
  if (!id.address.empty()) {
    if (Status st = SetAddress(s, id.address); !st.ok()) return st;
  }
  if (Status st = SetUp(s, kDevice, true); !st.ok()) return st;
  // A MAC alone (a pooled VM's, before it has a network) leaves the device without an address.
  if (id.address.empty()) return Status::Ok();
  if (Status st = AddDefaultRoute(s, id.gateway); !st.ok()) return st;
  return WriteFile(etc + "/resolv.conf",
                   "nameserver " + id.gateway + "\noptions attempts:2 timeout:3\n");
}

}  // namespace airlock::vmlaunch
