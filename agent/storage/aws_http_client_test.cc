#include "agent/storage/aws_http_client.h"

#include <deque>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/testing/fake_clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::storage {
namespace {

using ::testing::HasSubstr;

TEST(XmlTest, ReadsLeafElementsAndDecodesEntities) {
  const std::string xml =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
      "<Message>a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos; &#233;&#xE9; &bogus; &</Message>"
      "<Key>out/x&amp;y</Key></Error>";
  EXPECT_EQ(XmlElementText(xml, "Code"), "NoSuchKey");
  EXPECT_EQ(XmlElementText(xml, "Message"), "a <b> & \"c\" 'd' \xc3\xa9\xc3\xa9 &bogus; &");
  EXPECT_EQ(XmlElementText(xml, "Key"), "out/x&y");
  EXPECT_EQ(XmlElementText(xml, "RequestId"), std::nullopt);
  EXPECT_EQ(XmlElementText("<Code>unterminated", "Code"), std::nullopt);
}

TEST(XmlTest, ParsesS3AndStsErrors) {
  const AwsError s3 = ParseAwsError(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access "
      "Denied</Message><RequestId>1</RequestId></Error>");
  EXPECT_EQ(s3.code, "AccessDenied");
  EXPECT_EQ(s3.message, "Access Denied");
  const AwsError sts = ParseAwsError(
      "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    "
      "<Type>Sender</Type>\n"
      "    <Code>InvalidIdentityToken</Code>\n    <Message>bad token</Message>\n  </Error>\n"
      "  <RequestId>r</RequestId>\n</ErrorResponse>\n");
  EXPECT_EQ(sts.code, "InvalidIdentityToken");
  EXPECT_EQ(sts.message, "bad token");
  EXPECT_EQ(ParseAwsError("<html>gateway timeout</html>").code, "");

  http::HttpResponse response;
  response.status = 503;
  response.body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
  EXPECT_EQ(DescribeResponse(response), "503 SlowDown: Please reduce your request rate.");
  response.body.clear();
  EXPECT_EQ(DescribeResponse(response), "503 (no AWS error code)");
}

// Answers from a script: statuses (or transport errors) in order.
class ScriptedTransport final : public http::HttpTransport {
 public:
  explicit ScriptedTransport(std::deque<absl::StatusOr<http::HttpResponse>> script)
      : script_(std::move(script)) {}
  absl::StatusOr<http::HttpResponse> Send(const http::HttpRequest& request) override {
    deadlines.push_back(request.deadline);
    if (script_.empty()) return Status(200);
    absl::StatusOr<http::HttpResponse> next = std::move(script_.front());
    script_.pop_front();
    return next;
  }
  static http::HttpResponse Status(int status) {
    http::HttpResponse response;
    response.status = status;
    return response;
  }
  std::vector<absl::Time> deadlines;

 private:
  std::deque<absl::StatusOr<http::HttpResponse>> script_;
};

class AwsHttpClientTest : public ::testing::Test {
 protected:
  absl::StatusOr<http::HttpResponse> Send(ScriptedTransport* transport, absl::Time deadline) {
    AwsHttpClient client(transport, &clock_, retry_, [] { return 0.5; });
    const auto build = []() -> absl::StatusOr<http::HttpRequest> {
      http::HttpRequest request;
      request.url = "https://s3.example/";
      return request;
    };
    return client.Send("GET s3://b/k", deadline, build,
                       [](const http::HttpResponse& response) { return response.status >= 500; });
  }

  FakeClock clock_;
  RetryOptions retry_{absl::Milliseconds(100), 2.0, absl::Seconds(1), 0.2, absl::Seconds(3)};
};

TEST_F(AwsHttpClientTest, RetriesConnectionErrorsAndRetryableAnswersWithBackoff) {
  ScriptedTransport transport({absl::UnavailableError("connection refused"), ScriptedTransport::Status(503),
                               absl::DeadlineExceededError("attempt timed out"),
                               ScriptedTransport::Status(404)});
  const absl::Time start = clock_.Now();
  auto response = Send(&transport, start + absl::Minutes(1));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 404);
  EXPECT_EQ(transport.deadlines.size(), 4u);
  EXPECT_EQ(clock_.slept(), absl::Milliseconds(100 + 200 + 400));
  // Each attempt is bounded by the attempt timeout.
  EXPECT_EQ(transport.deadlines[0], start + absl::Seconds(3));
}

TEST_F(AwsHttpClientTest, GivesUpBeforeTheDeadlineNamingTheLastProblem) {
  std::deque<absl::StatusOr<http::HttpResponse>> script;
  for (int i = 0; i < 100; ++i) {
    http::HttpResponse response = ScriptedTransport::Status(503);
    response.body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
    script.push_back(response);
  }
  ScriptedTransport transport(std::move(script));
  const absl::Time deadline = clock_.Now() + absl::Seconds(2);
  auto response = Send(&transport, deadline);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable) << response.status();
  EXPECT_THAT(std::string(response.status().message()), HasSubstr("GET s3://b/k: 503 SlowDown"));
  EXPECT_THAT(std::string(response.status().message()), HasSubstr("gave up after 5 attempts"));
  EXPECT_LE(clock_.Now(), deadline);
  EXPECT_EQ(transport.deadlines.back(), deadline);  // the last attempt's own timeout is cut to the deadline
}

TEST_F(AwsHttpClientTest, OtherTransportErrorsEndTheCallAtOnce) {
  ScriptedTransport transport({absl::FailedPreconditionError("certificate not trusted")});
  auto response = Send(&transport, clock_.Now() + absl::Minutes(1));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(response.status().message()), HasSubstr("GET s3://b/k: certificate not trusted"));
  EXPECT_EQ(transport.deadlines.size(), 1u);
}

TEST_F(AwsHttpClientTest, APassedDeadlineSendsNothing) {
  ScriptedTransport transport({});
  auto response = Send(&transport, clock_.Now());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(transport.deadlines.empty());
}

TEST(ServiceEndpointTest, AcceptsBaseUrlsOnly) {
  EXPECT_TRUE(ParseServiceEndpoint("https://s3.us-east-1.amazonaws.com", "the S3 endpoint").ok());
  EXPECT_TRUE(ParseServiceEndpoint("http://minio:9000/", "the S3 endpoint").ok());
  for (const char* bad : {"minio:9000", "ftp://host", "http://host/prefix", "http://host/?x=1", ""}) {
    const absl::Status status = ParseServiceEndpoint(bad, "the S3 endpoint").status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(status.message()), HasSubstr("the S3 endpoint")) << bad;
  }
}

}  // namespace
}  // namespace fna::storage
