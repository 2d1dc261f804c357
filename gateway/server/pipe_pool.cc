// Pipes lent to SpliceRelays and kept for reuse (see pipe_pool.h).
#include "gateway/server/pipe_pool.h"

#include <fcntl.h>
#include <unistd.h>

namespace airlock::server {

PipePool::~PipePool() {
  for (Pipe& p : free_) Discard(&p);
}

bool PipePool::Take(Pipe* out) {
  if (!free_.empty()) {
    *out = free_.back();
    free_.pop_back();
    return true;
  }
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
  const int size = fcntl(fds[1], F_GETPIPE_SZ);
  if (size <= 0) {
    close(fds[0]);
    close(fds[1]);
    return false;
  }
  *out = Pipe{fds[0], fds[1], static_cast<size_t>(size)};
  return true;
}

void PipePool::Give(Pipe* p) {
  if (!p->valid()) return;
  if (free_.size() < keep_) {
    free_.push_back(*p);
    *p = Pipe{};
    return;
  }
  Discard(p);
}

void PipePool::Discard(Pipe* p) {
  if (!p->valid()) return;
  close(p->read_end);
  close(p->write_end);
  *p = Pipe{};
}

}  // namespace airlock::server
