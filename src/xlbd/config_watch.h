// Notices when the config file's content changes, so that an edit applies like SIGHUP. Watches
// the file's directory, not the file: editors and configuration tools replace the file by
// renaming a new one over it, which a watch on the old inode would never see.
#pragma once

#include <filesystem>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace xlb::xlbd {

class ConfigWatch {
 public:
  static Result<ConfigWatch> start(const std::filesystem::path& file);

  int fd() const { return fd_.get(); }  // readable when something in the directory changed
  // Drains the notifications; true when the file's content differs from when last seen (a
  // touch, or a write of the same bytes, is no change).
  bool changed();

 private:
  ConfigWatch(UniqueFd fd, std::filesystem::path file, std::string content)
      : fd_(std::move(fd)), file_(std::move(file)), content_(std::move(content)) {}

  UniqueFd fd_;
  std::filesystem::path file_;
  std::string content_;
};

}  // namespace xlb::xlbd
