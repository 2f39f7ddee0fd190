// kubeconfig files (k8s::load_kubeconfig) of any bytes, written to a file of our own because
// that is the only entry point: no crash, no exception, and what it accepts keeps kubeconfig.h's
// promises (an http(s) server without a trailing "/", a certificate only with its key).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "k8s/kubeconfig.h"

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "kubeconfig_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

// One directory per process, removed at exit; the file's directory is where relative paths in it
// point, and nothing reads them here.
struct ScratchDir {
  fs::path dir = fs::temp_directory_path() / ("xlb-fuzz-kubeconfig-" + std::to_string(::getpid()));
  ScratchDir() { fs::create_directories(dir); }
  ~ScratchDir() { fs::remove_all(dir); }
};

const fs::path& kubeconfig_path() {
  static const ScratchDir scratch;
  static const fs::path path = scratch.dir / "kubeconfig";
  return path;
}

void check_inline(const xlb::k8s::Secret& secret) {
  if (secret.file.empty() && !secret.read()) fail("an inline secret cannot be read", secret.data);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::ofstream out(kubeconfig_path(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  auto c = xlb::k8s::load_kubeconfig(kubeconfig_path());
  if (!c) {
    if (!c.error().message.starts_with("kubeconfig " + kubeconfig_path().string() + ": "))
      fail("an error does not name the file", c.error().message);
    return 0;
  }
  if (!c->server.starts_with("https://") && !c->server.starts_with("http://")) fail("server is not http(s)", c->server);
  if (c->server.ends_with("/")) fail("server ends with /", c->server);
  if (c->client_certificate.empty() != c->client_key.empty()) fail("certificate without key, or key without certificate", c->origin);
  check_inline(c->certificate_authority);
  check_inline(c->client_certificate);
  check_inline(c->client_key);
  check_inline(c->token);
  return 0;
}
