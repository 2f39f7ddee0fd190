// A watch stream's framing and events, free of HTTP, so that they can be tested and fuzzed
// alone: the API server sends one JSON event per line ({"type": "ADDED", "object": {...}}), in
// chunks that may cut a line anywhere.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace xlb::k8s {

// Calls `on_line` with each complete line at the front of `buffer` (without its "\n"), in order,
// and removes them, leaving a partial last line for the next chunk. Returns false as soon as
// `on_line` does (the lines after it stay in `buffer`).
bool take_lines(std::string& buffer, const std::function<bool(std::string_view line)>& on_line);

// One line of a watch stream, read.
struct WatchEvent {
  enum class Kind {
    object,     // ADDED, MODIFIED or DELETED (`type`) of `object`
    bookmark,   // the stream is at `resource_version`, no change
    gone,       // an ERROR with code 410: the version is too old, list again
    error,      // another ERROR: `code` (0 if none) and the Status `object`
    malformed,  // not JSON, or an unknown type: `problem` says which
  };
  Kind kind = Kind::malformed;
  std::string type;
  nlohmann::json object;
  std::string resource_version;  // the object's metadata.resourceVersion; "" when it has none
  long code = 0;
  std::string problem;
};

WatchEvent parse_watch_line(std::string_view line);

// metadata.resourceVersion of an object or a list; "" when it has none.
std::string resource_version_of(const nlohmann::json& object);

}  // namespace xlb::k8s
