#include "agent/neptune/token_files.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#include "agent/common/log.h"
#include "gtest/gtest.h"

namespace fna::neptune {
namespace {

class TokenFilesTest : public ::testing::Test {
 protected:
  void Write(const std::string& content) {
    // A new file, as a Secret rotation does (a new inode behind the same path).
    const std::string tmp = path_ + ".new";
    std::ofstream(tmp) << content;
    ASSERT_EQ(rename(tmp.c_str(), path_.c_str()), 0);
  }
  void TearDown() override { unlink(path_.c_str()); }

  std::string path_ = ::testing::TempDir() + "token_files_test_" + std::to_string(getpid());
  TokenFiles files_;
};

TEST_F(TokenFilesTest, ReadsTrimmedAndSeesRotation) {
  Write("first-token-value\n");
  auto token = files_.Read(path_);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->Reveal(), "first-token-value");
  Write("second-token-value");
  token = files_.Read(path_);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->Reveal(), "second-token-value");
}

TEST_F(TokenFilesTest, ErrorsNameThePathNotTheContent) {
  auto missing = files_.Read(path_ + ".missing");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(path_ + ".missing"), std::string::npos);
  Write("  \n");
  EXPECT_EQ(files_.Read(path_).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TokenFilesTest, UnreadableFilesAreCountedAndLoggedOncePerChange) {
  metrics::Registry registry;
  TokenFiles files(&registry);
  std::ostringstream log;
  ConfigureLogging(LogFormat::kJson, LogLevel::kInfo, &log);
  Write("a-token-value");
  ASSERT_TRUE(files.Read(path_).ok());
  unlink(path_.c_str());
  EXPECT_FALSE(files.Read(path_).ok());
  EXPECT_FALSE(files.Read(path_).ok());
  const std::string degraded = registry.TextExposition();
  EXPECT_NE(degraded.find("\nflyte_neptune_agent_token_file_read_errors_total 2\n"), std::string::npos);
  EXPECT_NE(degraded.find("\nflyte_neptune_agent_token_files_unreadable 1\n"), std::string::npos);
  Write("a-token-value");
  ASSERT_TRUE(files.Read(path_).ok());
  EXPECT_NE(registry.TextExposition().find("\nflyte_neptune_agent_token_files_unreadable 0\n"),
            std::string::npos);
  ConfigureLogging(LogFormat::kAuto, LogLevel::kInfo);
  const std::string lines = log.str();
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 2) << lines;
  EXPECT_NE(lines.find("tracking with it is degraded"), std::string::npos);
  EXPECT_NE(lines.find("readable again"), std::string::npos);
  EXPECT_EQ(lines.find("a-token-value"), std::string::npos);
}

}  // namespace
}  // namespace fna::neptune
