// bird's control socket (what birdc speaks): one command, its whole answer. Internal to src/bgp.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "base/result.h"

namespace xlb::bgp {

// The answer's lines as bird sent them ("0003 Reconfigured", "1002-device1 ...", " xlb_... ").
// An Error when the socket is not there, does not answer in `timeout`, or bird reports a failure
// (a reply code 8xxx or 9xxx), with bird's words.
Result<std::string> bird_command(const std::filesystem::path& socket, const std::string& command,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace xlb::bgp
