#include "api/rate_limiter.h"

#include <algorithm>

namespace xlb::api {

namespace {

double refilled(double tokens, RateLimiter::Clock::time_point since, RateLimiter::Clock::time_point now,
                double per_second, double burst) {
  const std::chrono::duration<double> elapsed = now - since;
  return std::min(burst, tokens + elapsed.count() * per_second);
}

}  // namespace

bool RateLimiter::allow(const std::string& client, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (buckets_.size() >= kMaxClients) forget_full_buckets(now);
  auto [it, added] = buckets_.try_emplace(client, Bucket{burst_, now});
  Bucket& b = it->second;
  if (!added) b = {refilled(b.tokens, b.updated, now, per_second_, burst_), now};
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

void RateLimiter::forget_full_buckets(Clock::time_point now) {
  std::erase_if(buckets_, [&](const auto& entry) {
    return refilled(entry.second.tokens, entry.second.updated, now, per_second_, burst_) >= burst_;
  });
}

}  // namespace xlb::api
