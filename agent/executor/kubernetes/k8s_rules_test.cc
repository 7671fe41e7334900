#include "agent/executor/kubernetes/k8s_rules.h"

#include <string>

#include "gtest/gtest.h"

namespace fna::executor::kubernetes {
namespace {

TEST(K8sRulesTest, Dns1123Label) {
  EXPECT_TRUE(IsDns1123Label("f6c5d2a1b9e8a4c3d2b1-n0-0"));
  EXPECT_TRUE(IsDns1123Label("a"));
  EXPECT_TRUE(IsDns1123Label(std::string(63, 'a')));
  EXPECT_FALSE(IsDns1123Label(std::string(64, 'a')));
  EXPECT_FALSE(IsDns1123Label(""));
  EXPECT_FALSE(IsDns1123Label("-a"));
  EXPECT_FALSE(IsDns1123Label("a-"));
  EXPECT_FALSE(IsDns1123Label("A"));
  EXPECT_FALSE(IsDns1123Label("a.b"));
  EXPECT_FALSE(IsDns1123Label("a_b"));
}

TEST(K8sRulesTest, Dns1123Subdomain) {
  EXPECT_TRUE(IsDns1123Subdomain("a.b-c.d"));
  EXPECT_TRUE(IsDns1123Subdomain(std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                                 std::string(63, 'c') + "." + std::string(61, 'd')));  // 253
  EXPECT_FALSE(IsDns1123Subdomain(std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                                  std::string(63, 'c') + "." + std::string(62, 'd')));  // 254
  EXPECT_FALSE(IsDns1123Subdomain("a..b"));
  EXPECT_FALSE(IsDns1123Subdomain(".a"));
  EXPECT_FALSE(IsDns1123Subdomain("Bad_Name"));
}

TEST(K8sRulesTest, LabelValue) {
  EXPECT_TRUE(IsLabelValue(""));
  EXPECT_TRUE(IsLabelValue("workflows.example.say_hello"));
  EXPECT_TRUE(IsLabelValue("True"));
  EXPECT_TRUE(IsLabelValue(std::string(63, 'x')));
  EXPECT_FALSE(IsLabelValue(std::string(64, 'x')));
  EXPECT_FALSE(IsLabelValue("_a"));
  EXPECT_FALSE(IsLabelValue("a."));
  EXPECT_FALSE(IsLabelValue("a b"));
  EXPECT_FALSE(IsLabelValue("a/b"));
}

TEST(K8sRulesTest, QualifiedName) {
  EXPECT_TRUE(IsQualifiedName("app.kubernetes.io/managed-by"));
  EXPECT_TRUE(IsQualifiedName("primary_container_name"));
  EXPECT_TRUE(IsQualifiedName("flyte.secrets/s0"));
  EXPECT_TRUE(IsQualifiedName(std::string(63, 'k')));
  EXPECT_FALSE(IsQualifiedName(std::string(64, 'k')));
  EXPECT_FALSE(IsQualifiedName(std::string(254, 'p') + "/k"));
  EXPECT_FALSE(IsQualifiedName("Bad_Prefix/k"));
  EXPECT_FALSE(IsQualifiedName("prefix/"));
  EXPECT_FALSE(IsQualifiedName(""));
  EXPECT_FALSE(IsQualifiedName("bad key"));
  EXPECT_FALSE(IsQualifiedName("a/b/c"));
}

TEST(K8sRulesTest, SanitizeLabelValueAsPropeller) {
  EXPECT_EQ(SanitizeLabelValue("workflows.example.say_hello"), "workflows-example-say-hello");
  EXPECT_EQ(SanitizeLabelValue("My Value!"), "my-value");
  EXPECT_EQ(SanitizeLabelValue("--a--"), "a");
  EXPECT_EQ(SanitizeLabelValue("___"), "");
  EXPECT_EQ(SanitizeLabelValue(std::string(64, 'A')), std::string(63, 'a'));
  // The cut at 63 leaves a '-' at the end, which is trimmed.
  EXPECT_EQ(SanitizeLabelValue(std::string(62, 'a') + "!b"), std::string(62, 'a'));
  const std::string long_value = SanitizeLabelValue(std::string(300, '.') + "X" + std::string(300, 'y'));
  EXPECT_LE(long_value.size(), kMaxLabelValueLength);
  EXPECT_TRUE(IsLabelValue(long_value));
  EXPECT_EQ(LabelValueOrSanitized("Keep.This_1"), "Keep.This_1");
  EXPECT_EQ(LabelValueOrSanitized("not valid"), "not-valid");
}

TEST(K8sRulesTest, Quantities) {
  auto value = [](const char* text) { return ParseQuantity(text)->value; };
  EXPECT_EQ(value("500m"), 0.5L);
  EXPECT_EQ(value("1Gi"), 1073741824.0L);
  EXPECT_EQ(value("1024Mi"), value("1Gi"));
  EXPECT_EQ(value("1e3"), 1000.0L);
  EXPECT_EQ(value("1E3"), 1000.0L);
  EXPECT_EQ(value("2E"), 2e18L);
  EXPECT_EQ(value("1.5"), 1.5L);
  EXPECT_EQ(value(".5"), 0.5L);
  EXPECT_EQ(value("5."), 5.0L);
  EXPECT_EQ(value("+2k"), 2000.0L);
  EXPECT_EQ(value("-1"), -1.0L);
  EXPECT_EQ(value("100n"), 100e-9L);
  EXPECT_TRUE(ParseQuantity("0")->IsZero());
  for (const char* bad : {"", "lots", "1 Gi", "1GB", "1gi", "Gi", ".", "1e", "1e+", "1.2.3", "--1", "1Ki2"}) {
    EXPECT_FALSE(ParseQuantity(bad).has_value()) << bad;
  }
}

TEST(K8sRulesTest, FlyteBase32) {
  EXPECT_EQ(FlyteBase32(""), "");
  EXPECT_EQ(FlyteBase32("key: \"my_key\"\n"), "nnsxsoraejwxsx2lmv3secq");
  // RFC 4648 "foobar" vectors, in Flyte's alphabet (2-7 -> 1-6) and without padding.
  EXPECT_EQ(FlyteBase32("f"), "my");
  EXPECT_EQ(FlyteBase32("fo"), "mzxq");
  EXPECT_EQ(FlyteBase32("foobar"), "mzxw5ytboi");
}

TEST(K8sRulesTest, GoDurationString) {
  EXPECT_EQ(GoDurationString(absl::ZeroDuration()), "0s");
  EXPECT_EQ(GoDurationString(absl::Minutes(3)), "3m0s");
  EXPECT_EQ(GoDurationString(absl::Seconds(90)), "1m30s");
  EXPECT_EQ(GoDurationString(absl::Hours(1)), "1h0m0s");
  EXPECT_EQ(GoDurationString(absl::Milliseconds(1500)), "1.5s");
  EXPECT_EQ(GoDurationString(absl::Milliseconds(500)), "500ms");
  EXPECT_EQ(GoDurationString(absl::Microseconds(2)), "2\u00b5s");
  EXPECT_EQ(GoDurationString(absl::Nanoseconds(7)), "7ns");
  EXPECT_EQ(GoDurationString(absl::Hours(26) + absl::Minutes(3) + absl::Milliseconds(500)), "26h3m0.5s");
  EXPECT_EQ(GoDurationString(-absl::Seconds(1)), "-1s");
}

}  // namespace
}  // namespace fna::executor::kubernetes
