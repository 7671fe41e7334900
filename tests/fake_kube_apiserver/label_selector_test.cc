#include "tests/fake_kube_apiserver/label_selector.h"

#include <map>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::fake_kube {
namespace {

using ::testing::HasSubstr;

bool Selects(const std::string& selector, const std::map<std::string, std::string>& labels) {
  absl::StatusOr<LabelSelector> parsed = LabelSelector::Parse(selector);
  EXPECT_TRUE(parsed.ok()) << selector << ": " << parsed.status();
  return parsed.ok() && parsed->Matches(labels);
}

TEST(LabelSelectorTest, Operators) {
  const std::map<std::string, std::string> labels = {{"app", "web"}, {"tier", "front"}, {"empty", ""}};
  EXPECT_TRUE(Selects("", labels));
  EXPECT_TRUE(Selects("app=web", labels));
  EXPECT_TRUE(Selects("app==web", labels));
  EXPECT_FALSE(Selects("app=db", labels));
  EXPECT_FALSE(Selects("missing=web", labels));
  EXPECT_TRUE(Selects("app!=db", labels));
  EXPECT_FALSE(Selects("app!=web", labels));
  EXPECT_TRUE(Selects("missing!=web", labels));  // absent counts as different
  EXPECT_TRUE(Selects("tier in (back,front)", labels));
  EXPECT_FALSE(Selects("tier in (back)", labels));
  EXPECT_FALSE(Selects("missing in (back)", labels));
  EXPECT_TRUE(Selects("tier notin (back)", labels));
  EXPECT_FALSE(Selects("tier notin (back,front)", labels));
  EXPECT_TRUE(Selects("missing notin (back)", labels));
  EXPECT_TRUE(Selects("app", labels));
  EXPECT_FALSE(Selects("missing", labels));
  EXPECT_TRUE(Selects("!missing", labels));
  EXPECT_FALSE(Selects("!app", labels));
  EXPECT_TRUE(Selects("empty=", labels));
  EXPECT_FALSE(Selects("app=", labels));
}

TEST(LabelSelectorTest, CommaIsAndAndWhitespaceIsIgnored) {
  const std::map<std::string, std::string> labels = {{"app", "web"},
                                                     {"flyte.org/managed-by", "neptune-agent"}};
  EXPECT_TRUE(Selects(" app = web , flyte.org/managed-by in ( neptune-agent , x ) , !gone ", labels));
  EXPECT_FALSE(Selects("app=web,flyte.org/managed-by=other", labels));
  absl::StatusOr<LabelSelector> parsed = LabelSelector::Parse("a=b,c in (d,e),!f");
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed->requirements().size(), 3u);
  EXPECT_EQ(parsed->requirements()[1].op, LabelSelector::Operator::kIn);
  EXPECT_EQ(parsed->requirements()[1].values.size(), 2u);
  EXPECT_EQ(parsed->requirements()[2].op, LabelSelector::Operator::kDoesNotExist);
}

TEST(LabelSelectorTest, SyntaxErrors) {
  for (const char* bad : {"=web", "app in ()", "app in (a", "app in a", "app=web x", "app=(", ",app", "app,",
                          "!", "app notin", "a>1", "a<1", "a b"}) {
    absl::StatusOr<LabelSelector> parsed = LabelSelector::Parse(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(parsed.status().message(), HasSubstr("unable to parse requirement")) << bad;
  }
  EXPECT_THAT(LabelSelector::Parse("app in ()").status().message(), HasSubstr("values set can't be empty"));
}

TEST(LabelSelectorTest, KeysAndValuesAreValidated) {
  EXPECT_THAT(LabelSelector::Parse("-app=web").status().message(), HasSubstr("key: Invalid value: \"-app\""));
  EXPECT_THAT(LabelSelector::Parse("Bad_Prefix/app=web").status().message(), HasSubstr("prefix part"));
  EXPECT_THAT(LabelSelector::Parse("app=web-").status().message(), HasSubstr("values[0][app]"));
  EXPECT_THAT(LabelSelector::Parse(std::string("app=") + std::string(64, 'a')).status().message(),
              HasSubstr("must be no more than 63 characters"));
  EXPECT_TRUE(LabelSelector::Parse("example.com/App_1.x=Value_2").ok());
}

TEST(NameRulesTest, Dns1123) {
  EXPECT_EQ(CheckDns1123Subdomain("f6c5d2a1b9e8a4c3d2b1-n0-0"), "");
  EXPECT_EQ(CheckDns1123Subdomain("a.b-c.d"), "");
  EXPECT_NE(CheckDns1123Subdomain("Bad_Name"), "");
  EXPECT_NE(CheckDns1123Subdomain("-a"), "");
  EXPECT_NE(CheckDns1123Subdomain("a..b"), "");
  EXPECT_NE(CheckDns1123Subdomain(""), "");
  EXPECT_EQ(CheckDns1123Subdomain(std::string(254, 'a')), "must be no more than 253 characters");
  EXPECT_EQ(CheckDns1123Label("primary"), "");
  EXPECT_NE(CheckDns1123Label("a.b"), "");
  EXPECT_EQ(CheckDns1123Label(std::string(64, 'a')), "must be no more than 63 characters");
  EXPECT_EQ(CheckLabelValue(""), "");
  EXPECT_NE(CheckLabelValue("a b"), "");
}

}  // namespace
}  // namespace fna::fake_kube
