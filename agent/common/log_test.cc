#include "agent/common/log.h"

#include <sstream>
#include <string>

#include "agent/common/secret.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fna {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { ConfigureLogging(LogFormat::kAuto, LogLevel::kInfo, nullptr); }
  std::ostringstream out_;
};

TEST_F(LogTest, JsonLineCarriesFieldsInOrder) {
  ConfigureLogging(LogFormat::kJson, LogLevel::kInfo, &out_);
  Log(LogLevel::kInfo, "server", "created run", {{"project", "flytesnacks"}, {"retry", "0"}});
  auto record = nlohmann::ordered_json::parse(out_.str());
  EXPECT_EQ(record["level"], "info");
  EXPECT_EQ(record["component"], "server");
  EXPECT_EQ(record["msg"], "created run");
  EXPECT_EQ(record["project"], "flytesnacks");
  EXPECT_EQ(record["retry"], "0");
  EXPECT_EQ(out_.str().back(), '\n');
  EXPECT_EQ(out_.str().find('\n'), out_.str().size() - 1);
}

TEST_F(LogTest, BelowMinimumLevelIsDropped) {
  ConfigureLogging(LogFormat::kJson, LogLevel::kWarning, &out_);
  Log(LogLevel::kInfo, "server", "quiet");
  EXPECT_EQ(out_.str(), "");
  Log(LogLevel::kError, "server", "loud");
  EXPECT_NE(out_.str().find("loud"), std::string::npos);
}

TEST_F(LogTest, RegisteredSecretIsRedactedFromMessageAndFields) {
  const Secret token("eyJhcGlfYWRkcmVzcyI6InNlY3JldC10b2tlbi12YWx1ZSJ9");
  ConfigureLogging(LogFormat::kJson, LogLevel::kInfo, &out_);
  Log(LogLevel::kError, "neptune", "bad token " + token.Reveal(), {{"error", "got " + token.Reveal()}});
  ConfigureLogging(LogFormat::kText, LogLevel::kInfo, &out_);
  Log(LogLevel::kError, "neptune", "bad token " + token.Reveal(), {{"error", token.Reveal()}});
  EXPECT_EQ(out_.str().find(token.Reveal()), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("[REDACTED]"), std::string::npos);
}

TEST_F(LogTest, StreamingASecretPrintsNoValue) {
  const Secret token("a-very-secret-token-value");
  std::ostringstream os;
  os << token;
  EXPECT_EQ(os.str(), "[REDACTED]");
}

TEST_F(LogTest, TextLineQuotesValuesWithSpaces) {
  ConfigureLogging(LogFormat::kText, LogLevel::kInfo, &out_);
  Log(LogLevel::kWarning, "tracking", "deferred", {{"error", "connection refused"}, {"node", "n0"}});
  const std::string line = out_.str();
  EXPECT_NE(line.find(" WARNING tracking: deferred error=\"connection refused\" node=n0\n"),
            std::string::npos)
      << line;
}

TEST(ParseLogTest, LevelsAndFormats) {
  LogLevel level;
  EXPECT_TRUE(ParseLogLevel("WARN", &level));
  EXPECT_EQ(level, LogLevel::kWarning);
  EXPECT_FALSE(ParseLogLevel("verbose", &level));
  LogFormat format;
  EXPECT_TRUE(ParseLogFormat("json", &format));
  EXPECT_EQ(format, LogFormat::kJson);
  EXPECT_FALSE(ParseLogFormat("xml", &format));
}

}  // namespace
}  // namespace fna
