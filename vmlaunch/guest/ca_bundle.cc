// CaBundle (see ca_bundle.h).
#include "vmlaunch/guest/ca_bundle.h"

#include <algorithm>
#include <vector>

namespace airlock::vmlaunch {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == '\n' || s.front() == '\r' || s.front() == ' ')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

std::string CaBundle(std::initializer_list<std::string_view> parts) {
  std::string bundle;
  std::vector<std::string_view> seen;
  for (std::string_view part : parts) {
    part = Trim(part);
    if (part.empty() || std::find(seen.begin(), seen.end(), part) != seen.end()) continue;
    seen.push_back(part);
    bundle.append(part);
    bundle += '\n';
  }
  return bundle;
}

}  // namespace airlock::vmlaunch
