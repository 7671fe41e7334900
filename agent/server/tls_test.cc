#include "agent/server/tls.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "agent/testing/test_pki.h"
#include "gtest/gtest.h"

namespace fna::server {
namespace {

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(testing::WriteTestPki(::testing::TempDir(), &pki_)); }

  AgentConfig Config() const {
    AgentConfig config;
    config.tls_cert_file = pki_.server_cert_file;
    config.tls_key_file = pki_.server_key_file;
    config.tls_client_ca_file = pki_.ca_file;
    return config;
  }

  testing::TestPki pki_;
};

TEST_F(TlsTest, GoodFilesMakeTlsCredentials) {
  EXPECT_TRUE(CheckTlsFiles(Config()).ok());
  EXPECT_TRUE(MakeServerCredentials(Config()).ok());
  EXPECT_TRUE(CheckTlsFiles(AgentConfig()).ok());  // plaintext
  EXPECT_TRUE(MakeServerCredentials(AgentConfig()).ok());
}

TEST_F(TlsTest, EachBadFileIsAnErrorNamingItsKey) {
  AgentConfig config = Config();
  config.tls_cert_file = "/nonexistent/tls.crt";
  EXPECT_EQ(CheckTlsFiles(config).message(),
            "server.tls_cert_file \"/nonexistent/tls.crt\": cannot read: No such file or directory");
  config = Config();
  config.tls_cert_file = pki_.server_key_file;
  EXPECT_EQ(CheckTlsFiles(config).message(),
            absl::StrCat("server.tls_cert_file \"", pki_.server_key_file, "\": holds no PEM certificate"));
  config = Config();
  config.tls_key_file = pki_.ca_file;
  EXPECT_EQ(CheckTlsFiles(config).message(),
            absl::StrCat("server.tls_key_file \"", pki_.ca_file, "\": holds no PEM private key"));
  config = Config();
  config.tls_cert_file = pki_.ca_file;  // not the certificate of the server's key
  EXPECT_EQ(CheckTlsFiles(config).message(),
            absl::StrCat("server.tls_key_file \"", pki_.server_key_file,
                         "\" is not the key of server.tls_cert_file \"", pki_.ca_file, "\""));
  config = Config();
  config.tls_client_ca_file = "/nonexistent/ca.crt";
  EXPECT_EQ(MakeServerCredentials(config).status().message(),
            "server.tls_client_ca_file \"/nonexistent/ca.crt\": cannot read: No such file or directory");
}

}  // namespace
}  // namespace fna::server
