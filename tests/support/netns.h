// A network namespace of the test's own: only loopback, and no route but to 127.0.0.0/8.
// A connect that should have been translated to a local backend but was not fails with
// ENETUNREACH instead of sending packets off the machine.
#pragma once

#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/result.h"

namespace xlb::test {

// Moves the calling thread (and the processes it forks from now on) into a new network
// namespace, and brings its loopback up. Sockets opened before stay where they were.
inline Status enter_private_netns() {
  if (::unshare(CLONE_NEWNET) != 0) return Error{std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno)};

  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{std::string("socket: ") + std::strerror(errno)};
  ifreq request{};
  std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
  bool up = ::ioctl(fd, SIOCGIFFLAGS, &request) == 0;
  request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
  up = up && ::ioctl(fd, SIOCSIFFLAGS, &request) == 0;
  const int err = errno;
  ::close(fd);
  if (!up) return Error{std::string("bring up lo in the new network namespace: ") + std::strerror(err)};
  return {};
}

}  // namespace xlb::test
