// Strict, typed reading of YAML configuration with file:line:column diagnostics. Every reader
// records errors and keeps going so that one run reports every mistake. Unknown and duplicate
// keys are errors. Used by the policy loader and the policy test-case loader.
// Not thread-safe; a reader lives for one load.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/config/diagnostic.h"

namespace airlock::config {

// Where errors go while one file is read.
class YamlContext {
 public:
  YamlContext(std::string file, Diagnostics* diags) : file_(std::move(file)), diags_(diags) {}

  const std::string& file() const { return file_; }
  void Error(const YAML::Node& at, std::string message);
  void Error(const YAML::Mark& at, std::string message);
  void ErrorNoPosition(std::string message);

 private:
  std::string file_;
  Diagnostics* diags_;
};

// Parses one YAML document from a file or a string; a syntax error becomes a diagnostic.
std::optional<YAML::Node> ParseYamlFile(YamlContext& ctx);
std::optional<YAML::Node> ParseYamlString(const std::string& text, YamlContext& ctx);

// Scalar conversions; each reports its own error at the node.
std::optional<std::string> ReadString(const YAML::Node& node, YamlContext& ctx);
std::optional<bool> ReadBool(const YAML::Node& node, YamlContext& ctx);
std::optional<int64_t> ReadInt(const YAML::Node& node, int64_t min, int64_t max, YamlContext& ctx);
// A sequence of scalars as strings (an empty vector after an error).
std::optional<std::vector<std::pair<std::string, YAML::Node>>> ReadStringList(
    const YAML::Node& node, YamlContext& ctx);

// Reads a mapping: take fields by name, then Finish() reports keys nobody asked for.
class MapReader {
 public:
  // `what` names the mapping in messages ("policy", "egress rule").
  MapReader(const YAML::Node& node, std::string what, YamlContext& ctx);

  bool valid() const { return valid_; }
  const YAML::Node& node() const { return node_; }

  // The value of `key`, or nullopt (with an error when `required`).
  std::optional<YAML::Node> Get(std::string_view key, bool required = false);
  std::optional<std::string> String(std::string_view key, bool required = false);
  std::optional<bool> Bool(std::string_view key);
  std::optional<int64_t> Int(std::string_view key, int64_t min, int64_t max, bool required = false);

  // Reports every key not read with Get() and friends.
  void Finish();

 private:
  YAML::Node node_;
  std::string what_;
  YamlContext& ctx_;
  bool valid_ = false;
  std::set<std::string, std::less<>> read_;
};

}  // namespace airlock::config
