#include "datapath/cgroup.h"

#include <cerrno>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "datapath/errno_error.h"

namespace xlb::datapath {
namespace {

constexpr const char* kMountinfo = "/proc/self/mountinfo";

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  while (!line.empty()) {
    const size_t start = line.find_first_not_of(' ');
    if (start == std::string_view::npos) break;
    line.remove_prefix(start);
    const size_t end = line.find(' ');
    fields.push_back(line.substr(0, end));
    line.remove_prefix(end == std::string_view::npos ? line.size() : end);
  }
  return fields;
}

bool is_octal_triple(std::string_view digits) {
  return digits.size() == 3 && digits.find_first_not_of("01234567") == std::string_view::npos;
}

// mountinfo writes space, tab, newline and backslash in paths as \ooo (octal).
std::string unescape_octal(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    const std::string_view digits = text.substr(i + 1, 3);
    if (text[i] == '\\' && is_octal_triple(digits)) {
      out += static_cast<char>((digits[0] - '0') * 64 + (digits[1] - '0') * 8 + (digits[2] - '0'));
      i += 3;
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace

Result<std::filesystem::path> parse_cgroup2_mount(std::string_view mountinfo) {
  // A line: id parent major:minor root mount-point options [optional...] - fstype source ...
  constexpr size_t kMountPoint = 4;
  while (!mountinfo.empty()) {
    const size_t end = mountinfo.find('\n');
    const std::vector<std::string_view> fields = split_fields(mountinfo.substr(0, end));
    mountinfo.remove_prefix(end == std::string_view::npos ? mountinfo.size() : end + 1);

    for (size_t i = kMountPoint + 1; i + 1 < fields.size(); ++i) {
      if (fields[i] == "-") {
        if (fields[i + 1] == "cgroup2") return std::filesystem::path(unescape_octal(fields[kMountPoint]));
        break;
      }
    }
  }
  return Error{"no cgroup v2 file system is mounted (no cgroup2 line in " + std::string(kMountinfo) +
               "); socket-LB needs one: mount -t cgroup2 none /sys/fs/cgroup, or set cgroup = \"off\""};
}

Result<std::filesystem::path> find_cgroup2_mount() {
  std::ifstream file(kMountinfo);
  if (!file) return errno_error(std::string("read ") + kMountinfo, errno, "is /proc mounted?");
  std::stringstream text;
  text << file.rdbuf();
  return parse_cgroup2_mount(text.str());
}

}  // namespace xlb::datapath
