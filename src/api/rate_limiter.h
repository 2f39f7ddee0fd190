// A token bucket per client address: `burst` requests at once, then `per_second` on average.
// Thread-safe: civetweb's workers share one.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>

namespace xlb::api {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  RateLimiter(double burst, double per_second) : burst_(burst), per_second_(per_second) {}

  // Takes one request's worth from the client's bucket; false when it is empty.
  bool allow(const std::string& client, Clock::time_point now = Clock::now());

 private:
  struct Bucket {
    double tokens;
    Clock::time_point updated;
  };
  // Buckets that have refilled carry no information: dropping them bounds the map.
  void forget_full_buckets(Clock::time_point now);

  static constexpr size_t kMaxClients = 4096;
  const double burst_;
  const double per_second_;
  std::mutex mutex_;
  std::map<std::string, Bucket> buckets_;
};

}  // namespace xlb::api
