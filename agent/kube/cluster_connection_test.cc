#include "agent/kube/cluster_connection.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fna::kube {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// A temporary directory, removed with its content.
class TempDir {
 public:
  TempDir() {
    char dir[] = "/tmp/fna-kube-conn-XXXXXX";
    path_ = mkdtemp(dir) != nullptr ? dir : "";
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string Write(const std::string& relative, const std::string& content) const {
    const std::string file = absl::StrCat(path_, "/", relative);
    std::filesystem::create_directories(std::filesystem::path(file).parent_path());
    std::ofstream(file, std::ios::trunc) << content;
    return file;
  }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

EnvGetter EnvOf(std::map<std::string, std::string> values) {
  return [values = std::move(values)](const std::string& name) -> std::optional<std::string> {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

class InClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.Write("sa/ca.crt", "-----BEGIN CERTIFICATE-----\n");
    dir_.Write("sa/token", "sa-token-0123456789\n");
    dir_.Write("sa/namespace", "flyte\n");
  }
  std::string sa() const { return dir_.path() + "/sa"; }
  TempDir dir_;
};

TEST_F(InClusterTest, ServiceHostPortAndServiceAccountFiles) {
  absl::StatusOr<ClusterConnection> connection = InClusterConnection(
      EnvOf({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}}), sa());
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_EQ(connection->server, "https://10.96.0.1:443");
  EXPECT_EQ(connection->ca_file, sa() + "/ca.crt");
  EXPECT_EQ(connection->token_file, sa() + "/token");
  EXPECT_TRUE(connection->token.empty());  // read through the file, as it rotates
  EXPECT_EQ(connection->default_namespace, "flyte");
  EXPECT_FALSE(connection->insecure_skip_tls_verify);
  EXPECT_TRUE(connection->client_cert_file.empty());
  EXPECT_EQ(connection->source, "in-cluster service account");
}

TEST_F(InClusterTest, Ipv6HostIsBracketed) {
  absl::StatusOr<ClusterConnection> connection = InClusterConnection(
      EnvOf({{"KUBERNETES_SERVICE_HOST", "fd00:10:96::1"}, {"KUBERNETES_SERVICE_PORT", "6443"}}), sa());
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_EQ(connection->server, "https://[fd00:10:96::1]:6443");
}

TEST_F(InClusterTest, MissingVariablesAreNamed) {
  absl::Status status = InClusterConnection(EnvOf({{"KUBERNETES_SERVICE_PORT", "443"}}), sa()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("KUBERNETES_SERVICE_HOST is not set"));
  status = InClusterConnection(
               EnvOf({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", ""}}), sa())
               .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("KUBERNETES_SERVICE_PORT is not set"));
  status = InClusterConnection(
               EnvOf({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "https"}}), sa())
               .status();
  EXPECT_THAT(status.message(), HasSubstr("not a port"));
}

TEST_F(InClusterTest, MissingFilesAreNamed) {
  const EnvGetter env = EnvOf({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}});
  std::filesystem::remove(sa() + "/token");
  absl::Status status = InClusterConnection(env, sa()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(sa() + "/token"), HasSubstr("automountServiceAccountToken")));
  dir_.Write("sa/token", "\n");
  EXPECT_THAT(InClusterConnection(env, sa()).status().message(), HasSubstr("empty"));
  dir_.Write("sa/token", "sa-token-0123456789");
  std::filesystem::remove(sa() + "/ca.crt");
  EXPECT_THAT(InClusterConnection(env, sa()).status().message(), HasSubstr(sa() + "/ca.crt"));
}

TEST_F(InClusterTest, NamespaceFromPodNamespaceThenFileThenDefault) {
  absl::StatusOr<ClusterConnection> connection =
      InClusterConnection(EnvOf({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                 {"KUBERNETES_SERVICE_PORT", "443"},
                                 {"POD_NAMESPACE", "agents"}}),
                          sa());
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_EQ(connection->default_namespace, "agents");
  std::filesystem::remove(sa() + "/namespace");
  connection = InClusterConnection(
      EnvOf({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}}), sa());
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_EQ(connection->default_namespace, "default");
}

// Two clusters, three users and contexts, in the shape `kubectl config view` prints.
constexpr char kKubeconfig[] = R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster:
    server: https://dev.example.com:6443/
    certificate-authority: certs/ca.crt
    tls-server-name: kubernetes.default.svc
- name: local
  cluster:
    server: http://127.0.0.1:8001
contexts:
- name: dev
  context:
    cluster: dev-cluster
    user: dev-token
    namespace: flytesnacks-development
- name: certs
  context:
    cluster: dev-cluster
    user: dev-cert
- name: proxy
  context:
    cluster: local
- name: eks
  context:
    cluster: dev-cluster
    user: eks-user
- name: broken
  context:
    cluster: nowhere
    user: dev-token
users:
- name: dev-token
  user:
    token: dev-token-0123456789
    tokenFile: tokens/dev
- name: dev-cert
  user:
    client-certificate: certs/client.crt
    client-key: /abs/client.key
- name: eks-user
  user:
    token: eks-static-token-0123456789
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: [eks, get-token, --cluster-name, dev]
)";

TEST(KubeconfigTest, CurrentContextWithTokenAndRelativePaths) {
  TempDir dir;
  const std::string file = dir.Write("kube/config", kKubeconfig);
  absl::StatusOr<ClusterConnection> connection = KubeconfigConnection(file, "", EnvOf({}));
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_EQ(connection->server, "https://dev.example.com:6443");
  EXPECT_EQ(connection->ca_file, dir.path() + "/kube/certs/ca.crt");
  EXPECT_EQ(connection->tls_server_name, "kubernetes.default.svc");
  EXPECT_EQ(connection->token.Reveal(), "dev-token-0123456789");
  EXPECT_EQ(connection->token_file, dir.path() + "/kube/tokens/dev");
  EXPECT_EQ(connection->default_namespace, "flytesnacks-development");
  EXPECT_EQ(connection->source, absl::StrCat("kubeconfig ", file, " context \"dev\""));
  EXPECT_EQ(connection->private_files, nullptr);
}

TEST(KubeconfigTest, NamedContextWithClientCertificate) {
  TempDir dir;
  const std::string file = dir.Write("config", kKubeconfig);
  absl::StatusOr<ClusterConnection> connection = KubeconfigConnection(file, "certs", EnvOf({}));
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_EQ(connection->client_cert_file, dir.path() + "/certs/client.crt");
  EXPECT_EQ(connection->client_key_file, "/abs/client.key");
  EXPECT_TRUE(connection->token.empty());
  EXPECT_TRUE(connection->token_file.empty());
  EXPECT_EQ(connection->default_namespace, "default");
}

TEST(KubeconfigTest, PlainHttpServerWithoutUser) {
  TempDir dir;
  const std::string file = dir.Write("config", kKubeconfig);
  absl::StatusOr<ClusterConnection> connection = KubeconfigConnection(file, "proxy", EnvOf({}));
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_EQ(connection->server, "http://127.0.0.1:8001");
  EXPECT_TRUE(connection->token.empty());
  EXPECT_TRUE(connection->token_file.empty());
  EXPECT_TRUE(connection->ca_file.empty());
}

TEST(KubeconfigTest, ExecPluginsAreRefusedWithAWayOut) {
  TempDir dir;
  const std::string file = dir.Write("config", kKubeconfig);
  absl::Status status = KubeconfigConnection(file, "eks", EnvOf({})).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("user \"eks-user\""), HasSubstr("exec"), HasSubstr("(aws)"),
                                      HasSubstr("kubectl proxy"), HasSubstr("token"), HasSubstr(file),
                                      Not(HasSubstr("eks-static-token-0123456789"))));
}

TEST(KubeconfigTest, MissingContextsAndClustersAreNamed) {
  TempDir dir;
  const std::string file = dir.Write("config", kKubeconfig);
  absl::Status status = KubeconfigConnection(file, "prod", EnvOf({})).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("context \"prod\" not found"), HasSubstr("\"dev\", \"eks\"")));
  status = KubeconfigConnection(file, "broken", EnvOf({})).status();
  EXPECT_THAT(status.message(), HasSubstr("cluster \"nowhere\", which is not defined"));

  const std::string no_current =
      dir.Write("no-current", "clusters: []\ncontexts:\n- name: a\n  context: {}\n");
  status = KubeconfigConnection(no_current, "", EnvOf({})).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("no current-context"), HasSubstr("\"a\"")));
}

TEST(KubeconfigTest, InlineDataGoesToPrivateFiles) {
  TempDir dir;
  const std::string config = absl::StrCat(
      "current-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:6443\n",
      "    certificate-authority-data: ", absl::Base64Escape("CA PEM\n"),
      "\n    certificate-authority: ignored.crt\n",
      "users:\n- name: u\n  user:\n    client-certificate-data: ", absl::Base64Escape("CERT PEM\n"),
      "\n    client-key-data: ", absl::Base64Escape("KEY PEM\n"),
      "\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n");
  const std::string file = dir.Write("config", config);
  std::string private_dir;
  {
    absl::StatusOr<ClusterConnection> connection =
        KubeconfigConnection(file, "", EnvOf({{"TMPDIR", dir.path()}}));
    ASSERT_TRUE(connection.ok()) << connection.status();
    ASSERT_NE(connection->private_files, nullptr);
    EXPECT_EQ(ReadFile(connection->ca_file), "CA PEM\n");  // the data wins over the file
    EXPECT_EQ(ReadFile(connection->client_cert_file), "CERT PEM\n");
    EXPECT_EQ(ReadFile(connection->client_key_file), "KEY PEM\n");
    private_dir = std::filesystem::path(connection->client_key_file).parent_path().string();
    EXPECT_THAT(private_dir, HasSubstr(dir.path() + "/fna-kube-"));
    struct stat info;
    ASSERT_EQ(stat(private_dir.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0700);
    ASSERT_EQ(stat(connection->client_key_file.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600);

    const ClusterConnection copy = *connection;  // shares the files
    connection = absl::InternalError("gone");
    EXPECT_EQ(ReadFile(copy.client_key_file), "KEY PEM\n");
  }
  EXPECT_FALSE(std::filesystem::exists(private_dir));  // removed with the last copy

  const std::string bad =
      dir.Write("bad",
                "current-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://h\n"
                "    certificate-authority-data: '%%%'\ncontexts:\n- name: c\n  context: {cluster: k}\n");
  EXPECT_THAT(KubeconfigConnection(bad, "", EnvOf({})).status().message(),
              HasSubstr("certificate-authority-data is not base64"));
}

TEST(KubeconfigTest, KubeconfigVariableMergesFirstWins) {
  TempDir dir;
  const std::string first = dir.Write(
      "a/config",
      "clusters:\n- name: k\n  cluster: {server: 'https://first:6443', certificate-authority: ca.crt}\n"
      "users:\n- name: u\n  user: {token: first-token-0123}\n");
  const std::string second =
      dir.Write("b/config",
                "current-context: c\nclusters:\n- name: k\n  cluster: {server: 'https://second:6443'}\n"
                "- name: other\n  cluster: {server: 'https://other:6443'}\n"
                "users:\n- name: u\n  user: {token: second-token-0123}\n"
                "contexts:\n- name: c\n  context: {cluster: k, user: u, namespace: ns}\n");
  absl::StatusOr<ClusterConnection> connection = KubeconfigConnection(
      "", "", EnvOf({{"KUBECONFIG", absl::StrCat(first, ":", dir.path(), "/missing:", second)}}));
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_EQ(connection->server, "https://first:6443");
  EXPECT_EQ(connection->ca_file, dir.path() + "/a/ca.crt");  // relative to the file that holds the entry
  EXPECT_EQ(connection->token.Reveal(), "first-token-0123");
  EXPECT_EQ(connection->default_namespace, "ns");

  absl::Status status =
      KubeconfigConnection("", "", EnvOf({{"KUBECONFIG", dir.path() + "/missing"}, {"HOME", dir.path()}}))
          .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
}

TEST(KubeconfigTest, HomeKubeConfigByDefault) {
  TempDir dir;
  dir.Write(".kube/config", kKubeconfig);
  absl::StatusOr<ClusterConnection> connection = KubeconfigConnection("", "", EnvOf({{"HOME", dir.path()}}));
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_EQ(connection->ca_file, dir.path() + "/.kube/certs/ca.crt");
  EXPECT_EQ(KubeconfigConnection("", "", EnvOf({{"HOME", dir.path() + "/nobody"}})).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(KubeconfigTest, JsonKubeconfig) {
  TempDir dir;
  const std::string file = dir.Write("config.json",
                                     R"({"kind":"Config","apiVersion":"v1","current-context":"c",
          "clusters":[{"name":"k","cluster":{"server":"https://127.0.0.1:6443","insecure-skip-tls-verify":true}}],
          "users":[{"name":"u","user":{"token":"json-token-0123456789"}}],
          "contexts":[{"name":"c","context":{"cluster":"k","user":"u"}}]})");
  absl::StatusOr<ClusterConnection> connection = KubeconfigConnection(file, "", EnvOf({}));
  ASSERT_TRUE(connection.ok()) << connection.status();
  EXPECT_TRUE(connection->insecure_skip_tls_verify);
  EXPECT_EQ(connection->token.Reveal(), "json-token-0123456789");
}

TEST(KubeconfigTest, RefusedAndMalformedSettings) {
  TempDir dir;
  const auto error = [&dir](const std::string& content) {
    return std::string(KubeconfigConnection(dir.Write("config", content), "", EnvOf({})).status().message());
  };
  const std::string context = "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n";
  EXPECT_THAT(
      error(context + "clusters:\n- name: k\n  cluster: {server: 'https://h', certificate-authority: c, "
                      "insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {}\n"),
      HasSubstr("insecure-skip-tls-verify"));
  EXPECT_THAT(
      error(context + "clusters:\n- name: k\n  cluster: {server: 'https://h', proxy-url: 'http://p'}\n"),
      HasSubstr("HTTPS_PROXY"));
  EXPECT_THAT(error(context + "clusters:\n- name: k\n  cluster: {server: 'https://h'}\nusers:\n- name: u\n"
                              "  user: {username: admin, password: hunter2hunter2}\n"),
              AllOf(HasSubstr("basic authentication"), Not(HasSubstr("hunter2hunter2"))));
  EXPECT_THAT(error(context + "clusters:\n- name: k\n  cluster: {server: 'https://h'}\nusers:\n- name: u\n"
                              "  user: {client-certificate: c.crt}\n"),
              HasSubstr("without its key"));
  EXPECT_THAT(error(context + "clusters:\n- name: k\n  cluster: {server: 'https://h'}\n"),
              HasSubstr("user \"u\", which is not defined"));
  EXPECT_THAT(error(context + "clusters:\n- name: k\n  cluster: {server: 'ftp://h'}\n"),
              HasSubstr("cluster \"k\".server"));
  EXPECT_THAT(error(context + "clusters:\n- name: k\n  cluster: {}\n"), HasSubstr("has no server"));
  EXPECT_THAT(error("clusters: [\n"), AllOf(HasSubstr(dir.path() + "/config"), HasSubstr("line ")));
  EXPECT_THAT(error("clusters: {a: b}\n"), HasSubstr("clusters must be a list"));
}

}  // namespace
}  // namespace fna::kube
