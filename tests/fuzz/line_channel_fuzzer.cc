// Fuzz target: the guest agent's line channel (vmlaunch::LineChannel), which both the guest (for
// the host's requests) and the host (for the guest's replies) read, and the host's check of every
// guest message (GuestMessage::From and its accessors). The first byte picks how many bytes each
// read(2) gets; the rest goes through a pipe. Checks that lines read in pieces are the lines read
// whole, that a line that is not one JSON object is marked invalid and refused, and that no
// accessor throws on what a message passed.
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/fuzz_check.h"
#include "vmlaunch/guest/line_channel.h"
#include "vmlaunch/vm/guest_message.h"

namespace {

using airlock::vmlaunch::GuestMessage;
using airlock::vmlaunch::LineChannel;

// Every message the channel yields for `input` written `step` bytes at a time, as the host sees
// it: its dump, or the reason GuestMessage refused it.
std::vector<std::string> Read(std::string_view input, size_t step) {
  int fds[2];
  FUZZ_CHECK(::pipe2(fds, O_NONBLOCK) == 0);
  LineChannel channel(fds[0]);
  std::vector<std::string> out;
  auto drain = [&] {
    while (auto m = channel.Next()) {
      FUZZ_CHECK(m->is_object());
      auto message = GuestMessage::From(*m);
      if (m->contains("invalid")) FUZZ_CHECK(!message.ok());
      if (!message.ok()) {
        FUZZ_CHECK(!message.status().message().empty());
        out.push_back("refused: " + message.status().message());
        continue;
      }
      (void)message->Int("id");
      (void)message->Int("exit_code");
      (void)message->String("stream");
      (void)message->String("error");
      (void)message->Bool("timed_out");
      (void)message->Bytes("data");
      out.push_back(m->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
  };
  size_t written = 0;
  while (written < input.size()) {
    size_t n = std::min(step, input.size() - written);
    FUZZ_CHECK(::write(fds[1], input.data() + written, n) == static_cast<ssize_t>(n));
    written += n;
    FUZZ_CHECK(channel.ReadSome() == LineChannel::ReadResult::kData);
    drain();
  }
  ::close(fds[1]);
  FUZZ_CHECK(channel.ReadSome() == LineChannel::ReadResult::kEof);
  ::close(fds[0]);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 60000) return 0;  // what one pipe holds
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t step = 1 + data[0] % 97;
  FUZZ_CHECK(Read(input, input.size() + 1) == Read(input, step));
  return 0;
}
