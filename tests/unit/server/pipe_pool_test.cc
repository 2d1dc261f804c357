// PipePool: pipes lent and given back empty are lent again as they are; past the number kept
// they are closed, as is everything the pool keeps when it goes; none leaks.
#include "gateway/server/pipe_pool.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace airlock::server {
namespace {

bool Open(int fd) { return fcntl(fd, F_GETFD) != -1; }

TEST(PipePool, AGivenBackPipeIsLentAgainAndThoseBeyondTheKeptAreClosed) {
  PipePool::Pipe a, b, c;
  int kept_read = -1, kept_write = -1;
  {
    PipePool pool(1);
    ASSERT_TRUE(pool.Take(&a));
    ASSERT_TRUE(pool.Take(&b));
    ASSERT_TRUE(a.valid() && b.valid());
    EXPECT_NE(a.read_end, b.read_end);
    EXPECT_GE(a.capacity, 4096u);
    // Bytes go through a lent pipe like any.
    ASSERT_EQ(write(a.write_end, "x", 1), 1);
    char byte = 0;
    ASSERT_EQ(read(a.read_end, &byte, 1), 1);

    const PipePool::Pipe first = a, second = b;
    pool.Give(&a);
    EXPECT_FALSE(a.valid());
    EXPECT_EQ(pool.kept(), 1u);
    pool.Give(&b);  // one kept already: closed
    EXPECT_EQ(pool.kept(), 1u);
    EXPECT_FALSE(Open(second.read_end));
    EXPECT_FALSE(Open(second.write_end));

    ASSERT_TRUE(pool.Take(&c));  // the kept one, as it was
    EXPECT_EQ(c.read_end, first.read_end);
    EXPECT_EQ(c.write_end, first.write_end);
    EXPECT_EQ(pool.kept(), 0u);
    pool.Give(&c);
    EXPECT_TRUE(Open(first.read_end));
    kept_read = first.read_end;
    kept_write = first.write_end;
  }
  // The pool's end closes what it kept.
  EXPECT_FALSE(Open(kept_read));
  EXPECT_FALSE(Open(kept_write));
}

TEST(PipePool, DiscardClosesAPipeThatStillHoldsBytes) {
  PipePool pool(4);
  PipePool::Pipe p;
  ASSERT_TRUE(pool.Take(&p));
  ASSERT_EQ(write(p.write_end, "left", 4), 4);
  const int r = p.read_end, w = p.write_end;
  PipePool::Discard(&p);
  EXPECT_FALSE(p.valid());
  EXPECT_FALSE(Open(r));
  EXPECT_FALSE(Open(w));
  EXPECT_EQ(pool.kept(), 0u);
}

}  // namespace
}  // namespace airlock::server
