#include "agent/kube/token_provider.h"

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/testing/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::kube {
namespace {

using ::testing::HasSubstr;

class TokenProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/fna-kube-token-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    file_ = dir_ + "/token";
  }
  void TearDown() override {
    unlink(file_.c_str());
    rmdir(dir_.c_str());
  }
  void WriteToken(const std::string& content) { std::ofstream(file_, std::ios::trunc) << content; }
  std::string TokenNow(TokenProvider& provider) {
    absl::StatusOr<Secret> token = provider.Token();
    EXPECT_TRUE(token.ok()) << token.status();
    return token.ok() ? token->Reveal() : "";
  }

  std::string dir_;
  std::string file_;
  FakeClock clock_;
};

TEST_F(TokenProviderTest, StaticTokenOrNone) {
  TokenProvider fixed(Secret("static-token-1"), "", &clock_);
  EXPECT_FALSE(fixed.rotates());
  EXPECT_EQ(TokenNow(fixed), "static-token-1");
  TokenProvider none(Secret(), "", &clock_);
  EXPECT_EQ(TokenNow(none), "");
}

TEST_F(TokenProviderTest, FileIsReReadAtMostOncePerMinute) {
  WriteToken("token-one\n");
  TokenProvider provider(Secret(), file_, &clock_);
  EXPECT_TRUE(provider.rotates());
  EXPECT_EQ(TokenNow(provider), "token-one");
  WriteToken("token-two");
  EXPECT_EQ(TokenNow(provider), "token-one");
  clock_.Advance(absl::Seconds(59));
  EXPECT_EQ(TokenNow(provider), "token-one");
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(TokenNow(provider), "token-two");
  EXPECT_EQ(provider.reads(), 2);
}

TEST_F(TokenProviderTest, InvalidateReReadsOnTheNextCall) {
  WriteToken("token-one");
  TokenProvider provider(Secret(), file_, &clock_);
  EXPECT_EQ(TokenNow(provider), "token-one");
  WriteToken("token-two");
  provider.Invalidate();
  EXPECT_EQ(TokenNow(provider), "token-two");
  EXPECT_EQ(TokenNow(provider), "token-two");
  EXPECT_EQ(provider.reads(), 2);
}

TEST_F(TokenProviderTest, AFailedReReadKeepsTheLastToken) {
  WriteToken("token-one");
  TokenProvider provider(Secret(), file_, &clock_);
  EXPECT_EQ(TokenNow(provider), "token-one");
  unlink(file_.c_str());
  clock_.Advance(absl::Minutes(2));
  EXPECT_EQ(TokenNow(provider), "token-one");
  WriteToken("token-three");  // tried again on the next call, without waiting another minute
  EXPECT_EQ(TokenNow(provider), "token-three");
}

TEST_F(TokenProviderTest, UnreadableFileFallsBackToTheStaticTokenElseFails) {
  TokenProvider with_static(Secret("static-token-1"), file_, &clock_);
  EXPECT_EQ(TokenNow(with_static), "static-token-1");
  WriteToken("file-token-1");
  with_static.Invalidate();
  EXPECT_EQ(TokenNow(with_static), "file-token-1");  // the file, once read, wins

  unlink(file_.c_str());
  TokenProvider without(Secret(), file_, &clock_);
  absl::StatusOr<Secret> token = without.Token();
  EXPECT_EQ(token.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(token.status().message(), HasSubstr(file_));
  WriteToken(" \n");
  token = without.Token();
  EXPECT_EQ(token.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(token.status().message(), HasSubstr("empty"));
}

}  // namespace
}  // namespace fna::kube
