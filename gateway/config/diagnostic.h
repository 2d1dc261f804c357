// Diagnostics collected while validating a configuration file: every error with its
// file:line:column, so one run shows all mistakes at once. Plain values; no thread ownership.
#pragma once

#include <string>
#include <vector>

namespace airlock::config {

struct Diagnostic {
  std::string file;
  int line = 0;    // 1-based; 0 when the position is unknown (e.g. file cannot be read)
  int column = 0;  // 1-based
  std::string message;

  // "file:line:col: error: message", or "file: error: message" without a position.
  std::string ToString() const;
};

class Diagnostics {
 public:
  void Add(std::string file, int line, int column, std::string message);
  void Append(const Diagnostics& other);

  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  const std::vector<Diagnostic>& items() const { return items_; }

  // All diagnostics, one per line, sorted by file and position.
  std::string ToString() const;

 private:
  std::vector<Diagnostic> items_;
};

}  // namespace airlock::config
