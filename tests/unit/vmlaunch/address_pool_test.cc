// AddressPool: /30 blocks, no double allocation, release, reclaiming dead owners, exhaustion.
#include "vmlaunch/network/address_pool.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <thread>

namespace airlock::vmnet {
namespace {

struct PoolTest : testing::Test {
  std::string file = (std::filesystem::temp_directory_path() /
                      ("airlock-pool-" + std::to_string(getpid()) + "-" +
                       testing::UnitTest::GetInstance()->current_test_info()->name() + ".json"))
                         .string();
  void TearDown() override { std::filesystem::remove(file); }
  net::Cidr Range(const char* s) {
    std::string e;
    return *net::Cidr::Parse(s, &e);
  }
};

TEST_F(PoolTest, HandsOutDistinctBlocksAndReleasesThem) {
  AddressPool pool(file, Range("100.96.0.0/28"));
  auto a = pool.Allocate("a", getpid());
  auto b = pool.Allocate("b", getpid());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->block.ToString(), "100.96.0.0");
  EXPECT_EQ(a->gateway().ToString(), "100.96.0.1");
  EXPECT_EQ(a->guest().ToString(), "100.96.0.2");
  EXPECT_EQ(b->block.ToString(), "100.96.0.4");
  ASSERT_TRUE(pool.Release(a->block).ok());
  auto c = pool.Allocate("c", getpid());
  EXPECT_EQ(c->block.ToString(), "100.96.0.0");
  EXPECT_EQ(pool.List()->size(), 2u);
}

TEST_F(PoolTest, ExhaustionAndDeadOwners) {
  AddressPool pool(file, Range("100.96.0.0/29"));
  ASSERT_TRUE(pool.Allocate("a", getpid()).ok());
  ASSERT_TRUE(pool.Allocate("dead", 999999).ok());  // no such pid: reclaimed next time
  auto c = pool.Allocate("c", getpid());
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->block.ToString(), "100.96.0.4");
  auto d = pool.Allocate("d", getpid());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("exhausted"), std::string::npos);
}

TEST_F(PoolTest, ConcurrentAllocationsNeverCollide) {
  AddressPool pool(file, Range("100.96.0.0/24"));
  std::vector<std::thread> threads;
  std::vector<std::string> blocks(32);
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back([&, i] {
      AddressPool own(file, Range("100.96.0.0/24"));
      blocks[i] = own.Allocate("t" + std::to_string(i), getpid())->block.ToString();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(std::set<std::string>(blocks.begin(), blocks.end()).size(), 32u);
}

}  // namespace
}  // namespace airlock::vmnet
