// Internal to the datapath: errors from failed system calls, worded for the operator.
#pragma once

#include <string_view>

#include "base/result.h"

namespace xlb::datapath {

// What the kernel wants before it lets us load programs and attach them to cgroups.
inline constexpr std::string_view kPrivilegeHint = "need CAP_BPF and CAP_NET_ADMIN: run as root";

// "<what>: <strerror(err)>" and, if there is one, " (<hint>)".
Error errno_error(std::string_view what, int err, std::string_view hint = {});

// "<what>: <inner message>", to say which step of a larger operation failed.
Error prefixed(std::string_view what, const Error& inner);

}  // namespace xlb::datapath
