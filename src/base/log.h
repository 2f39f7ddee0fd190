// One line per event on stderr. Under systemd (JOURNAL_STREAM set) each line starts with the
// syslog priority "<N>" that journald turns into the entry's level; elsewhere with a UTC time.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace xlb {

enum class LogLevel { debug = 7, info = 6, warning = 4, error = 3 };

inline std::optional<LogLevel> parse_log_level(std::string_view s) {
  if (s == "debug") return LogLevel::debug;
  if (s == "info") return LogLevel::info;
  if (s == "warning" || s == "warn") return LogLevel::warning;
  if (s == "error") return LogLevel::error;
  return std::nullopt;
}

class Logger {
 public:
  explicit Logger(LogLevel threshold = LogLevel::info, std::FILE* out = stderr)
      : threshold_(threshold), out_(out), journald_(std::getenv("JOURNAL_STREAM") != nullptr) {}

  void debug(std::string_view m) const { write(LogLevel::debug, m); }
  void info(std::string_view m) const { write(LogLevel::info, m); }
  void warning(std::string_view m) const { write(LogLevel::warning, m); }
  void error(std::string_view m) const { write(LogLevel::error, m); }

 private:
  void write(LogLevel level, std::string_view message) const {
    if (static_cast<int>(level) > static_cast<int>(threshold_)) return;
    // Multi-line messages (a list of config errors) stay one entry per line, each with the level.
    size_t start = 0;
    while (start <= message.size()) {
      const size_t end = std::min(message.find('\n', start), message.size());
      write_line(level, message.substr(start, end - start));
      start = end + 1;
    }
    std::fflush(out_);
  }

  void write_line(LogLevel level, std::string_view line) const {
    if (journald_) {
      std::fprintf(out_, "<%d>%.*s\n", static_cast<int>(level), static_cast<int>(line.size()), line.data());
      return;
    }
    char stamp[32];
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    std::fprintf(out_, "%s %s %.*s\n", stamp, name(level), static_cast<int>(line.size()), line.data());
  }

  static const char* name(LogLevel level) {
    switch (level) {
      case LogLevel::debug: return "debug";
      case LogLevel::info: return "info";
      case LogLevel::warning: return "warning";
      case LogLevel::error: return "error";
    }
    return "?";
  }

  LogLevel threshold_;
  std::FILE* out_;
  bool journald_;
};

}  // namespace xlb
