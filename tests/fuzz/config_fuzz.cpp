// The TOML loader (config::parse) on any bytes: it never crashes, and it keeps its two promises
// to the operator. An accepted config has a catalog that passes the model's rules (nothing
// half-checked is applied); a refused one explains itself one problem per line, each line
// naming the file.
#include <algorithm>
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
  // One line per problem, each naming the file: the input's own control characters are escaped.
  const std::string& message = config.error().message;
  for (size_t start = 0; start <= message.size();) {
    const size_t end = std::min(message.find('\n', start), message.size());
    if (!std::string_view(message).substr(start, end - start).starts_with(kFile))
      fail("an error line does not name the file", message);
    start = end + 1;
  }
  return 0;
}
