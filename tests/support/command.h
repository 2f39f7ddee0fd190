// Runs a program to its end and says how it went: for set-up steps such as `ip link add`.
// The program runs in the caller's network namespace (a forked child inherits it), is given
// at most `timeout`, and is killed by its PID if it takes longer.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/result.h"
#include "support/process.h"

namespace xlb::test {

inline Status run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  std::string line;
  for (const std::string& arg : argv) line += (line.empty() ? "" : " ") + arg;
  ChildProcess child(argv);
  if (!child.read_to_end(timeout))  // the destructor kills it by its PID
    return Error{line + ": did not finish within " + std::to_string(timeout.count()) + " ms"};
  const auto code = child.wait(timeout);
  if (code != 0) return Error{line + ": failed (exit " + std::to_string(code.value_or(-1)) + "): " + child.seen()};
  return {};
}

}  // namespace xlb::test
