// Where cgroup v2 is mounted: socket-LB attaches to a directory of that hierarchy.
#pragma once

#include <filesystem>
#include <string_view>

#include "base/result.h"

namespace xlb::datapath {

// The first cgroup2 mount point in /proc/self/mountinfo. It is /sys/fs/cgroup on most hosts,
// /sys/fs/cgroup/unified on hybrid ones, and anywhere in a container: never assume.
Result<std::filesystem::path> find_cgroup2_mount();

// The same, from the text of a mountinfo file (see proc(5)).
Result<std::filesystem::path> parse_cgroup2_mount(std::string_view mountinfo);

}  // namespace xlb::datapath
