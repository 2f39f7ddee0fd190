#include "k8s/kubeconfig.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace xlb::k8s {
namespace {

namespace fs = std::filesystem;

Result<std::string> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot read " + path.string()};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// kubeconfig's *-data fields are base64; yaml-cpp's Binary decodes them.
Result<std::string> base64_decode(const std::string& text, const std::string& field) {
  // yaml-cpp 0.7 indexes its decoding table with a plain char: a byte above 0x7f reads far
  // outside it and crashes (found by tests/fuzz). Such text is no base64 anyway.
  if (std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) > 0x7f; }))
    return Error{field + " is not valid base64"};
  YAML::Binary binary = YAML::Node(text).as<YAML::Binary>();
  // Binary::data() of an empty one takes element 0 of an empty vector (undefined; tests/fuzz).
  if (binary.size() == 0) {
    if (!text.empty()) return Error{field + " is not valid base64"};
    return std::string();
  }
  return std::string(reinterpret_cast<const char*>(binary.data()), binary.size());
}

const YAML::Node find_named(const YAML::Node& list, const std::string& name, const char* inner) {
  if (list && list.IsSequence())
    for (const auto& item : list)
      if (item["name"] && item["name"].as<std::string>() == name) return item[inner];
  return YAML::Node(YAML::NodeType::Undefined);
}

// Sets `secret` from FIELD-data (inline) or FIELD (a path), whichever the node has.
Status read_secret(const YAML::Node& node, const std::string& field, const fs::path& base, Secret& secret) {
  if (node[field + "-data"]) {
    auto decoded = base64_decode(node[field + "-data"].as<std::string>(), field + "-data");
    if (!decoded) return decoded.error();
    secret.data = *decoded;
  } else if (node[field]) {
    fs::path p = node[field].as<std::string>();
    secret.file = p.is_relative() ? base / p : p;
  }
  return {};
}

Result<Credentials> parse_kubeconfig(const YAML::Node& root, const fs::path& path, const std::string& wanted) {
  const std::string context = wanted.empty() && root["current-context"] ? root["current-context"].as<std::string>() : wanted;
  if (context.empty()) return Error{"has no current-context"};
  const YAML::Node ctx = find_named(root["contexts"], context, "context");
  if (!ctx) return Error{"has no context \"" + context + "\""};
  const std::string cluster_name = ctx["cluster"] ? ctx["cluster"].as<std::string>() : "";
  const std::string user_name = ctx["user"] ? ctx["user"].as<std::string>() : "";
  const YAML::Node cluster = find_named(root["clusters"], cluster_name, "cluster");
  if (!cluster) return Error{"context \"" + context + "\" names cluster \"" + cluster_name + "\", which it does not define"};
  const YAML::Node user = find_named(root["users"], user_name, "user");

  Credentials c;
  c.origin = path.string() + " context " + context;
  c.server = cluster["server"] ? cluster["server"].as<std::string>() : "";
  // Trailing slashes go first, so that "https://" (or "https:///") is refused rather than cut
  // down to "https:" (tests/fuzz).
  while (!c.server.empty() && c.server.back() == '/') c.server.pop_back();
  if (c.server.rfind("https://", 0) != 0 && c.server.rfind("http://", 0) != 0)
    return Error{"cluster \"" + cluster_name + "\" has no https:// server address"};
  c.insecure_skip_tls_verify = cluster["insecure-skip-tls-verify"] && cluster["insecure-skip-tls-verify"].as<bool>();
  const fs::path base = path.parent_path();
  if (auto s = read_secret(cluster, "certificate-authority", base, c.certificate_authority); !s) return s.error();
  if (user) {
    if (auto s = read_secret(user, "client-certificate", base, c.client_certificate); !s) return s.error();
    if (auto s = read_secret(user, "client-key", base, c.client_key); !s) return s.error();
    if (user["token"]) c.token.data = user["token"].as<std::string>();
    if (user["tokenFile"]) {
      fs::path p = user["tokenFile"].as<std::string>();
      c.token.file = p.is_relative() ? base / p : p;
    }
    if (user["exec"] || user["auth-provider"])
      return Error{"user \"" + user_name + "\" authenticates with an exec or auth-provider plugin, which xlb does not run; "
                   "use a kubeconfig with a client certificate or a token (kubeadm's kubelet.conf or admin.conf)"};
  }
  if (c.client_certificate.empty() != c.client_key.empty())
    return Error{"user \"" + user_name + "\" has a client certificate without a key, or a key without a certificate"};
  return c;
}

}  // namespace

Result<std::string> Secret::read() const {
  if (!data.empty() || file.empty()) return data;
  auto text = read_file(file);
  if (!text) return text.error();
  return *text;
}

Result<Credentials> load_kubeconfig(const fs::path& path, const std::string& context) {
  auto text = read_file(path);
  if (!text) return text.error();
  try {
    auto c = parse_kubeconfig(YAML::Load(*text), path, context);
    if (!c) return Error{"kubeconfig " + path.string() + ": " + c.error().message};
    return c;
  } catch (const YAML::Exception& e) {
    return Error{"kubeconfig " + path.string() + ": " + e.what()};
  }
}

Result<Credentials> load_in_cluster(const fs::path& directory) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !port) return Error{"KUBERNETES_SERVICE_HOST/PORT are not set (not in a pod)"};
  if (!fs::exists(directory / "token")) return Error{(directory / "token").string() + " does not exist"};
  Credentials c;
  const std::string h = host;
  c.server = "https://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port;
  c.token.file = directory / "token";
  c.certificate_authority.file = directory / "ca.crt";
  c.origin = "service account " + directory.string();
  return c;
}

Result<Credentials> discover_credentials(const fs::path& explicit_path) {
  if (!explicit_path.empty()) return load_kubeconfig(explicit_path);
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("KUBECONFIG"); env && *env) candidates.emplace_back(env);
  candidates.emplace_back("/etc/kubernetes/kubelet.conf");
  candidates.emplace_back("/etc/kubernetes/admin.conf");
  std::string tried;
  for (const fs::path& p : candidates) {
    if (fs::exists(p)) return load_kubeconfig(p);
    tried += p.string() + ", ";
  }
  auto in_cluster = load_in_cluster("/var/run/secrets/kubernetes.io/serviceaccount");
  if (in_cluster) return in_cluster;
  return Error{"no Kubernetes credentials: tried " + tried + "and the in-cluster service account (" +
               in_cluster.error().message + "); set [kubernetes] kubeconfig"};
}

}  // namespace xlb::k8s
