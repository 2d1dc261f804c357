// ReadFile: a whole file as bytes ("" if it cannot be read); WriteFile: a whole file with its
// permissions. Stateless.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "gateway/base/status.h"

namespace airlock::vmlaunch {

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline Status WriteFile(const std::string& path, std::string_view data,
                        std::filesystem::perms perms) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  f.close();
  if (!f) return Status::Error("cannot write " + path);
  std::error_code ec;
  std::filesystem::permissions(path, perms, ec);
  if (ec) return Status::Error("cannot set the permissions of " + path + ": " + ec.message());
  return Status::Ok();
}

}  // namespace airlock::vmlaunch
