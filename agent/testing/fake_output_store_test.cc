#include "agent/testing/fake_output_store.h"

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace fna {
namespace {

constexpr absl::Time kDeadline = absl::InfiniteFuture();

TEST(FakeOutputStoreTest, ReadsWhatWasPutAndTheInjectedError) {
  FakeOutputStore store;
  store.Put("s3://bucket/out/error.pb", "bytes");
  EXPECT_EQ(*store.Read("s3://bucket/out/error.pb", kDeadline), std::optional<std::string>("bytes"));
  EXPECT_EQ(*store.Read("s3://bucket/out/missing.pb", kDeadline), std::nullopt);

  store.SetError(absl::UnavailableError("blob store down"));
  EXPECT_EQ(store.Read("s3://bucket/out/error.pb", kDeadline).status(),
            absl::UnavailableError("blob store down"));
  store.SetError(absl::OkStatus());
  store.Remove("s3://bucket/out/error.pb");
  EXPECT_EQ(*store.Read("s3://bucket/out/error.pb", kDeadline), std::nullopt);
  EXPECT_EQ(store.reads(), 4);
}

}  // namespace
}  // namespace fna
