// A bench's own bpffs pin directory, removed with everything under it however the bench ends
// (an early return on an error included): a failed run leaves no maps pinned behind.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>

#include "datapath/datapath.h"

namespace xlb::bench {

class BenchPins {
 public:
  explicit BenchPins(const std::string& name) : root_(std::filesystem::path("/sys/fs/bpf") / ("xlb-bench-" + name)) {}
  ~BenchPins() {
    (void)datapath::Datapath::cleanup(pin_dir(), {});
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
  BenchPins(const BenchPins&) = delete;
  BenchPins& operator=(const BenchPins&) = delete;

  std::filesystem::path pin_dir() const { return root_ / "v1"; }

 private:
  std::filesystem::path root_;
};

}  // namespace xlb::bench
