// A file descriptor that closes itself: every kernel handle xlb holds is owned by
// exactly one object, so no error path can leak a map, a program or a cgroup.
#pragma once

#include <unistd.h>

#include <utility>

namespace xlb {

class UniqueFd {
 public:
  UniqueFd() = default;
  // Takes ownership of fd; a negative value (a failed open, or -errno from libbpf) holds nothing.
  explicit UniqueFd(int fd) : fd_(fd < 0 ? -1 : fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

  // Gives up ownership without closing.
  int release() { return std::exchange(fd_, -1); }

  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd < 0 ? -1 : fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace xlb
