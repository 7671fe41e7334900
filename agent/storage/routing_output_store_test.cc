#include "agent/storage/routing_output_store.h"

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/testing/fake_output_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::storage {
namespace {

using ::testing::HasSubstr;

constexpr absl::Time kDeadline = absl::InfiniteFuture();

class RoutingOutputStoreTest : public ::testing::Test {
 protected:
  FakeOutputStore local_;
  FakeOutputStore s3_;
  RoutingOutputStore router_{&local_, &s3_};
};

TEST_F(RoutingOutputStoreTest, S3UrisGoToTheS3Store) {
  s3_.Put("s3://bucket/out/error.pb", "from s3");
  s3_.Put("S3://bucket/out/error.pb", "from s3, upper-case scheme");
  auto read = router_.Read("s3://bucket/out/error.pb", kDeadline);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "from s3");
  read = router_.Read("S3://bucket/out/error.pb", kDeadline);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "from s3, upper-case scheme");
  EXPECT_EQ(s3_.reads(), 2);
  EXPECT_EQ(local_.reads(), 0);
}

TEST_F(RoutingOutputStoreTest, FileUrisAndAbsolutePathsGoToTheLocalStore) {
  local_.Put("file:///data/out/error.pb", "file uri");
  local_.Put("/data/out/error.pb", "path");
  auto read = router_.Read("file:///data/out/error.pb", kDeadline);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "file uri");
  read = router_.Read("/data/out/error.pb", kDeadline);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "path");
  read = router_.Read("/data/missing/error.pb", kDeadline);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, std::nullopt);
  EXPECT_EQ(local_.reads(), 3);
  EXPECT_EQ(s3_.reads(), 0);
}

TEST_F(RoutingOutputStoreTest, OtherSchemesAreUnimplementedNamingTheScheme) {
  for (const std::string scheme : {"gs", "abfs", "https"}) {
    const absl::Status status = router_.Read(scheme + "://bucket/out/error.pb", kDeadline).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("\"" + scheme + "\"")) << status;
  }
  EXPECT_EQ(local_.reads() + s3_.reads(), 0);
}

TEST_F(RoutingOutputStoreTest, ARouteWithoutAStoreIsUnimplemented) {
  RoutingOutputStore local_only(&local_, nullptr);
  const absl::Status status = local_only.Read("s3://bucket/out/error.pb", kDeadline).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("s3://bucket/out/error.pb"));
}

TEST_F(RoutingOutputStoreTest, ErrorsOfTheChosenStorePassThrough) {
  s3_.SetError(absl::PermissionDeniedError("S3 refused GET s3://bucket/out/error.pb: 403 AccessDenied"));
  EXPECT_EQ(router_.Read("s3://bucket/out/error.pb", kDeadline).status().code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace fna::storage
