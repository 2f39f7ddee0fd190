// kubeconfig files (k8s::load_kubeconfig) of any bytes, written to a file of our own (in memory)
// because that is the only entry point: no crash, no exception, and what it accepts keeps
// kubeconfig.h's promises (an http(s) server without a trailing "/", a certificate only with its
// key).
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "k8s/kubeconfig.h"

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "kubeconfig_fuzz: %s: %s\n", what, detail.c_str());
  std::abort();
}

// The file lives in memory (memfd): on a busy disk, writing and reading a real file for each
// input made this target a hundred times slower. Its directory, /proc/self/fd, is where relative
// paths in it point; nothing reads them here.
int kubeconfig_fd() {
  static const int fd = ::memfd_create("xlb-fuzz-kubeconfig", 0);
  if (fd < 0) fail("memfd_create", std::strerror(errno));
  return fd;
}

void check_inline(const xlb::k8s::Secret& secret) {
  if (secret.file.empty() && !secret.read()) fail("an inline secret cannot be read", secret.data);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = kubeconfig_fd();
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size))
    fail("writing the kubeconfig", std::strerror(errno));
  static const fs::path path = "/proc/self/fd/" + std::to_string(fd);
  auto c = xlb::k8s::load_kubeconfig(path);
  if (!c) {
    if (!c.error().message.starts_with("kubeconfig " + path.string() + ": "))
      fail("an error does not name the file", c.error().message);
    return 0;
  }
  if (!c->server.starts_with("https://") && !c->server.starts_with("http://")) fail("server is not http(s)", c->server);
  if (c->server.ends_with("/")) fail("server ends with /", c->server);
  if (c->client_certificate.empty() != c->client_key.empty())
    fail("a certificate without a key, or a key without a certificate", c->origin);
  check_inline(c->certificate_authority);
  check_inline(c->client_certificate);
  check_inline(c->client_key);
  check_inline(c->token);
  return 0;
}
