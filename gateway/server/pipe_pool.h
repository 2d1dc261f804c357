// PipePool: the pipes SpliceRelays move bytes through, lent while bytes move and given back
// empty, so an idle spliced tunnel holds its two sockets and nothing else (a pipe is two
// descriptors and a kernel buffer). A few given-back pipes are kept for the next tunnel that
// needs one; the rest are closed. One per worker; touched only on that worker's thread.
#pragma once

#include <cstddef>
#include <vector>

namespace airlock::server {

class PipePool {
 public:
  struct Pipe {
    int read_end = -1;
    int write_end = -1;
    size_t capacity = 0;  // bytes it holds when full
    bool valid() const { return read_end >= 0; }
  };

  explicit PipePool(size_t keep) : keep_(keep) {}
  ~PipePool();
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;

  // A kept pipe, or a new one; false when none can be made (out of descriptors or memory).
  bool Take(Pipe* out);
  // Gives back `*p`, which must be empty (a kept pipe is lent again as it is); kept while fewer
  // than `keep` are, closed otherwise. `*p` is invalid afterwards.
  void Give(Pipe* p);
  // Closes `*p`, which may still hold bytes (they are dropped with it).
  static void Discard(Pipe* p);

  size_t kept() const { return free_.size(); }

 private:
  const size_t keep_;
  std::vector<Pipe> free_;
};

}  // namespace airlock::server
