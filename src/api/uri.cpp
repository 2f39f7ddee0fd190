#include "api/uri.h"

#include <algorithm>

namespace xlb::api {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_dot_segment(std::string_view s) { return s == "." || s == ".."; }

}  // namespace

std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int hi = hex_value(text[i + 1]);
      const int lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return std::nullopt;
    out += c;
  }
  return out;
}

std::optional<std::vector<std::string>> split_path(std::string_view raw_path) {
  if (raw_path.empty() || raw_path.front() != '/') return std::nullopt;
  std::vector<std::string> segments;
  if (raw_path == "/") return segments;
  size_t start = 1;
  for (;;) {
    const size_t end = std::min(raw_path.find('/', start), raw_path.size());
    const std::string_view raw = raw_path.substr(start, end - start);
    auto decoded = percent_decode(raw);
    if (raw.empty() || is_dot_segment(raw) || !decoded || is_dot_segment(*decoded)) return std::nullopt;
    segments.push_back(std::move(*decoded));
    if (end == raw_path.size()) return segments;
    start = end + 1;
  }
}

std::optional<std::string> query_value(std::string_view query, std::string_view name) {
  size_t start = 0;
  while (start <= query.size()) {
    const size_t end = std::min(query.find('&', start), query.size());
    const std::string_view pair = query.substr(start, end - start);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      std::string value(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
      for (char& c : value)
        if (c == '+') c = ' ';
      return percent_decode(value);
    }
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace xlb::api
