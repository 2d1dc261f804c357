// Payload search by magic bytes, decompression by the format's own tool.
#include "vmlaunch/image/kernel_image.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "vmlaunch/process/command.h"
#include "vmlaunch/process/read_file.h"

namespace airlock::vmlaunch {
namespace {

struct Format {
  std::string_view magic;
  const char* name;
  const char* tool;
};

// The magics the kernel's own scripts/extract-vmlinux looks for.
const Format kFormats[] = {
    {std::string_view("\x02\x21\x4c\x18", 4), "lz4", "lz4 -dc"},
    {std::string_view("\x1f\x8b\x08", 3), "gzip", "gzip -dc"},
    {std::string_view("\xfd\x37\x7a\x58\x5a\x00", 6), "xz", "xz -dc"},
    {std::string_view("\x28\xb5\x2f\xfd", 4), "zstd", "zstd -dc"},
    {std::string_view("\x5d\x00\x00\x00", 4), "lzma", "xz -dc --format=lzma"},
    {std::string_view("BZh", 3), "bzip2", "bzip2 -dc"},
};

}  // namespace

bool IsElf(std::string_view data) {
  return data.substr(0, 4) == std::string_view(
                                  "\x7f"
                                  "ELF",
                                  4);
}

std::vector<PayloadCandidate> FindPayloads(std::string_view bzimage) {
  std::vector<PayloadCandidate> out;
  for (const auto& f : kFormats) {
    for (size_t at = bzimage.find(f.magic); at != std::string_view::npos;
         at = bzimage.find(f.magic, at + 1)) {
      out.push_back({at, f.name, f.tool});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.offset < b.offset; });
  return out;
}

Status ExtractVmlinux(const std::string& bzimage_path, const std::string& out_path) {
  const std::string image = ReadFile(bzimage_path);
  if (image.empty()) return Status::Error("cannot read " + bzimage_path);
  if (IsElf(image)) {
    std::filesystem::copy_file(bzimage_path, out_path,
                               std::filesystem::copy_options::overwrite_existing);
    return Status::Ok();
  }
  for (const auto& c : FindPayloads(image)) {
    // Decompressors stop with an error at the bytes that follow the payload; what counts is
    // whether an ELF image came out.
    (void)RunCommand({"sh", "-c",
                      "tail -c +" + std::to_string(c.offset + 1) + " " + ShellQuote(bzimage_path) +
                          " | " + c.decompress + " > " + ShellQuote(out_path) + " 2>/dev/null"});
    std::ifstream f(out_path, std::ios::binary);
    char head[4] = {};
    f.read(head, 4);
    if (f && IsElf(std::string_view(head, 4)) && std::filesystem::file_size(out_path) > 1 << 20) {
      return Status::Ok();
    }
  }
  std::error_code ec;
  std::filesystem::remove(out_path, ec);
  return Status::Error(bzimage_path + ": no compressed ELF kernel found in the bzImage");
}

}  // namespace airlock::vmlaunch
