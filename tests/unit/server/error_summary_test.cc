// ErrorSummary: a line a minute with the upstream and resolver failures since the last, none when
// there were none, never a line per failure.
#include "gateway/server/error_summary.h"

#include <gtest/gtest.h>

namespace airlock::server {
namespace {

TEST(ErrorSummary, OneLineAMinuteWithWhatFailedSinceTheLast) {
  Metrics metrics;
  metrics.CountDecision("deny", "upstream_connect_failed");  // before: not counted
  ErrorSummary summary(metrics);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) metrics.CountDecision("deny", "upstream_connect_failed");
  metrics.CountDecision("deny", "host_not_allowed");  // a policy's denial is no error
  metrics.resolver_errors += 2;

  testing::internal::CaptureStderr();
  summary.Tick(t0 + std::chrono::seconds(30));  // not a minute yet
  summary.Tick(t0 + std::chrono::seconds(61));
  summary.Tick(t0 + std::chrono::seconds(122));  // nothing new: no line
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out.find("event=errors.summary"), out.rfind("event=errors.summary")) << out;
  EXPECT_NE(out.find("level=warn event=errors.summary"), std::string::npos) << out;
  EXPECT_NE(out.find(" total=5 "), std::string::npos) << out;
  EXPECT_NE(out.find("errors=resolver_errors:2,upstream_connect_failed:3"), std::string::npos)
      << out;
  EXPECT_EQ(out.find("host_not_allowed"), std::string::npos) << out;
}

}  // namespace
}  // namespace airlock::server
