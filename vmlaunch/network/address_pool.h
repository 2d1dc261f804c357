// AddressPool: a /30 per session from a configurable range (gateway .1, guest .2), persisted in a
// JSON file under an exclusive flock so that concurrent launchers never hand out the same block.
// A lease records its owner's pid; leases of dead owners are reclaimed on the next allocation.
// Each call opens, locks, reads, writes and closes the file; safe across processes and threads.
#pragma once

#include <string>
#include <vector>

#include "gateway/base/status.h"
#include "gateway/net/ip_address.h"

namespace airlock::vmnet {

struct Lease {
  net::IpAddress block;  // the /30's network address
  net::IpAddress gateway() const;
  net::IpAddress guest() const;
  std::string owner;  // e.g. the sandbox name
  int pid = 0;
};

class AddressPool {
 public:
  AddressPool(std::string state_file, net::Cidr range);

  Result<Lease> Allocate(const std::string& owner, int pid);
  Status Release(const net::IpAddress& block);
  Result<std::vector<Lease>> List();

 private:
  std::string state_file_;
  net::Cidr range_;
};

}  // namespace airlock::vmnet
