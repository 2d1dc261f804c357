// CollectFiles(): expands a command line's files and directories into the files to load.
// No thread ownership.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "gateway/config/diagnostic.h"

namespace airlock::config {

// Files are taken as given; a directory contributes its regular files whose name satisfies
// `wanted`, sorted. A path that does not exist becomes a diagnostic.
std::vector<std::string> CollectFiles(const std::vector<std::string>& paths,
                                      const std::function<bool(const std::string&)>& wanted,
                                      Diagnostics* diags);

}  // namespace airlock::config
