#include "agent/neptune/token_files.h"

#include <unistd.h>

#include <fstream>
#include <string>

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

}  // namespace
}  // namespace fna::neptune
