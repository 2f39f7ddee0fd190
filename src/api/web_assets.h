// The web UI's files (web/), compiled into the binary by embed_web.cmake.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace xlb::api {

struct WebAsset {
  std::string_view name;  // file name in web/, e.g. "index.html"
  const unsigned char* data;
  size_t size;

  std::string_view body() const { return {reinterpret_cast<const char*>(data), size}; }
};

// Every embedded file.
std::span<const WebAsset> web_assets();

// The file with this name, or nullptr. Only exact names match: there is no file system behind it.
const WebAsset* find_web_asset(std::string_view name);

// The Content-Type for a file name, from its extension.
std::string_view content_type_of(std::string_view name);

}  // namespace xlb::api
