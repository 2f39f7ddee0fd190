// A directory of the test's own, with a random suffix so that runs never collide, removed with
// everything in it when the object goes: after a failed assertion too.
#pragma once

#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <system_error>

namespace xlb::test {

class TempDir {
 public:
  explicit TempDir(std::string_view prefix)
      : path_(std::filesystem::temp_directory_path() /
              (std::string(prefix) + "-" + std::to_string(std::random_device{}()))) {
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  operator const std::filesystem::path&() const { return path_; }
  std::filesystem::path operator/(const std::filesystem::path& child) const { return path_ / child; }

 private:
  std::filesystem::path path_;
};

}  // namespace xlb::test
