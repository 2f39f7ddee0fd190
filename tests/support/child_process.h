// Runs a function in a forked child and returns the text it produced. For what must happen in
// another process: joining a cgroup, being outside one. The body runs in a copy of the test
// process: it must not use gtest assertions; it reports in the returned text instead.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstring>
#include <functional>
#include <string>

#include "base/result.h"

namespace xlb::test {

// The child is killed if it has not finished within `timeout`; either way it is reaped
// before this returns, so no test leaves a process behind.
inline Result<std::string> run_in_child(const std::function<std::string()>& body,
                                        std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Error{std::string("pipe2: ") + std::strerror(errno)};
  const pid_t pid = ::fork();
  if (pid < 0) return Error{std::string("fork: ") + std::strerror(errno)};
  if (pid == 0) {
    ::close(pipe_fds[0]);
    const std::string output = body();
    size_t written = 0;
    while (written < output.size()) {
      const ssize_t n = ::write(pipe_fds[1], output.data() + written, output.size() - written);
      if (n <= 0) ::_exit(1);
      written += static_cast<size_t>(n);
    }
    ::_exit(0);  // not exit(): the child must not run the test process's atexit handlers
  }
  ::close(pipe_fds[1]);

  std::string output;
  bool timed_out = false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd readable{pipe_fds[0], POLLIN, 0};
    const int ready = left.count() > 0 ? ::poll(&readable, 1, static_cast<int>(left.count())) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      timed_out = true;
      break;
    }
    char buffer[4096];
    const ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buffer, static_cast<size_t>(n));
  }
  ::close(pipe_fds[0]);

  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) return Error{"the child did not finish within " + std::to_string(timeout.count()) + " ms"};
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Error{"the child failed (wait status " + std::to_string(status) + "); its output: " + output};
  }
  return output;
}

}  // namespace xlb::test
