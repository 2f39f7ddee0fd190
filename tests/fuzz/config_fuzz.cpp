// The TOML loader (config::parse) on any bytes: it never crashes, and it keeps its two promises
// to the operator. An accepted config has a catalog that passes the model's rules (nothing
// half-checked is applied); a refused one explains itself, starting with the file's name.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "config/config.h"

namespace {

constexpr std::string_view kFile = "fuzz.toml";

[[noreturn]] void fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "config_fuzz: %s\n%.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = xlb::config::parse(text, kFile);
  if (config) {
    if (auto problems = xlb::model::validate(config->catalog); !problems.empty())
      fail("an accepted config has a catalog the model refuses", problems.front().message);
    return 0;
  }
  // Only the first line is checked: toml++'s syntax errors may quote a raw newline of the input
  // ("expected 'true', saw 't<LF>'"), which splits that problem over two lines.
  if (!config.error().message.starts_with(kFile))
    fail("a refused config does not say which file is wrong", config.error().message);
  return 0;
}
