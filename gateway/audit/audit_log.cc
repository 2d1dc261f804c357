// The audit writer thread, recovery at open, rotation.
#include "gateway/audit/audit_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "gateway/audit/chain.h"
#include "gateway/oplog/operator_log.h"

namespace airlock::audit {
namespace {

namespace fs = std::filesystem;

constexpr auto kRetryDelay = std::chrono::milliseconds(500);

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
    auto rec = Record::parse(last, nullptr, false);
    if (rec.is_discarded() || !rec.contains("seq") || !rec["seq"].is_number_unsigned()) {
      return Status::Error("the last record of " + path + " is not a valid audit record");
    }
    log->seq_ = rec["seq"].get<uint64_t>();
    log->prev_ = LinkHash(last, log->options_.hmac_key);
  }
  if (Status s = log->Reopen(); !s.ok()) return s;
  log->writer_ = std::thread([raw = log.get()] { raw->Run(); });
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
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!healthy_ || stopping_ || queue_.size() >= options_.queue_capacity) return false;
    queue_.push_back({std::move(record), std::move(written)});
    ++queued_;
  }
  wake_writer_.notify_one();
  return true;
}

void AuditLog::Append(Record record) {
  {
    std::unique_lock<std::mutex> lk(mu_);
    wake_callers_.wait(lk, [&] { return stopping_ || queue_.size() < options_.queue_capacity; });
    queue_.push_back({std::move(record), {}});
    ++queued_;
  }
  wake_writer_.notify_one();
}

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
  wake_writer_.notify_one();
  wake_callers_.wait(lk, [&] { return written_ >= target || (stopping_ && !healthy_); });
}

bool AuditLog::Rotate() {
  fdatasync(fd_);
  std::string rotated = options_.path + "." + std::to_string(NextRotationIndex(options_.path));
  // Not renamed: the file grows past its size rather than losing records.
  if (std::rename(options_.path.c_str(), rotated.c_str()) != 0) return true;
  return Reopen().ok();  // not reopened: this write fails, and the next one tries again
}

bool AuditLog::WriteOne(Record& record) {
  Record out;
  out["v"] = kSchemaVersion;
  out["seq"] = seq_ + 1;
  out["ts"] = FormatTimestamp(options_.clock->Now());
  for (auto& [key, value] : record.items()) out[key] = value;
  if (torn_bytes_ > 0) out["recovered_torn_bytes"] = torn_bytes_;
  out["prev"] = prev_;
  std::string line = out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (fd_ < 0 && !Reopen().ok()) return false;
  if (file_bytes_ > 0 && file_bytes_ + line.size() + 1 > options_.rotate_bytes && !Rotate()) {
    return false;
  }
  line.push_back('\n');
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      write_errno_ = n < 0 ? errno : ENOSPC;
      // Undo a partial write so the file keeps whole lines only.
      if (done > 0 && ftruncate(fd_, static_cast<off_t>(file_bytes_)) != 0) return false;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  line.pop_back();
  file_bytes_ += done;
  prev_ = LinkHash(line, options_.hmac_key);
  torn_bytes_ = 0;
  return true;
}

void AuditLog::Run() {
  std::unique_lock<std::mutex> lk(mu_);
  uint64_t written_unsynced = 0;
  while (true) {
    wake_writer_.wait_for(lk, options_.sync_interval, [&] { return stopping_ || !queue_.empty(); });
    bool failed = false;
    while (!queue_.empty()) {
      Queued& front = queue_.front();  // deque: push_back keeps this reference valid
      lk.unlock();
      bool ok = WriteOne(front.record);
      if (ok && front.written) front.written();
      lk.lock();
      if (!ok) {
        failed = true;
        break;
      }
      ++seq_;
      queue_.pop_front();
      ++written_unsynced;
      wake_callers_.notify_all();
    }
    if (written_unsynced > 0) {
      lk.unlock();
      bool synced = fdatasync(fd_) == 0;
      const int sync_errno = errno;
      lk.lock();
      if (synced) {
        written_ += written_unsynced;
        written_unsynced = 0;
      } else {
        write_errno_ = sync_errno;
        failed = true;
      }
    }
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
    if (stopping_ && (queue_.empty() || failed)) break;
    if (failed) {
      wake_writer_.wait_for(lk, kRetryDelay, [&] { return stopping_; });
    }
  }
}

}  // namespace airlock::audit
