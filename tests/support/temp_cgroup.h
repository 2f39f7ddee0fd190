// A cgroup v2 directory of the test's own, with a random name, removed when the test ends
// however it ends. Processes join it with join_cgroup (a forked child joins itself).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <utility>

#include "base/result.h"

namespace xlb::test {

class TempCgroup {
 public:
  static Result<TempCgroup> create(const std::filesystem::path& parent) {
    std::random_device device;
    const std::filesystem::path path = parent / ("xlb-test-" + std::to_string(device()));
    std::error_code error;
    if (!std::filesystem::create_directory(path, error)) {
      return Error{"create cgroup " + path.string() + ": " + (error ? error.message() : "it exists")};
    }
    return TempCgroup(path);
  }

  TempCgroup(TempCgroup&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  TempCgroup& operator=(TempCgroup&&) = delete;
  TempCgroup(const TempCgroup&) = delete;
  TempCgroup& operator=(const TempCgroup&) = delete;

  // The kernel refuses (EBUSY) while a live process is in the cgroup: reap children first.
  ~TempCgroup() {
    if (!path_.empty() && ::rmdir(path_.c_str()) != 0) {
      std::cerr << "warning: could not remove test cgroup " << path_ << ": " << std::strerror(errno) << "\n";
    }
  }

  const std::filesystem::path& path() const { return path_; }

 private:
  explicit TempCgroup(std::filesystem::path path) : path_(std::move(path)) {}

  std::filesystem::path path_;
};

// Moves the calling process into `cgroup`.
inline Status join_cgroup(const std::filesystem::path& cgroup) {
  const std::string procs = (cgroup / "cgroup.procs").string();
  const std::string pid = std::to_string(::getpid());
  const int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
  const bool joined = fd >= 0 && ::write(fd, pid.data(), pid.size()) == static_cast<ssize_t>(pid.size());
  const int err = errno;
  if (fd >= 0) ::close(fd);
  if (!joined) return Error{"join cgroup " + cgroup.string() + ": " + std::strerror(err)};
  return {};
}

}  // namespace xlb::test
