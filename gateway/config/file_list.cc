// Directory expansion for configuration loading.
#include "gateway/config/file_list.h"

#include <algorithm>
#include <filesystem>

namespace airlock::config {

std::vector<std::string> CollectFiles(const std::vector<std::string>& paths,
                                      const std::function<bool(const std::string&)>& wanted,
                                      Diagnostics* diags) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const auto& path : paths) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(path, ec)) {
        if (entry.is_regular_file() && wanted(entry.path().filename().string())) {
          found.push_back(entry.path().string());
        }
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(path, ec)) {
      files.push_back(path);
    } else {
      diags->Add(path, 0, 0, "no such file or directory");
    }
  }
  return files;
}

}  // namespace airlock::config
