// AuditLog: the JSON-lines audit log. Callers on any thread queue records; one writer thread
// takes everything queued at once (group commit), gives each record its "v", "seq", "ts" and
// "prev", writes the batch with one write(2), and fdatasync()s at most once per sync interval
// (at once when the last sync is older than that). A full queue pushes back (TryAppend() refuses,
// Append() waits) and nothing is ever dropped; when the file cannot be written the log turns
// unhealthy, keeps the records, and retries, while the gateway refuses new connections (fail
// closed). Files rotate by size and the chain continues across them. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "gateway/audit/record.h"
#include "gateway/base/clock.h"
#include "gateway/base/status.h"

namespace airlock::audit {

// Called on the writer thread once a record is in the file (written, not yet synced).
using WrittenCallback = std::function<void()>;

// The seam the gateway writes through; unit tests of other modules use a fake.
class AuditSink {
 public:
  virtual ~AuditSink() = default;
  // Queues a record unless the log is unhealthy or its queue is full (then: refuse the work).
  // `written`, if given, runs once the record is in the file: work that must not start before
  // its record exists (dialling upstream) waits for it.
  virtual bool TryAppend(Record record, WrittenCallback written = {}) = 0;
  // Queues a record, waiting for room; for records of work already accepted.
  virtual void Append(Record record) = 0;
  virtual bool healthy() const = 0;
};

struct AuditOptions {
  std::string path;                      // the active file; rotated files get .1, .2, ...
  uint64_t rotate_bytes = 100ull << 20;  // rotate when the active file grows past this
  std::chrono::milliseconds sync_interval{100};
  size_t queue_capacity = 65536;
  std::string hmac_key;  // empty: plain SHA-256 chain
  const Clock* clock = &SystemClock();
};

class AuditLog final : public AuditSink {
 public:
  // Opens (or creates, mode 0600) the log and recovers seq and prev from its last record. A torn
  // last line (a write cut short by a crash) is cut off and reported in the next record.
  static Result<std::unique_ptr<AuditLog>> Open(AuditOptions options);
  ~AuditLog() override;  // writes and syncs everything queued

  bool TryAppend(Record record, WrittenCallback written = {}) override;
  void Append(Record record) override;
  bool healthy() const override;

  // Waits until every record queued so far is written and synced.
  void Flush();
  // For a thread that runs an event loop (a worker): records it queues do not wake the writer
  // themselves but call `schedule` (on this thread) when the writer may need waking: with
  // `urgent` for a record with a WrittenCallback (work waits for it), otherwise for the first
  // record into an empty queue. `schedule` must arrange for WakeWriter() on this thread: soon
  // when urgent, within a short delay otherwise, so that records are written in batches and the
  // writer does not preempt the worker for each of them. An empty function ends the deferral.
  void DeferWakeupsOnThisThread(std::function<void(bool urgent)> schedule);
  void WakeWriter();
  size_t queue_depth() const;
  uint64_t last_seq() const;

 private:
  explicit AuditLog(AuditOptions options);
  struct Queued;
  void Wake(size_t depth, bool urgent);  // after queueing the depth-th record
  Status Reopen();
  void Run();
  // Writes `batch` in order, in as few write(2)s as rotation allows; returns how many records
  // are in the file (the rest stay queued: the write failed). Writer thread only.
  size_t WriteBatch(const std::vector<Queued*>& batch);
  // Appends the line of `record` (no newline) as number `seq` chained to `prev`, reporting
  // `torn` bytes.
  void AppendLine(std::string* out, const Record& record, uint64_t seq, std::string_view prev,
                  uint64_t torn) const;
  bool WriteLines(const std::string& lines);  // one write(2) of whole lines, undone if cut short
  bool Rotate();                              // false: the new file could not be opened
  // After a sync: the file's pages leave the page cache. The gateway never reads them back, and
  // the pages the next lines need are then recently freed ones, not fresh memory (in a VM a
  // fresh page is a fault on the host: writing into them cost up to 10x, ARCHITECTURE 46).
  void ReleaseCache();

  AuditOptions options_;
  int fd_ = -1;
  int write_errno_ = 0;  // the last failure's; writer thread only
  uint64_t file_bytes_ = 0;
  uint64_t seq_ = 0;
  std::string prev_;
  uint64_t torn_bytes_ = 0;  // cut at open; reported in the next record

  mutable std::mutex mu_;
  std::condition_variable wake_writer_;
  std::condition_variable wake_callers_;
  struct Queued {
    Record record;
    WrittenCallback written;
  };
  std::deque<Queued> queue_;
  uint64_t queued_ = 0;    // records ever queued
  uint64_t written_ = 0;   // records ever written and synced
  bool sync_now_ = false;  // Flush() is waiting: sync without waiting for the interval
  bool healthy_ = true;
  bool stopping_ = false;
  std::thread writer_;
};

}  // namespace airlock::audit
