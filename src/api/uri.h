// The parts of a request URI the router needs, decoded strictly: anything ambiguous is refused
// rather than guessed at.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xlb::api {

// "%3Cx%3E" -> "<x>". nullopt on a malformed escape or a NUL byte.
std::optional<std::string> percent_decode(std::string_view text);

// The path's segments, each percent-decoded on its own, so "/api/v1/services/a%2Fb" is
// {"api", "v1", "services", "a/b"} and "/" is {}. nullopt when the path does not start with "/",
// has an empty segment ("//", a trailing "/"), a "." or ".." segment (before or after decoding), or
// a malformed escape.
std::optional<std::vector<std::string>> split_path(std::string_view raw_path);

// The decoded value of `name` in a query string "a=1&b=2" ("+" is a space); nullopt when absent
// or malformed.
std::optional<std::string> query_value(std::string_view query, std::string_view name);

}  // namespace xlb::api
