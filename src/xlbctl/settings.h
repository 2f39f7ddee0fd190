// Where xlbctl finds xlbd: the API address (from --api or the config's [api] listen) and the
// token that writes need (from the state directory).
#pragma once

#include <filesystem>
#include <string>

#include "base/result.h"

namespace xlb::ctl {

constexpr const char* kDefaultConfig = "/etc/xlb/xlb.toml";
constexpr const char* kDefaultStateDir = "/var/lib/xlb";
constexpr const char* kDefaultListen = "127.0.0.1:9180";

// "127.0.0.1:9180" or "http://127.0.0.1:9180/" -> "http://127.0.0.1:9180". A wildcard listen
// address (0.0.0.0, [::]) becomes the loopback address of its family.
std::string api_url(std::string listen_or_url);

// The URL of the API that the config at `config` has xlbd serve; the default one when the file
// cannot be read, has no [api] listen, or says "off".
std::string api_url_from_config(const std::filesystem::path& config);

// The token in STATE_DIR/api.token; an Error names the file and what reading it needs.
Result<std::string> read_token(const std::filesystem::path& state_dir);

}  // namespace xlb::ctl
