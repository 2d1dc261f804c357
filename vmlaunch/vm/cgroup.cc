// cgroup v2 first, v1 second.
#include "vmlaunch/vm/cgroup.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace airlock::vmlaunch {

namespace fs = std::filesystem;

namespace {

bool WriteValue(const std::string& path, const std::string& value) {
  std::ofstream f(path);
  f << value;
  f.flush();
  return static_cast<bool>(f);
}

}  // namespace

Result<std::vector<std::string>> CreateCgroup(const CgroupSpec& spec, const std::string& root) {
  std::error_code ec;
  if (fs::exists(root + "/cgroup.controllers")) {  // v2
    const std::string parent = root + "/airlock";
    fs::create_directories(parent, ec);
    WriteValue(root + "/cgroup.subtree_control", "+memory +pids");
    WriteValue(parent + "/cgroup.subtree_control", "+memory +pids");
    const std::string dir = parent + "/" + spec.name;
    if (!fs::create_directory(dir, ec) && ec) {
      return Status::Error("cannot create cgroup " + dir + ": " + ec.message());
    }
    bool ok = WriteValue(dir + "/memory.max", std::to_string(spec.memory_bytes)) &&
              WriteValue(dir + "/pids.max", std::to_string(spec.pids_max));
    if (!ok) {
      RemoveCgroup({dir});
      return Status::Error("cannot set limits in " + dir);
    }
    return std::vector<std::string>{dir};
  }
  std::vector<std::string> made;
  for (const auto& [controller, file, value] :
       {std::tuple{"memory", "memory.limit_in_bytes", std::to_string(spec.memory_bytes)},
        {"pids", "pids.max", std::to_string(spec.pids_max)}}) {
    const std::string hierarchy = root + "/" + controller;
    if (!fs::exists(hierarchy + "/cgroup.procs")) continue;
    const std::string dir = hierarchy + "/airlock/" + spec.name;
    fs::create_directories(dir, ec);
    if (ec || !WriteValue(dir + "/" + file, value)) {
      RemoveCgroup(made);
      RemoveCgroup({dir});
      return Status::Error("cannot create cgroup " + dir);
    }
    made.push_back(dir);
  }
  if (made.empty()) return Status::Error("the host offers no memory or pids cgroup controller");
  return made;
}

void RemoveCgroup(const std::vector<std::string>& dirs) {
  for (const auto& dir : dirs) {
    for (int i = 0; i < 50 && ::rmdir(dir.c_str()) != 0 && errno == EBUSY; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

}  // namespace airlock::vmlaunch
