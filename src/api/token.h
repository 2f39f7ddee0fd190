// The bearer token that writes need. xlbd keeps it in STATE_DIR/api.token, readable by its owner
// only, so whoever can read the state directory (root, or the xlb user) can drain and reload.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "base/log.h"
#include "base/result.h"

namespace xlb::api {

// The token in `path`, re-used when it is well formed and private (mode 0600 or stricter).
// Otherwise a new random one replaces it, written 0600 through a temporary file and a rename, so
// a reader never sees half a token.
Result<std::string> load_or_create_token(const std::filesystem::path& path, const Logger& log);

// Whether `header` (an Authorization header value, or empty) is "Bearer <token>". Takes the same
// time whatever prefix of the token matches.
bool bearer_matches(std::string_view header, std::string_view token);

}  // namespace xlb::api
