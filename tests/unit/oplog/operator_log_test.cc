// The operator's log: line format, escaping (a value can never start a line or fake a field),
// levels.
#include "gateway/oplog/operator_log.h"

#include <gtest/gtest.h>

namespace airlock::oplog {
namespace {

TEST(OperatorLog, PlainAndQuotedValues) {
  EXPECT_EQ(FormatLine(Level::kInfo, "policy.load", {F("trigger", "sighup"), F("n", 3)}),
            "level=info event=policy.load trigger=sighup n=3");
  EXPECT_EQ(FormatLine(Level::kWarn, "policy.reject", {F("errors", "a.yaml:1:2: bad \"x\"")}),
            R"(level=warn event=policy.reject errors="a.yaml:1:2: bad \"x\"")");
  EXPECT_EQ(FormatLine(Level::kError, "e", {F("empty", "")}), R"(level=error event=e empty="")");
}

TEST(OperatorLog, AValueCannotStartALineOrFakeAField) {
  std::string line =
      FormatLine(Level::kInfo, "x", {F("error", "one\ntwo level=error event=forged\r\x1b[2J\\ =")});
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  EXPECT_EQ(line.find('\x1b'), std::string::npos);
  EXPECT_EQ(line, R"(level=info event=x error="one\ntwo level=error event=forged\x0d\x1b[2J\\ =")");
}

TEST(OperatorLog, Levels) {
  EXPECT_EQ(ParseLevel("debug"), Level::kDebug);
  EXPECT_EQ(ParseLevel("warn"), Level::kWarn);
  EXPECT_EQ(ParseLevel("error"), Level::kError);
  EXPECT_EQ(ParseLevel("verbose"), std::nullopt);
}

}  // namespace
}  // namespace airlock::oplog
