// LineChannel: newline-delimited JSON messages over a stream file descriptor (a virtio-serial
// port, a vsock connection or a unix socket). The guest agent and the host's agent client both
// speak through it. Reads are buffered and never block when the caller polls first; writes send
// the whole message, waiting for the descriptor to drain. Not thread-safe; one owner.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "gateway/base/status.h"

namespace airlock::vmlaunch {

class LineChannel {
 public:
  // A message (one line) longer than this is a protocol error: 64 MiB of file data, base64-coded,
  // plus the envelope.
  static constexpr size_t kMaxLine = 96u << 20;
  // Arrays and objects nested deeper than this make a line invalid before it is parsed.
  static constexpr int kMaxDepth = 32;

  explicit LineChannel(int fd) : fd_(fd) {}
  int fd() const { return fd_; }

  enum class ReadResult { kData, kAgain, kEof, kError };
  // One read(2) into the buffer.
  ReadResult ReadSome();
  // The next complete message, if one is buffered; a line that is not a JSON object (or nests
  // deeper than kMaxDepth) becomes {"invalid": "<what is wrong>"}.
  std::optional<nlohmann::json> Next();
  // True if a complete message is buffered (Next would return it without reading).
  bool HasMessage() const { return buf_.find('\n', scanned_) != std::string::npos; }
  // Blocks until a message arrives; an error at EOF, on a read error, or after `timeout_ms`
  // (negative: no limit).
  Result<nlohmann::json> Receive(int timeout_ms = -1);
  Status Send(const nlohmann::json& message);
  // `message` as the line Send writes (invalid UTF-8 replaced), for a caller that queues it.
  static std::string Frame(const nlohmann::json& message);
  // True if a line longer than kMaxLine arrived (the channel is then unusable).
  bool overflowed() const { return overflowed_; }

 private:
  int fd_;
  std::string buf_;
  size_t scanned_ = 0;  // bytes of buf_ known to hold no newline
  bool overflowed_ = false;
};

}  // namespace airlock::vmlaunch
