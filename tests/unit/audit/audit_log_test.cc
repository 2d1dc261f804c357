// AuditLog and VerifyFiles: the chain, tamper detection, torn tails, rotation, HMAC keys, and
// fail-closed behaviour when the file cannot be written.
#include "gateway/audit/audit_log.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gateway/audit/chain.h"
#include "gateway/audit/verify.h"

namespace airlock::audit {
namespace {

namespace fs = std::filesystem;

class FixedClock : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::time_point(std::chrono::microseconds(1795314067123456));
  }
};

class AuditLogTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / ("airlock-audit-" + std::to_string(getpid()) + "-" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "audit.jsonl").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<AuditLog> OpenLog(AuditOptions o = {}) {
    o.path = path_;
    o.clock = &clock_;
    auto log = AuditLog::Open(o);
    EXPECT_TRUE(log.ok()) << log.status().message();
    return log.ok() ? std::move(log).value() : nullptr;
  }
  void WriteN(AuditLog& log, int n, const std::string& event = "test.event") {
    for (int i = 0; i < n; ++i) {
      log.Append(Record(event).Set("n", i));
    }
    log.Flush();
  }
  std::vector<std::string> Lines(const std::string& file) {
    std::ifstream in(file);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }
  void WriteLines(const std::vector<std::string>& lines) {
    std::ofstream out(path_, std::ios::trunc);
    for (const auto& l : lines) out << l << "\n";
  }

  FixedClock clock_;
  fs::path dir_;
  std::string path_;
};

TEST_F(AuditLogTest, RecordsCarrySchemaSeqTimeAndChain) {
  auto log = OpenLog();
  WriteN(*log, 3);
  auto lines = Lines(path_);
  ASSERT_EQ(lines.size(), 3u);
  auto first = ParsedRecord::parse(lines[0]);
  EXPECT_EQ(first["v"], 1);
  EXPECT_EQ(first["seq"], 1);
  EXPECT_EQ(first["ts"], "2026-11-22T02:21:07.123456Z");
  EXPECT_EQ(first["event"], "test.event");
  EXPECT_EQ(first["prev"], kGenesisPrev);
  EXPECT_EQ(lines[0].rfind("{\"v\":1,\"seq\":1,\"ts\":", 0), 0u) << lines[0];
  auto second = ParsedRecord::parse(lines[1]);
  EXPECT_EQ(second["prev"], LinkHash(lines[0], ""));
  auto report = VerifyFiles({path_}, "");
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.records, 3u);
  EXPECT_TRUE(report.notes.empty());
}

TEST_F(AuditLogTest, DetectsEditsDeletionsAndReordering) {
  WriteN(*OpenLog(), 5);
  auto lines = Lines(path_);

  auto edited = lines;
  edited[2].replace(edited[2].find("\"n\":2"), 5, "\"n\":9");
  WriteLines(edited);
  auto r1 = VerifyFiles({path_}, "");
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.tampering[0].line, 4u);  // the record after the edited one no longer links

  auto deleted = lines;
  deleted.erase(deleted.begin() + 1);
  WriteLines(deleted);
  auto r2 = VerifyFiles({path_}, "");
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.tampering[0].line, 2u);
  EXPECT_NE(r2.tampering[0].message.find("seq 3 follows seq 1"), std::string::npos);

  auto swapped = lines;
  std::swap(swapped[1], swapped[3]);
  WriteLines(swapped);
  EXPECT_FALSE(VerifyFiles({path_}, "").ok());

  auto head_cut = lines;
  head_cut.erase(head_cut.begin());
  WriteLines(head_cut);
  auto r4 = VerifyFiles({path_}, "");
  EXPECT_TRUE(r4.ok());  // a later start is noted, not tampering...
  ASSERT_EQ(r4.notes.size(), 1u);
  EXPECT_NE(r4.notes[0].message.find("starts at seq 2"), std::string::npos);

  auto garbage = lines;
  garbage.insert(garbage.begin() + 2, "not json");
  WriteLines(garbage);
  EXPECT_FALSE(VerifyFiles({path_}, "").ok());
}

TEST_F(AuditLogTest, TornLastLineIsACrashNotTampering) {
  WriteN(*OpenLog(), 3);
  {
    std::ofstream out(path_, std::ios::app);
    out << "{\"v\":1,\"seq\":4,\"ts\":\"2026-11-23T0";
  }
  auto report = VerifyFiles({path_}, "");
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.records, 3u);
  ASSERT_EQ(report.notes.size(), 1u);
  EXPECT_NE(report.notes[0].message.find("torn last line"), std::string::npos);

  // Reopening cuts the torn tail, says so in the next record, and continues the chain.
  auto log = OpenLog();
  WriteN(*log, 1, "gateway.start");
  auto lines = Lines(path_);
  ASSERT_EQ(lines.size(), 4u);
  auto rec = ParsedRecord::parse(lines[3]);
  EXPECT_EQ(rec["seq"], 4);
  EXPECT_EQ(rec["recovered_torn_bytes"], 33);
  auto after = VerifyFiles({path_}, "");
  EXPECT_TRUE(after.ok());
  EXPECT_TRUE(after.notes.empty());
}

TEST_F(AuditLogTest, ReopenContinuesTheChain) {
  WriteN(*OpenLog(), 2);
  WriteN(*OpenLog(), 2);
  auto report = VerifyFiles({path_}, "");
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.last_seq, 4u);
}

TEST_F(AuditLogTest, RotationKeepsOneChain) {
  AuditOptions o;
  o.rotate_bytes = 600;
  {
    auto log = OpenLog(o);
    WriteN(*log, 20);
  }
  auto files = LogFiles(path_);
  ASSERT_GT(files.size(), 2u);
  auto report = VerifyFiles(files, "");
  EXPECT_TRUE(report.ok()) << report.tampering[0].message;
  EXPECT_EQ(report.records, 20u);
  // A missing middle file breaks the chain.
  files.erase(files.begin() + 1);
  EXPECT_FALSE(VerifyFiles(files, "").ok());
  // Reopening after rotation continues from the newest file.
  fs::remove(path_);
  {
    auto log = OpenLog(o);
    WriteN(*log, 1);
  }
  EXPECT_TRUE(VerifyFiles(LogFiles(path_), "").ok());
}

TEST_F(AuditLogTest, GroupCommitKeepsOrderCallbacksAndRotation) {
  AuditOptions o;
  o.rotate_bytes = 4096;
  std::vector<int> written;  // writer thread only, read after the log is closed
  {
    auto log = OpenLog(o);
    // Queued faster than they are written: the writer takes them in batches.
    for (int i = 0; i < 500; ++i) {
      ASSERT_TRUE(log->TryAppend(Record("test.event").Set("n", i),
                                 [&written, i] { written.push_back(i); }));
    }
  }
  ASSERT_EQ(written.size(), 500u);
  for (int i = 0; i < 500; ++i) ASSERT_EQ(written[i], i);
  auto files = LogFiles(path_);
  ASSERT_GT(files.size(), 3u);
  for (const auto& f : files) EXPECT_LE(fs::file_size(f), o.rotate_bytes) << f;
  auto report = VerifyFiles(files, "");
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.records, 500u);
  int n = 0;
  ForEachRecord(files, [&](const ParsedRecord& r, std::string_view) { EXPECT_EQ(r["n"], n++); });
  EXPECT_EQ(n, 500);
}

TEST_F(AuditLogTest, FlushSyncsWithoutWaitingForTheInterval) {
  AuditOptions o;
  o.sync_interval = std::chrono::hours(1);
  auto log = OpenLog(o);
  WriteN(*log, 3);  // returns once synced: an hour's wait would time the test out
  // With nothing left to sync, a Flush() must leave the writer asleep (it once left it spinning
  // with the lock held, and the next call hung).
  for (int i = 0; i < 200; ++i) {
    log->Flush();
    std::this_thread::yield();
    EXPECT_EQ(log->last_seq(), 3u);
  }
  WriteN(*log, 2);
  EXPECT_EQ(Lines(path_).size(), 5u);
}

// The pages of records on disk leave the page cache at each sync (AuditLog::ReleaseCache).
size_t ResidentPages(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  fstat(fd, &st);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t pages = (static_cast<size_t>(st.st_size) + page - 1) / page;
  void* map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
  std::vector<unsigned char> in_core(pages);
  mincore(map, static_cast<size_t>(st.st_size), in_core.data());
  munmap(map, static_cast<size_t>(st.st_size));
  ::close(fd);
  return static_cast<size_t>(
      std::count_if(in_core.begin(), in_core.end(), [](unsigned char c) { return c & 1; }));
}

TEST_F(AuditLogTest, SyncedRecordsLeaveThePageCache) {
  struct statfs info {};
  if (statfs(dir_.c_str(), &info) == 0 && info.f_type == TMPFS_MAGIC) {
    GTEST_SKIP() << "on tmpfs the page cache is where the file is kept";
  }
  auto log = OpenLog();
  for (int i = 0; i < 4000; ++i)
    log->Append(Record("test.event").Set("pad", std::string(200, 'x')));
  log->Flush();  // returns once synced (and released)
  ASSERT_GT(fs::file_size(path_), 16u * 4096u);
  EXPECT_EQ(ResidentPages(path_), 0u);
  EXPECT_EQ(Lines(path_).size(), 4000u);  // read back whole all the same
}

TEST_F(AuditLogTest, DeferredWakeupsAreScheduledOnceOrWhenWorkWaits) {
  AuditOptions o;
  o.sync_interval = std::chrono::hours(1);  // the writer sleeps until it is woken
  auto log = OpenLog(o);
  std::vector<bool> scheduled;  // `urgent` of each call
  log->DeferWakeupsOnThisThread([&](bool urgent) { scheduled.push_back(urgent); });
  log->Append(Record("a"));  // the first into an empty queue: a wake-up within the delay
  log->Append(Record("b"));  // the writer is already to be woken
  bool written = false;
  ASSERT_TRUE(log->TryAppend(Record("c"), [&written] { written = true; }));  // work waits: now
  EXPECT_EQ(scheduled, (std::vector<bool>{false, true}));
  EXPECT_EQ(log->queue_depth(), 3u);  // nothing woke the writer but the schedule
  log->WakeWriter();
  log->Flush();
  EXPECT_TRUE(written);
  EXPECT_EQ(Lines(path_).size(), 3u);
  log->DeferWakeupsOnThisThread({});
  log->Append(Record("d"));  // woken directly again
  EXPECT_EQ(scheduled.size(), 2u);
  log->Flush();
  EXPECT_EQ(Lines(path_).size(), 4u);
}

TEST_F(AuditLogTest, HmacKeyedChain) {
  AuditOptions o;
  o.hmac_key = "k3y";
  WriteN(*OpenLog(o), 3);
  EXPECT_TRUE(VerifyFiles({path_}, "k3y").ok());
  EXPECT_FALSE(VerifyFiles({path_}, "other").ok());
  EXPECT_FALSE(VerifyFiles({path_}, "").ok());
}

TEST_F(AuditLogTest, UnwritableLogFailsClosedAndKeepsRecords) {
  fs::create_symlink("/dev/full", path_);
  AuditOptions o;
  o.queue_capacity = 2;
  auto log = OpenLog(o);
  ASSERT_TRUE(log);
  EXPECT_TRUE(log->TryAppend(Record("connection.open")));
  for (int i = 0; i < 100 && log->healthy(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(log->healthy());
  EXPECT_FALSE(log->TryAppend(Record("connection.open")));
  EXPECT_EQ(log->queue_depth(), 1u);  // kept, not dropped
  EXPECT_EQ(log->last_seq(), 0u);
}

TEST_F(AuditLogTest, OpenFailsOnAnUnusablePath) {
  AuditOptions o;
  o.path = "/proc/airlock/audit.jsonl";
  EXPECT_FALSE(AuditLog::Open(o).ok());
}

TEST(AuditChain, RedactsQueryValues) {
  EXPECT_EQ(RedactTarget("/a/b"), "/a/b");
  EXPECT_EQ(RedactTarget("/a?token=s3cr3t&x=1&flag"), "/a?token=_&x=_&flag");
  EXPECT_EQ(RedactTarget("/a?"), "/a?");
  EXPECT_EQ(RedactTarget("/a?=v"), "/a?=_");
}

TEST(AuditChain, Timestamps) {
  using namespace std::chrono;
  EXPECT_EQ(FormatTimestamp(system_clock::time_point(microseconds(0))),
            "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatTimestamp(system_clock::time_point(microseconds(1795314067000001))),
            "2026-11-22T02:21:07.000001Z");
  // The date is kept between calls: it must change with the second, in either direction.
  EXPECT_EQ(FormatTimestamp(system_clock::time_point(microseconds(1795314067999999))),
            "2026-11-22T02:21:07.999999Z");
  EXPECT_EQ(FormatTimestamp(system_clock::time_point(microseconds(1795314068000000))),
            "2026-11-22T02:21:08.000000Z");
  EXPECT_EQ(FormatTimestamp(system_clock::time_point(microseconds(1795314067000000))),
            "2026-11-22T02:21:07.000000Z");
  EXPECT_EQ(FormatTimestamp(system_clock::time_point(microseconds(-1))),
            "1969-12-31T23:59:59.999999Z");
}

}  // namespace
}  // namespace airlock::audit
