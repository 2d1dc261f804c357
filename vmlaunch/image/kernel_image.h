// The guest kernel for PVH boot. Debian ships a bzImage whose payload is a compressed ELF
// vmlinux; QEMU's microvm and Firecracker boot that ELF directly (PVH entry point). We find the
// payload by the magic of each compression format the kernel supports, decompress it with the
// matching tool and keep the first result that is an ELF image. Stateless.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gateway/base/status.h"

namespace airlock::vmlaunch {

struct PayloadCandidate {
  size_t offset;
  std::string format;      // "lz4", "gzip", "xz", "zstd", "lzma", "bzip2"
  std::string decompress;  // the tool that reads it on stdin: "lz4 -dc", ...
};

// Every place in `bzimage` where a compressed payload may start, in file order.
std::vector<PayloadCandidate> FindPayloads(std::string_view bzimage);
bool IsElf(std::string_view data);

// Writes the ELF vmlinux inside the bzImage at `bzimage_path` to `out_path`.
Status ExtractVmlinux(const std::string& bzimage_path, const std::string& out_path);

}  // namespace airlock::vmlaunch
