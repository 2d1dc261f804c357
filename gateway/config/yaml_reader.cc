// Strict typed YAML reading. yaml-cpp reports problems with exceptions; they are caught here, at
// the boundary, and turned into diagnostics.
#include "gateway/config/yaml_reader.h"

#include <yaml-cpp/eventhandler.h>

#include <charconv>
#include <fstream>
#include <sstream>

namespace airlock::config {
namespace {

// Counts a text's documents with yaml-cpp's event parser, watching where each starts. yaml-cpp
// 0.7's LoadAll() never returns on some texts (one that starts with ","): its parser reports the
// same empty document forever without consuming anything. Counting ourselves stops there.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  YAML::Mark start;
};

const char* KindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing (null)";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "an undefined value";
  }
}

}  // namespace

void YamlContext::Error(const YAML::Node& at, std::string message) { Error(at.Mark(), message); }

void YamlContext::Error(const YAML::Mark& at, std::string message) {
  if (at.is_null()) {
    ErrorNoPosition(std::move(message));
    return;
  }
  diags_->Add(file_, at.line + 1, at.column + 1, std::move(message));
}

void YamlContext::ErrorNoPosition(std::string message) {
  diags_->Add(file_, 0, 0, std::move(message));
}

std::optional<YAML::Node> ParseYamlString(const std::string& text, YamlContext& ctx) {
  try {
    std::stringstream in(text);
    YAML::Parser parser(in);
    DocumentCounter counter;
    size_t docs = 0;
    YAML::Mark previous;
    while (docs < 2 && parser.HandleNextDocument(counter)) {
      if (docs > 0 && counter.start.pos == previous.pos) {
        ctx.Error(counter.start, "YAML syntax: unexpected character at the start of a document");
        return std::nullopt;
      }
      previous = counter.start;
      ++docs;
    }
    if (docs == 0) {
      ctx.ErrorNoPosition("file is empty");
      return std::nullopt;
    }
    if (docs > 1) {
      ctx.Error(counter.start, "a second YAML document starts here; exactly one is expected");
      return std::nullopt;
    }
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    ctx.Error(e.mark, "YAML syntax: " + e.msg);
    return std::nullopt;
  }
}

std::optional<YAML::Node> ParseYamlFile(YamlContext& ctx) {
  std::ifstream in(ctx.file(), std::ios::binary);
  if (!in) {
    ctx.ErrorNoPosition("cannot read file");
    return std::nullopt;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParseYamlString(buffer.str(), ctx);
}

std::optional<std::string> ReadString(const YAML::Node& node, YamlContext& ctx) {
  if (!node.IsScalar()) {
    ctx.Error(node, std::string("expected a string, found ") + KindName(node));
    return std::nullopt;
  }
  return node.Scalar();
}

std::optional<bool> ReadBool(const YAML::Node& node, YamlContext& ctx) {
  if (node.IsScalar()) {
    if (node.Scalar() == "true") return true;
    if (node.Scalar() == "false") return false;
  }
  ctx.Error(node, "expected true or false");
  return std::nullopt;
}

std::optional<int64_t> ReadInt(const YAML::Node& node, int64_t min, int64_t max, YamlContext& ctx) {
  if (!node.IsScalar()) {
    ctx.Error(node, std::string("expected a whole number, found ") + KindName(node));
    return std::nullopt;
  }
  const std::string& s = node.Scalar();
  int64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
    ctx.Error(node, "expected a whole number, found '" + s + "'");
    return std::nullopt;
  }
  if (value < min || value > max) {
    ctx.Error(node, "value " + s + " is out of range [" + std::to_string(min) + ", " +
                        std::to_string(max) + "]");
    return std::nullopt;
  }
  return value;
}

std::optional<std::vector<std::pair<std::string, YAML::Node>>> ReadStringList(
    const YAML::Node& node, YamlContext& ctx) {
  if (!node.IsSequence()) {
    ctx.Error(node, std::string("expected a list, found ") + KindName(node));
    return std::nullopt;
  }
  std::vector<std::pair<std::string, YAML::Node>> out;
  for (const auto& item : node) {
    if (auto s = ReadString(item, ctx)) out.emplace_back(*s, item);
  }
  return out;
}

MapReader::MapReader(const YAML::Node& node, std::string what, YamlContext& ctx)
    : node_(node), what_(std::move(what)), ctx_(ctx) {
  if (!node.IsMap()) {
    ctx_.Error(node, "expected " + what_ + " to be a mapping, found " + KindName(node));
    return;
  }
  valid_ = true;
  std::set<std::string, std::less<>> seen;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) {
      ctx_.Error(kv.first, "keys must be plain strings");
      continue;
    }
    if (!seen.insert(kv.first.Scalar()).second) {
      ctx_.Error(kv.first, "duplicate key '" + kv.first.Scalar() + "' in " + what_);
    }
  }
}

std::optional<YAML::Node> MapReader::Get(std::string_view key, bool required) {
  if (!valid_) return std::nullopt;
  read_.emplace(key);
  for (const auto& kv : node_) {
    if (kv.first.IsScalar() && kv.first.Scalar() == key) return kv.second;
  }
  if (required) ctx_.Error(node_, what_ + " is missing required key '" + std::string(key) + "'");
  return std::nullopt;
}

std::optional<std::string> MapReader::String(std::string_view key, bool required) {
  auto n = Get(key, required);
  return n ? ReadString(*n, ctx_) : std::nullopt;
}

std::optional<bool> MapReader::Bool(std::string_view key) {
  auto n = Get(key);
  return n ? ReadBool(*n, ctx_) : std::nullopt;
}

std::optional<int64_t> MapReader::Int(std::string_view key, int64_t min, int64_t max,
                                      bool required) {
  auto n = Get(key, required);
  return n ? ReadInt(*n, min, max, ctx_) : std::nullopt;
}

void MapReader::Finish() {
  if (!valid_) return;
  std::string known;
  for (const auto& k : read_) known += (known.empty() ? "" : ", ") + k;
  for (const auto& kv : node_) {
    if (!kv.first.IsScalar()) continue;
    if (read_.find(kv.first.Scalar()) == read_.end()) {
      ctx_.Error(kv.first, "unknown key '" + kv.first.Scalar() + "' in " + what_ +
                               " (known keys: " + known + ")");
    }
  }
}

}  // namespace airlock::config
