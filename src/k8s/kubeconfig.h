// Where the API server is and how to prove who we are: kubeconfig files as kubeadm writes them
// (admin.conf, kubelet.conf), or a pod's service-account files as a fallback.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "base/result.h"

namespace xlb::k8s {

// Each secret is either inline PEM/text or a file read when a request starts (so a rotated
// client certificate or token is picked up without a restart).
struct Secret {
  std::string data;
  std::filesystem::path file;
  bool empty() const { return data.empty() && file.empty(); }
  // The current value; a file that cannot be read is an error naming it.
  Result<std::string> read() const;
};

struct Credentials {
  std::string server;  // "https://192.0.2.10:6443"
  Secret certificate_authority;
  Secret client_certificate;
  Secret client_key;
  Secret token;
  bool insecure_skip_tls_verify = false;
  std::string origin;  // where these came from, for messages: "/etc/kubernetes/kubelet.conf context kubelet@k"
};

// Parses a kubeconfig file and takes its current context (or `context` when given). Relative
// file paths in it are relative to the file's directory, as kubectl reads them.
Result<Credentials> load_kubeconfig(const std::filesystem::path& path, const std::string& context = {});

// The service-account files of a pod (directory, normally
// /var/run/secrets/kubernetes.io/serviceaccount) and the server from
// KUBERNETES_SERVICE_HOST/PORT.
Result<Credentials> load_in_cluster(const std::filesystem::path& directory);

// The first that exists of: `explicit_path`, $KUBECONFIG, /etc/kubernetes/kubelet.conf,
// /etc/kubernetes/admin.conf, then the in-cluster files. The error lists what was tried.
Result<Credentials> discover_credentials(const std::filesystem::path& explicit_path);

}  // namespace xlb::k8s
