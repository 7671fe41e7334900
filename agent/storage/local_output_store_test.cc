#include "agent/storage/local_output_store.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::storage {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr absl::Time kDeadline = absl::InfiniteFuture();

class LocalOutputStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    std::string pattern = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/local_output_store_test-XXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    fs::permissions(root_, fs::perms::owner_all, fs::perm_options::add);
    fs::remove_all(root_);
  }

  std::string Put(const std::string& name, const std::string& bytes) {
    const fs::path path = root_ / name;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << bytes;
    return path.string();
  }

  fs::path root_;
  LocalOutputStore store_;
};

TEST_F(LocalOutputStoreTest, ReadsFileUrisAndAbsolutePaths) {
  const std::string bytes("error\0pb\xff", 9);
  const std::string path = Put("out/0/error.pb", bytes);

  absl::StatusOr<std::optional<std::string>> by_uri = store_.Read("file://" + path, kDeadline);
  ASSERT_TRUE(by_uri.ok()) << by_uri.status();
  EXPECT_EQ(*by_uri, bytes);

  absl::StatusOr<std::optional<std::string>> by_localhost = store_.Read("file://localhost" + path, kDeadline);
  ASSERT_TRUE(by_localhost.ok()) << by_localhost.status();
  EXPECT_EQ(*by_localhost, bytes);

  absl::StatusOr<std::optional<std::string>> by_path = store_.Read(path, kDeadline);
  ASSERT_TRUE(by_path.ok()) << by_path.status();
  EXPECT_EQ(*by_path, bytes);
}

TEST_F(LocalOutputStoreTest, EmptyFileIsPresent) {
  const std::string path = Put("empty", "");
  absl::StatusOr<std::optional<std::string>> read = store_.Read("file://" + path, kDeadline);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, std::optional<std::string>(""));
}

TEST_F(LocalOutputStoreTest, LargeFileIsReadWhole) {
  std::string bytes;
  for (int i = 0; i < 200000; ++i) bytes.push_back(static_cast<char>(i % 251));
  const std::string path = Put("large", bytes);
  absl::StatusOr<std::optional<std::string>> read = store_.Read(path, kDeadline);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, bytes);
}

TEST_F(LocalOutputStoreTest, MissingFileOrDirectoryIsNullopt) {
  const std::string file = Put("file", "x");
  for (const std::string& uri : {"file://" + (root_ / "missing.pb").string(),
                                 (root_ / "no/dir/error.pb").string(), "file://" + file + "/error.pb"}) {
    absl::StatusOr<std::optional<std::string>> read = store_.Read(uri, kDeadline);
    ASSERT_TRUE(read.ok()) << uri << ": " << read.status();
    EXPECT_EQ(*read, std::nullopt) << uri;
  }
}

TEST_F(LocalOutputStoreTest, OtherSchemesAreUnimplementedNamingTheScheme) {
  for (const std::string scheme : {"s3", "gs", "abfs"}) {
    const absl::Status status = store_.Read(scheme + "://bucket/out/error.pb", kDeadline).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("\"" + scheme + "\"")) << status;
  }
}

TEST_F(LocalOutputStoreTest, RelativePathsAndOtherHostsAreInvalid) {
  for (const std::string uri : {"out/error.pb", "file://otherhost/out/error.pb", "file://localhost", ""}) {
    EXPECT_EQ(store_.Read(uri, kDeadline).status().code(), absl::StatusCode::kInvalidArgument) << uri;
  }
}

TEST_F(LocalOutputStoreTest, ReadErrorsNameThePath) {
  const fs::path dir = root_ / "a_directory";
  fs::create_directories(dir);
  const absl::Status status = store_.Read("file://" + dir.string(), kDeadline).status();
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr(dir.string()));
  EXPECT_THAT(std::string(status.message()), HasSubstr("Is a directory"));
}

TEST_F(LocalOutputStoreTest, UnreadableFileIsPermissionDenied) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads any file";
  const std::string path = Put("secret.pb", "x");
  ASSERT_EQ(chmod(path.c_str(), 0), 0);
  const absl::Status status = store_.Read(path, kDeadline).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(path));
}

}  // namespace
}  // namespace fna::storage
