#include "xlbd/config_watch.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace xlb::xlbd {
namespace {

std::string read_content(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

Result<ConfigWatch> ConfigWatch::start(const std::filesystem::path& file) {
  const auto absolute = std::filesystem::absolute(file);
  UniqueFd fd(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!fd) return Error{std::string("inotify_init1: ") + std::strerror(errno)};
  const auto directory = absolute.parent_path();
  if (::inotify_add_watch(fd.get(), directory.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE) < 0)
    return Error{"cannot watch " + directory.string() + " for config changes: " + std::strerror(errno)};
  return ConfigWatch(std::move(fd), absolute, read_content(absolute));
}

bool ConfigWatch::changed() {
  alignas(inotify_event) char buffer[4096];
  bool about_file = false;
  for (ssize_t n; (n = ::read(fd_.get(), buffer, sizeof buffer)) > 0;) {
    for (ssize_t offset = 0; offset < n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + offset);
      if (event->len > 0 && file_.filename() == event->name) about_file = true;
      offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
    }
  }
  if (!about_file) return false;
  std::string content = read_content(file_);
  if (content == content_) return false;
  content_ = std::move(content);
  return true;
}

}  // namespace xlb::xlbd
