// ReadFile: a whole file as bytes ("" if it cannot be read). Stateless.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

namespace airlock::vmlaunch {

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace airlock::vmlaunch
