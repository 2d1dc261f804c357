// Line framing: a buffer, a newline scan that resumes where it stopped, and full writes.
#include "vmlaunch/guest/line_channel.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>

#include <cerrno>
#include <chrono>

namespace airlock::vmlaunch {
namespace {

// Whether a line nests arrays and objects deeper than `limit` (brackets inside strings do not
// count). Checked before parsing: a parsed document that deep is copied and compared
// recursively, and 100,000 levels overflow the stack.
bool NestsDeeperThan(std::string_view line, int limit) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

}  // namespace

LineChannel::ReadResult LineChannel::ReadSome() {
  char chunk[65536];
  ssize_t n = ::read(fd_, chunk, sizeof(chunk));
  if (n > 0) {
    buf_.append(chunk, static_cast<size_t>(n));
    return ReadResult::kData;
  }
  if (n == 0) return ReadResult::kEof;
  if (errno == EAGAIN || errno == EINTR) return ReadResult::kAgain;
  return ReadResult::kError;
}

std::optional<nlohmann::json> LineChannel::Next() {
  size_t nl = buf_.find('\n', scanned_);
  if (nl == std::string::npos) {
    scanned_ = buf_.size();
    if (buf_.size() > kMaxLine) overflowed_ = true;
    return std::nullopt;
  }
  std::string line = buf_.substr(0, nl);
  buf_.erase(0, nl + 1);
  scanned_ = 0;
  if (NestsDeeperThan(line, kMaxDepth)) {
    return nlohmann::json{
        {"invalid", "a message may nest at most " + std::to_string(kMaxDepth) + " levels"}};
  }
  auto message = nlohmann::json::parse(line, nullptr, false);
  if (message.is_discarded() || !message.is_object()) {
    return nlohmann::json{{"invalid", "a message must be one JSON object on one line"}};
  }
  return message;
}

Result<nlohmann::json> LineChannel::Receive(int timeout_ms) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    if (auto m = Next()) return *m;
    if (overflowed_) return Status::Error("message too long");
    int wait = -1;
    if (timeout_ms >= 0) {
      // (A timeout of 0 still reads what has arrived.)
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      wait = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, wait);
    if (r < 0 && errno != EINTR) return Status::Error("poll failed");
    if (r == 0 && timeout_ms >= 0 && Clock::now() >= deadline) {
      return Status::Error("timed out", StatusCode::kTimedOut);
    }
    if (r <= 0) continue;
    switch (ReadSome()) {
      case ReadResult::kEof:
        return Status::Error("the channel closed");
      case ReadResult::kError:
        return Status::Error("read failed");
      default:
        break;
    }
  }
}

std::string LineChannel::Frame(const nlohmann::json& message) {
  std::string line = message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line.push_back('\n');
  return line;
}

Status LineChannel::Send(const nlohmann::json& message) {
  const std::string line = Frame(message);
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(fd_, line.data() + off, line.size() - off);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, 1000);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return Status::Error("write failed");
    }
  }
  return Status::Ok();
}

}  // namespace airlock::vmlaunch
