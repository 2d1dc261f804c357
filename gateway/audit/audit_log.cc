// The audit writer thread, recovery at open, rotation.
#include "gateway/audit/audit_log.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "gateway/audit/chain.h"
#include "gateway/oplog/operator_log.h"

namespace airlock::audit {
namespace {

namespace fs = std::filesystem;

constexpr auto kRetryDelay = std::chrono::milliseconds(500);
// A deferred wake-up is not waited for once this many records are queued.
constexpr size_t kWakeAtDepth = 1024;

// DeferWakeupsOnThisThread()'s log and function, per thread.
thread_local const void* t_deferring_log = nullptr;
thread_local std::function<void(bool)> t_schedule_wake;

// The index the next rotated file gets: one past the highest existing path.N.
int NextRotationIndex(const std::string& path) {
  int next = 1;
  while (fs::exists(path + "." + std::to_string(next))) ++next;
  return next;
}

// The last complete line of a file ("" if none), and how many bytes follow it (a torn tail).
Status ReadTail(const std::string& path, std::string* last_line, uint64_t* torn, uint64_t* size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  fstat(fd, &st);
  *size = static_cast<uint64_t>(st.st_size);
  const uint64_t window = std::min<uint64_t>(*size, 4u << 20);
  std::string buf(window, '\0');
  ssize_t n = pread(fd, buf.data(), window, static_cast<off_t>(*size - window));
  ::close(fd);
  if (n != static_cast<ssize_t>(window)) return Status::Error("cannot read " + path);
  size_t end = buf.rfind('\n');
  if (end == std::string::npos) {
    *torn = window == *size ? *size : 0;
    last_line->clear();
    return Status::Ok();
  }
  *torn = window - end - 1;
  size_t start = buf.rfind('\n', end == 0 ? 0 : end - 1);
  start = (start == std::string::npos || end == 0) ? 0 : start + 1;
  *last_line = buf.substr(start, end - start);
  return Status::Ok();
}

}  // namespace

AuditLog::AuditLog(AuditOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<AuditLog>> AuditLog::Open(AuditOptions options) {
  std::unique_ptr<AuditLog> log(new AuditLog(std::move(options)));
  const std::string& path = log->options_.path;
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Error("cannot open audit log " + path + ": " + std::strerror(errno));
  ::close(fd);
  std::string last;
  uint64_t torn = 0, size = 0;
  if (Status s = ReadTail(path, &last, &torn, &size); !s.ok()) return s;
  if (torn > 0) {
    if (truncate(path.c_str(), static_cast<off_t>(size - torn)) != 0) {
      return Status::Error("cannot cut the torn tail of " + path);
    }
    log->torn_bytes_ = torn;
  }
  // An empty active file continues the chain of the newest rotated file.
  int rotated = NextRotationIndex(path) - 1;
  if (last.empty() && rotated > 0) {
    uint64_t t = 0, s2 = 0;
    if (Status s = ReadTail(path + "." + std::to_string(rotated), &last, &t, &s2); !s.ok()) {
      return s;
    }
  }
  if (last.empty()) {
    log->prev_ = kGenesisPrev;
  } else {
    auto rec = nlohmann::json::parse(last, nullptr, false);
    if (rec.is_discarded() || !rec.contains("seq") || !rec["seq"].is_number_unsigned()) {
      return Status::Error("the last record of " + path + " is not a valid audit record");
    }
    log->seq_ = rec["seq"].get<uint64_t>();
    log->prev_ = LinkHash(last, log->options_.hmac_key);
  }
  if (Status s = log->Reopen(); !s.ok()) return s;
  log->writer_ = std::thread([raw = log.get()] {
    pthread_setname_np(pthread_self(), "al-audit");
    raw->Run();
  });
  return log;
}

AuditLog::~AuditLog() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  wake_writer_.notify_all();
  wake_callers_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (fd_ >= 0) ::close(fd_);
}

Status AuditLog::Reopen() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(options_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    write_errno_ = errno;
    return Status::Error("cannot open audit log: " + std::string(std::strerror(errno)));
  }
  struct stat st {};
  fstat(fd_, &st);
  file_bytes_ = static_cast<uint64_t>(st.st_size);
  return Status::Ok();
}

bool AuditLog::TryAppend(Record record, WrittenCallback written) {
  const bool urgent = static_cast<bool>(written);
  size_t depth;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!healthy_ || stopping_ || queue_.size() >= options_.queue_capacity) return false;
    queue_.push_back({std::move(record), std::move(written)});
    ++queued_;
    depth = queue_.size();
  }
  Wake(depth, urgent);
  return true;
}

void AuditLog::Append(Record record) {
  size_t depth;
  {
    std::unique_lock<std::mutex> lk(mu_);
    if (queue_.size() >= options_.queue_capacity) {
      wake_writer_.notify_one();  // a deferred wake-up would come after this wait: none
      wake_callers_.wait(lk, [&] { return stopping_ || queue_.size() < options_.queue_capacity; });
    }
    queue_.push_back({std::move(record), {}});
    ++queued_;
    depth = queue_.size();
  }
  Wake(depth, false);
}

void AuditLog::Wake(size_t depth, bool urgent) {
  // A writer with records already queued is awake or woken (or, from a deferring thread, about
  // to be): no second wake-up, unless work waits for this record or the batch is long enough.
  const size_t wake_at = std::min(kWakeAtDepth, options_.queue_capacity / 2 + 1);
  if (t_deferring_log == this && depth < wake_at) {
    if (depth == 1 || urgent) t_schedule_wake(urgent);
  } else if (depth == 1 || depth == wake_at || urgent) {
    wake_writer_.notify_one();
  }
}

void AuditLog::DeferWakeupsOnThisThread(std::function<void(bool urgent)> schedule) {
  t_deferring_log = schedule ? this : nullptr;
  t_schedule_wake = std::move(schedule);
}

void AuditLog::WakeWriter() { wake_writer_.notify_one(); }

bool AuditLog::healthy() const {
  std::lock_guard<std::mutex> lk(mu_);
  return healthy_;
}

size_t AuditLog::queue_depth() const {
  std::lock_guard<std::mutex> lk(mu_);
  return queue_.size();
}

uint64_t AuditLog::last_seq() const {
  std::lock_guard<std::mutex> lk(mu_);
  return seq_;
}

void AuditLog::Flush() {
  std::unique_lock<std::mutex> lk(mu_);
  uint64_t target = queued_;
  if (written_ >= target) return;
  sync_now_ = true;
  wake_writer_.notify_one();
  wake_callers_.wait(lk, [&] { return written_ >= target || (stopping_ && !healthy_); });
}

void AuditLog::ReleaseCache() {
  // Only what is on disk: lines written after the last sync stay dirty and are skipped.
  posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
}

bool AuditLog::Rotate() {
  if (fdatasync(fd_) == 0) ReleaseCache();
  std::string rotated = options_.path + "." + std::to_string(NextRotationIndex(options_.path));
  // Not renamed: the file grows past its size rather than losing records.
  if (std::rename(options_.path.c_str(), rotated.c_str()) != 0) return true;
  return Reopen().ok();  // not reopened: this write fails, and the next one tries again
}

void AuditLog::AppendLine(std::string* out, const Record& record, uint64_t seq,
                          std::string_view prev, uint64_t torn) const {
  // The writer's fields around the caller's.
  std::string& line = *out;
  char digits[24];
  auto number = [&](uint64_t v) {
    line.append(digits, static_cast<size_t>(std::to_chars(digits, digits + 24, v).ptr - digits));
  };
  line.append("{\"v\":");
  number(kSchemaVersion);
  line.append(",\"seq\":");
  number(seq);
  line.append(",\"ts\":\"").append(FormatTimestamp(options_.clock->Now())).append("\",");
  line.append(record.members());
  if (torn > 0) {
    line.append(",\"recovered_torn_bytes\":");
    number(torn);
  }
  line.append(",\"prev\":\"").append(prev).append("\"}");
}

bool AuditLog::WriteLines(const std::string& lines) {
  size_t done = 0;
  while (done < lines.size()) {
    ssize_t n = ::write(fd_, lines.data() + done, lines.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      write_errno_ = n < 0 ? errno : ENOSPC;
      // Undo a partial write so the file keeps whole lines only.
      if (done > 0 && ftruncate(fd_, static_cast<off_t>(file_bytes_)) != 0) return false;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  file_bytes_ += done;
  return true;
}

size_t AuditLog::WriteBatch(const std::vector<Queued*>& batch) {
  size_t committed = 0;
  while (committed < batch.size()) {
    if (fd_ < 0 && !Reopen().ok()) return committed;
    // Lines for as many records as fit before the file must rotate (at least one), chained on
    // a copy of seq and prev: they become the log's only once the write succeeds.
    std::string lines, prev = prev_;
    uint64_t seq = seq_;
    size_t n = committed;
    for (; n < batch.size(); ++n) {
      // A torn tail found at open is reported once, in the first line written.
      const uint64_t torn = n == committed ? torn_bytes_ : 0;
      const size_t start = lines.size();
      AppendLine(&lines, batch[n]->record, seq + 1, prev, torn);
      if (n > committed && file_bytes_ + lines.size() + 1 > options_.rotate_bytes) {
        lines.resize(start);  // for the next file
        break;
      }
      prev = LinkHash(std::string_view(lines).substr(start), options_.hmac_key);
      ++seq;
      lines += '\n';
    }
    if ((file_bytes_ > 0 && file_bytes_ + lines.size() > options_.rotate_bytes && !Rotate()) ||
        !WriteLines(lines)) {
      return committed;
    }
    prev_ = std::move(prev);
    torn_bytes_ = 0;
    {
      std::lock_guard<std::mutex> lk(mu_);
      seq_ = seq;
    }
    for (size_t i = committed; i < n; ++i) {
      if (batch[i]->written) batch[i]->written();
    }
    committed = n;
  }
  return committed;
}

void AuditLog::Run() {
  using SteadyClock = std::chrono::steady_clock;
  std::unique_lock<std::mutex> lk(mu_);
  uint64_t unsynced = 0;
  SteadyClock::time_point last_sync{};
  std::vector<Queued*> batch;
  while (true) {
    // Sleep until records arrive, or a pending sync is due.
    auto wait = options_.sync_interval;
    if (unsynced > 0) {
      wait = std::chrono::duration_cast<std::chrono::milliseconds>(std::max(
          SteadyClock::duration::zero(), last_sync + options_.sync_interval - SteadyClock::now()));
    }
    wake_writer_.wait_for(lk, wait, [&] { return stopping_ || sync_now_ || !queue_.empty(); });
    // Every record queued now is one batch (push_back keeps references into a deque valid).
    batch.clear();
    for (Queued& q : queue_) batch.push_back(&q);
    bool failed = false;
    if (!batch.empty()) {
      lk.unlock();
      size_t done = WriteBatch(batch);
      lk.lock();
      failed = done < batch.size();
      for (size_t i = 0; i < done; ++i) queue_.pop_front();
      unsynced += done;
      if (done > 0) wake_callers_.notify_all();
    }
    const bool due = SteadyClock::now() - last_sync >= options_.sync_interval;
    if (unsynced > 0 && (due || sync_now_ || stopping_ || failed)) {
      sync_now_ = !queue_.empty();  // Flush() may wait for records queued during this batch
      lk.unlock();
      bool synced = fdatasync(fd_) == 0;
      const int sync_errno = errno;
      if (synced) ReleaseCache();
      lk.lock();
      last_sync = SteadyClock::now();
      if (synced) {
        written_ += unsynced;
        unsynced = 0;
      } else {
        write_errno_ = sync_errno;
        failed = true;
      }
    }
    if (unsynced == 0 && queue_.empty()) sync_now_ = false;  // nothing left to sync for Flush()
    // The operator hears of the change, not of every retry.
    if (failed && healthy_) {
      oplog::Log(oplog::Level::kError, "audit.write_failed",
                 {oplog::F("path", options_.path), oplog::F("errno", write_errno_),
                  oplog::F("error", std::strerror(write_errno_)),
                  oplog::F("effect", "new connections are refused until it recovers")});
    } else if (!failed && !healthy_) {
      oplog::Log(oplog::Level::kInfo, "audit.recovered", {oplog::F("path", options_.path)});
    }
    healthy_ = !failed;
    wake_callers_.notify_all();
    if (stopping_ && ((queue_.empty() && unsynced == 0) || failed)) break;
    if (failed) {
      wake_writer_.wait_for(lk, kRetryDelay, [&] { return stopping_; });
    }
  }
}

}  // namespace airlock::audit
