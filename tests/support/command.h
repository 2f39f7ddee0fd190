// Runs a program to its end and says how it went: for set-up steps such as `ip link add`.
// The program runs in the caller's network namespace (a forked child inherits it), is given
// at most `timeout`, and is killed by its PID if it takes longer.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "base/result.h"

namespace xlb::test {

inline Status run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  std::string line;
  for (const std::string& arg : argv) line += (line.empty() ? "" : " ") + arg;

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Error{line + ": pipe2: " + std::strerror(errno)};
  const pid_t pid = ::fork();
  if (pid < 0) return Error{line + ": fork: " + std::strerror(errno)};
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[1]);

  std::string output;
  bool timed_out = false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd readable{fds[0], POLLIN, 0};
    const int ready = left.count() > 0 ? ::poll(&readable, 1, static_cast<int>(left.count())) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      timed_out = true;
      break;
    }
    char buffer[4096];
    const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buffer, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) return Error{line + ": did not finish within " + std::to_string(timeout.count()) + " ms"};
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Error{line + ": failed (wait status " + std::to_string(status) + "): " + output};
  }
  return {};
}

}  // namespace xlb::test
