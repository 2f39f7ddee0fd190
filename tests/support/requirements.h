// For tests that need root or a kernel feature. Outside CI such a test skips with the reason;
// under CI=true it fails with it, so a CI machine that lost a capability cannot pass by
// skipping everything.
//
//   XLB_REQUIRE(xlb::test::missing_capabilities({xlb::test::kCapBpf, ...}));
//
// XLB_REQUIRE takes a std::optional<std::string>: empty when everything is there, otherwise
// what is missing, in words. Use it in a test body or in SetUp.
#pragma once

#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace xlb::test {

inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string_view(ci) == "true";
}

struct Capability {
  int number;
  std::string_view name;
};
inline constexpr Capability kCapBpf{CAP_BPF, "CAP_BPF"};
inline constexpr Capability kCapNetAdmin{CAP_NET_ADMIN, "CAP_NET_ADMIN"};
inline constexpr Capability kCapSysAdmin{CAP_SYS_ADMIN, "CAP_SYS_ADMIN"};

// What of `needed` is not in this process's effective capabilities, or nothing.
inline std::optional<std::string> missing_capabilities(std::initializer_list<Capability> needed) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct sets[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, sets) != 0) {
    return std::string("cannot read this process's capabilities: ") + std::strerror(errno);
  }
  std::string missing;
  for (const Capability& cap : needed) {
    const unsigned bit = 1U << (cap.number % 32);
    if ((sets[cap.number / 32].effective & bit) == 0) {
      missing += missing.empty() ? "" : ", ";
      missing += cap.name;
    }
  }
  if (missing.empty()) return std::nullopt;
  return "needs root: this process lacks " + missing + " (run the test with sudo)";
}

// The error of a failed Result or Status as a missing requirement, or nothing if it succeeded.
template <class ResultOrStatus>
std::optional<std::string> missing_if_failed(const ResultOrStatus& outcome) {
  if (outcome.ok()) return std::nullopt;
  return outcome.error().message;
}

}  // namespace xlb::test

#define XLB_REQUIRE(missing_reason)                                                      \
  do {                                                                                   \
    if (const std::optional<std::string> xlb_missing_ = (missing_reason)) {              \
      if (::xlb::test::in_ci()) GTEST_FAIL() << *xlb_missing_ << " [fails, not skips: CI=true]"; \
      GTEST_SKIP() << *xlb_missing_;                                                     \
    }                                                                                    \
  } while (false)
