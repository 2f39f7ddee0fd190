// xlbd's use of the datapath: load it for a config, attach it where the config says, and the
// --cleanup that undoes it all.
#pragma once

#include <filesystem>

#include "api/provider.h"
#include "base/log.h"
#include "base/result.h"
#include "config/config.h"
#include "datapath/datapath.h"

namespace xlb::xlbd {

// Loads the programs and maps (adopting those pinned under pin_dir by an earlier xlbd) and
// writes this node's settings. Nothing is attached yet: the caller fills the maps first.
Result<datapath::Datapath> load_datapath(const config::NodeConfig& node, const std::filesystem::path& pin_dir,
                                         const Logger& log);

// XDP and tc on the configured links, socket-LB on the configured cgroup; returns what it attached.
Result<std::vector<api::Attachment>> attach_datapath(datapath::Datapath& datapath, const config::Config& config,
                                                     const Logger& log);

// XDP (unless [node] xdp_mode is off) and tc on one link; also to put them back on a link that
// was made again.
Result<std::vector<api::Attachment>> attach_link(datapath::Datapath& datapath, const config::NodeConfig& node,
                                                 const std::string& interface, const Logger& log);

// Detaches xlb from the configured links and removes its pins.
Status cleanup_datapath(const config::NodeConfig& node, const std::filesystem::path& pin_dir, const Logger& log);

}  // namespace xlb::xlbd
