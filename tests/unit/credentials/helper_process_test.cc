// RunHelper: argv without a shell, stdout only (never stderr), exit status, timeout, size limit.
#include "gateway/credentials/helper_process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/credentials/test_files.h"

namespace airlock::credentials {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

TEST(RunHelperTest, ReturnsStdoutExactly) {
  struct Case {
    std::vector<std::string> argv;
    std::string out;
  };
  for (const Case& c : std::vector<Case>{
           {{"/bin/echo", "a  b", "$HOME", "*"}, "a  b $HOME *\n"},  // no shell expansion
           {{"/bin/sh", "-c", "printf 'x\\ny'"}, "x\ny"},
           {{"/bin/sh", "-c", "true"}, ""},
           {{"/bin/cat"}, ""},  // stdin is /dev/null
           {{"/bin/sh", "-c", "echo out; echo secret-on-stderr >&2"}, "out\n"},
           {{"/bin/sh", "-c", "head -c 65536 /dev/zero | tr '\\0' a"}, std::string(65536, 'a')},
       }) {
    SCOPED_TRACE(c.argv.back());
    auto out = RunHelper(c.argv, milliseconds(5000));
    ASSERT_TRUE(out.ok()) << out.status().message();
    EXPECT_EQ(*out, c.out);
  }
}

TEST(RunHelperTest, FailuresSayWhyButNeverQuoteStderr) {
  struct Case {
    std::vector<std::string> argv;
    std::string error;
  };
  const std::string discarded = " (its stderr is discarded; run it by hand to see why)";
  for (const Case& c : std::vector<Case>{
           {{"/bin/sh", "-c", "echo secret-on-stderr >&2; echo secret-on-stdout; exit 3"},
            "/bin/sh exited with status 3" + discarded},
           {{"/bin/sh", "-c", "exit 1"}, "/bin/sh exited with status 1" + discarded},
           {{"/bin/sh", "-c", "echo secret-on-stderr >&2; kill -TERM $$"},
            "/bin/sh was killed by signal 15" + discarded},
           {{"/nonexistent/helper"}, "cannot run /nonexistent/helper: No such file or directory"},
           {{"/bin/sh", "-c", "head -c 65537 /dev/zero"},
            "/bin/sh printed more than 64 KiB (killed)"},
           {{"/usr/bin/yes"}, "/usr/bin/yes printed more than 64 KiB (killed)"},
       }) {
    SCOPED_TRACE(c.argv.back());
    auto out = RunHelper(c.argv, milliseconds(5000));
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().message(), c.error);
    EXPECT_EQ(out.status().message().find("secret"), std::string::npos);
  }
}

// True once `pid` is gone or a zombie (killed, not yet reaped by whoever inherited it).
bool Dead(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!stat || !std::getline(stat, line)) return true;
  size_t paren = line.rfind(')');
  return paren == std::string::npos || line.substr(paren + 2, 1) == "Z";
}

TEST(RunHelperTest, TimeoutKillsTheHelpersProcessGroup) {
  {
    auto out = RunHelper({"/bin/sleep", "30"}, milliseconds(300));
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().message(), "/bin/sleep did not finish within 300 ms (killed)");
  }
  {
    // A child the helper started (holding stdout open) goes with it.
    test_support::TempDir dir;
    const std::string pid_file = dir.Path("pid");
    auto out = RunHelper({"/bin/sh", "-c", "sleep 30 & echo $! > " + pid_file + "; wait"},
                         milliseconds(300));
    ASSERT_FALSE(out.ok());
    EXPECT_NE(out.status().message().find("did not finish"), std::string::npos)
        << out.status().message();
    pid_t child = 0;
    std::ifstream(pid_file) >> child;
    ASSERT_GT(child, 0);
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (!Dead(child) && Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    EXPECT_TRUE(Dead(child)) << "pid " << child;
  }
}

TEST(RunHelperTest, AHelperThatClosesItsOutputMustStillExitInTime) {
  auto out = RunHelper({"/bin/sh", "-c", "echo '{}'; exec >&-; sleep 30"}, milliseconds(300));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(), "/bin/sh did not finish within 300 ms (killed)");
}

}  // namespace
}  // namespace airlock::credentials
