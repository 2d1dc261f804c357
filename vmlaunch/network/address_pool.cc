// /30 leases in a locked JSON file.
#include "vmlaunch/network/address_pool.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

namespace airlock::vmnet {
namespace {

using json = nlohmann::json;

net::IpAddress Offset(const net::IpAddress& base, uint32_t n) {
  return net::IpAddress::V4(base.v4() + n);
}

// Runs fn(leases) with the file locked; writes the leases back if fn returns true.
Status WithLock(const std::string& path,
                const std::function<bool(std::map<std::string, json>&)>& fn) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Error("cannot open " + path);
  if (flock(fd, LOCK_EX) != 0) {
    ::close(fd);
    return Status::Error("cannot lock " + path);
  }
  std::string data;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) data.append(buf, static_cast<size_t>(n));
  std::map<std::string, json> leases;
  if (!data.empty()) {
    json doc = json::parse(data, nullptr, false);
    if (doc.is_discarded() || !doc.contains("leases")) {
      ::close(fd);
      return Status::Error(path + ": not an address pool file");
    }
    for (auto& [k, v] : doc["leases"].items()) leases[k] = v;
  }
  Status st;
  if (fn(leases)) {
    std::string out = json{{"leases", leases}}.dump(2) + "\n";
    if (ftruncate(fd, 0) != 0 ||
        pwrite(fd, out.data(), out.size(), 0) != static_cast<ssize_t>(out.size()) ||
        fsync(fd) != 0) {
      st = Status::Error("cannot write " + path);
    }
  }
  ::close(fd);  // releases the lock
  return st;
}

}  // namespace

net::IpAddress Lease::gateway() const { return Offset(block, 1); }
net::IpAddress Lease::guest() const { return Offset(block, 2); }

AddressPool::AddressPool(std::string state_file, net::Cidr range)
    : state_file_(std::move(state_file)), range_(range) {}

Result<Lease> AddressPool::Allocate(const std::string& owner, int pid) {
  if (!range_.base().is_v4() || range_.prefix_len() > 30) {
    return Status::Error("the pool must be an IPv4 range of /30 or larger");
  }
  std::optional<Lease> got;
  Status st = WithLock(state_file_, [&](std::map<std::string, json>& leases) {
    // Reclaim leases whose owner is gone.
    for (auto it = leases.begin(); it != leases.end();) {
      int p = it->second.value("pid", 0);
      bool alive = p > 0 && (kill(p, 0) == 0 || errno == EPERM);
      it = alive ? std::next(it) : leases.erase(it);
    }
    uint32_t blocks = 1u << (32 - range_.prefix_len() - 2);
    for (uint32_t i = 0; i < blocks; ++i) {
      net::IpAddress block = Offset(range_.base(), i * 4);
      if (leases.count(block.ToString())) continue;
      leases[block.ToString()] = json{{"owner", owner}, {"pid", pid}};
      got = Lease{block, owner, pid};
      return true;
    }
    return false;
  });
  if (!st.ok()) return st;
  if (!got) return Status::Error("the address pool " + range_.ToString() + " is exhausted");
  return *got;
}

Status AddressPool::Release(const net::IpAddress& block) {
  return WithLock(state_file_, [&](std::map<std::string, json>& leases) {
    return leases.erase(block.ToString()) > 0;
  });
}

Result<std::vector<Lease>> AddressPool::List() {
  std::vector<Lease> out;
  Status st = WithLock(state_file_, [&](std::map<std::string, json>& leases) {
    for (const auto& [k, v] : leases) {
      out.push_back(Lease{*net::IpAddress::Parse(k), v.value("owner", ""), v.value("pid", 0)});
    }
    return false;
  });
  if (!st.ok()) return st;
  return out;
}

}  // namespace airlock::vmnet
