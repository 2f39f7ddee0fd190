// kubeconfig files in the shapes kubeadm writes, and the errors a person can act on.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "k8s/kubeconfig.h"
#include "support/temp_dir.h"

namespace xlb::k8s {
namespace {

class KubeconfigTest : public ::testing::Test {
 protected:
  std::filesystem::path write(const std::string& name, const std::string& text) {
    auto p = dir / name;
    std::ofstream(p) << text;
    return p;
  }
  test::TempDir dir{"xlb-kubeconfig"};
};

// admin.conf: everything inline, base64.
TEST_F(KubeconfigTest, AdminConfWithInlineData) {
  auto p = write("admin.conf", R"(apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0EtUEVN
    server: https://192.0.2.10:6443/
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
)");
  auto c = load_kubeconfig(p);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->server, "https://192.0.2.10:6443");
  EXPECT_EQ(c->certificate_authority.read().value(), "CA-PEM");
  EXPECT_EQ(c->client_certificate.read().value(), "CERT");
  EXPECT_EQ(c->client_key.read().value(), "KEY");
  EXPECT_TRUE(c->token.empty());
  EXPECT_NE(c->origin.find("kubernetes-admin@kubernetes"), std::string::npos);
}

// A token file is read at each use, so a rotated token is picked up.
TEST_F(KubeconfigTest, TokenFileRelativeToTheKubeconfigIsReadEachTime) {
  write("token", "first\n");
  auto p = write("xlb.conf", R"(apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://[2001:db8::10]:6443", certificate-authority: ca.crt}}]
users: [{name: u, user: {tokenFile: token}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}, {name: other, context: {cluster: c, user: u}}]
current-context: ctx
)");
  auto c = load_kubeconfig(p);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->certificate_authority.file, dir / "ca.crt");
  EXPECT_EQ(c->token.read().value(), "first\n");
  write("token", "second\n");
  EXPECT_EQ(c->token.read().value(), "second\n");
  EXPECT_TRUE(load_kubeconfig(p, "other").ok());
}

TEST_F(KubeconfigTest, ErrorsSayWhatIsWrong) {
  auto missing_context = write("a.conf", "apiVersion: v1\nkind: Config\ncurrent-context: nope\ncontexts: []\n");
  auto e = load_kubeconfig(missing_context);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message, "kubeconfig " + missing_context.string() + ": has no context \"nope\"");

  auto exec = write("b.conf", R"(clusters: [{name: c, cluster: {server: "https://192.0.2.1:6443"}}]
users: [{name: u, user: {exec: {command: aws}}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}]
current-context: ctx
)");
  e = load_kubeconfig(exec);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("exec or auth-provider plugin"), std::string::npos);

  auto broken = write("c.conf", "clusters: [unclosed\n");
  e = load_kubeconfig(broken);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find(broken.string()), std::string::npos);

  e = load_kubeconfig(dir / "absent.conf");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("cannot read"), std::string::npos);

  auto half = write("d.conf", R"(clusters: [{name: c, cluster: {server: "https://192.0.2.1:6443"}}]
users: [{name: u, user: {client-certificate: c.crt}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}]
current-context: ctx
)");
  e = load_kubeconfig(half);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("without a key"), std::string::npos);
}

// Bytes above 0x7f in a *-data field once crashed yaml-cpp's base64 decoder (tests/fuzz found it).
TEST_F(KubeconfigTest, NonAsciiBase64IsAnError) {
  auto p = write("e.conf", "clusters: [{name: c, cluster: {server: \"https://192.0.2.1:6443\", "
                           "certificate-authority-data: \"Q0Et\xd0\xd0\xd0\xd0\"}}]\n"
                           "contexts: [{name: ctx, context: {cluster: c}}]\ncurrent-context: ctx\n");
  auto e = load_kubeconfig(p);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message, "kubeconfig " + p.string() + ": certificate-authority-data is not valid base64");
}

// An empty *-data field is no secret, read without touching an empty buffer (tests/fuzz).
TEST_F(KubeconfigTest, EmptyBase64IsNoSecret) {
  auto p = write("f.conf", "clusters: [{name: c, cluster: {server: \"https://192.0.2.1:6443\", "
                           "certificate-authority-data: \"\"}}]\n"
                           "contexts: [{name: ctx, context: {cluster: c}}]\ncurrent-context: ctx\n");
  auto c = load_kubeconfig(p);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->certificate_authority.empty());
}

// A server of slashes only is no address, not "https:" (tests/fuzz).
TEST_F(KubeconfigTest, ServerWithoutAHostIsAnError) {
  auto p = write("g.conf", "clusters: [{name: c, cluster: {server: \"https:///\"}}]\n"
                           "contexts: [{name: ctx, context: {cluster: c}}]\ncurrent-context: ctx\n");
  auto e = load_kubeconfig(p);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message, "kubeconfig " + p.string() + ": cluster \"c\" has no https:// server address");
}

TEST_F(KubeconfigTest, InClusterFallback) {
  write("token", "sa-token");
  ::setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto c = load_in_cluster(dir.path());
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  ::unsetenv("KUBERNETES_SERVICE_PORT");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->token.read().value(), "sa-token");
  EXPECT_FALSE(load_in_cluster(dir.path()).ok());  // not in a pod
}

}  // namespace
}  // namespace xlb::k8s
