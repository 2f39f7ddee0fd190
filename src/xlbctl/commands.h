// xlbctl's commands. Each takes the words after its name and returns the exit code.
#pragma once

#include <string>
#include <vector>

#include "xlbctl/context.h"

namespace xlb::ctl {

using Args = std::vector<std::string>;

int validate(const Context& ctx, const Args& args);
int preflight(const Context& ctx, const Args& args);  // no xlbd needed
int status(const Context& ctx, const Args& args);
int service(const Context& ctx, const Args& args);  // list | show NAME|VIP:PORT
int backend(const Context& ctx, const Args& args, const CommandOptions& options);  // drain | undrain
int maglev(const Context& ctx, const Args& args);   // show SERVICE
int history(const Context& ctx, const Args& args, const CommandOptions& options);
int events(const Context& ctx, const Args& args, const CommandOptions& options);
int drops(const Context& ctx, const Args& args, const CommandOptions& options);
int trace(const Context& ctx, const Args& args);  // SRC_IP:PORT VIP:PORT[/PROTO]
int bgp(const Context& ctx, const Args& args);    // VIPs announced, BGP sessions
int diff(const Context& ctx, const Args& args, const CommandOptions& options);  // kube-proxy
int takeover(const Context& ctx, const Args& args, const CommandOptions& options);
int rollback(const Context& ctx, const Args& args, const CommandOptions& options);
int advise(const Context& ctx, const Args& args, const CommandOptions& options);  // the decision rule

// Prints "xlbctl COMMAND: WHAT" and returns the usage exit code.
int usage_error(const Context& ctx, const std::string& command, const std::string& what);

}  // namespace xlb::ctl
