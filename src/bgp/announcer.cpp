// The Announcer's thread: pushes each new plan to bird until bird accepts it, and reads the
// sessions' state once a second for the API, logging each change.
#include <map>

#include "bgp/bgp.h"
#include "bgp/bird_control.h"

namespace xlb::bgp {

namespace {

constexpr auto kPollEvery = std::chrono::seconds(1);
constexpr auto kRetryEvery = std::chrono::seconds(2);

std::string count_line(const std::vector<Vip>& vips) {
  size_t announced = 0;
  for (const auto& v : vips) announced += v.announced;
  return std::to_string(announced) + " of " + std::to_string(vips.size()) + " VIPs announced";
}

}  // namespace

Announcer::Announcer(config::BgpConfig config, const Logger& log) : config_(std::move(config)), log_(log) {
  for (const auto& peer : config_.peers)
    peers_.push_back({protocol_name(peer), peer.address.to_string(), peer.asn, "unknown", "", ""});
  thread_ = std::thread([this] { run(); });
}

Announcer::~Announcer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void Announcer::update(std::vector<Vip> vips) {
  {
    std::lock_guard lock(mutex_);
    if (vips == vips_ && planned_) return;
    // Once withdrawing for good (stopping), nothing comes back: a health change during the drain
    // time must not announce again.
    if (withdrawing_) return;
    vips_ = std::move(vips);
    planned_ = true;
    ++generation_;
  }
  wake_.notify_all();
}

xlb::Status Announcer::withdraw_all(const std::string& reason) {
  std::lock_guard push(push_mutex_);
  uint64_t generation;
  std::vector<Vip> vips;
  {
    std::lock_guard lock(mutex_);
    withdrawing_ = true;
    for (auto& v : vips_) v.announced = false, v.reason = reason;
    vips = vips_;
    planned_ = true;
    generation = ++generation_;
  }
  xlb::Status status = configure_bird(config_, vips);
  std::lock_guard lock(mutex_);
  if (status) {
    configured_generation_ = generation;
    error_.clear();
  } else {
    error_ = status.error().message;
  }
  return status;
}

xlb::Status Announcer::push(const std::vector<Vip>& vips) { return configure_bird(config_, vips); }

void Announcer::run() {
  auto next_poll = std::chrono::steady_clock::now();
  auto next_retry = std::chrono::steady_clock::now();
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const bool pending = planned_ && generation_ != configured_generation_;
    const auto now = std::chrono::steady_clock::now();
    if (pending && now >= next_retry) {
      lock.unlock();
      {
        std::lock_guard push_lock(push_mutex_);
        std::vector<Vip> vips;
        uint64_t generation;
        {
          std::lock_guard again(mutex_);
          vips = vips_;
          generation = generation_;
        }
        xlb::Status status = push(vips);
        std::lock_guard again(mutex_);
        if (status) {
          if (!error_.empty()) log_.info("bgp: bird accepts xlb's routes again");
          configured_generation_ = generation;
          error_.clear();
          log_.info("bgp: " + count_line(vips) + " (" + config_.bird_include.string() + ", bird configured)");
        } else {
          if (status.error().message != error_)
            log_.error("bgp: " + status.error().message + "; retrying every " +
                       std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kRetryEvery).count()) + " s");
          error_ = status.error().message;
          next_retry = std::chrono::steady_clock::now() + kRetryEvery;
        }
      }
      lock.lock();
      continue;
    }
    if (now >= next_poll) {
      lock.unlock();
      poll_peers();
      lock.lock();
      next_poll = std::chrono::steady_clock::now() + kPollEvery;
      continue;
    }
    auto until = next_poll;
    if (pending && next_retry < until) until = next_retry;
    wake_.wait_until(lock, until, [&] {
      return stopping_ || (planned_ && generation_ != configured_generation_ && std::chrono::steady_clock::now() >= next_retry);
    });
  }
}

void Announcer::poll_peers() {
  auto answer = bird_command(config_.bird_socket, "show protocols", std::chrono::seconds(2));
  std::map<std::string, PeerState> listed;
  if (answer)
    for (auto& p : parse_protocols(*answer)) listed[p.name] = std::move(p);
  std::lock_guard lock(mutex_);
  for (auto& peer : peers_) {
    PeerState next = peer;
    if (auto it = listed.find(peer.name); answer && it != listed.end()) {
      next.state = it->second.state;
      next.since = it->second.since;
      next.info = it->second.info;
    } else {
      next.state = "unknown";
      next.since.clear();
      next.info = answer ? "not in bird's protocols (not configured yet?)" : answer.error().message;
    }
    if (next.established() != peer.established() || (peer.state == "unknown") != (next.state == "unknown"))
      log_.info("bgp: session with " + peer.address + " (AS " + std::to_string(peer.asn) + "): " +
                (next.established() ? "established" : next.state + ", " + next.info));
    peer = std::move(next);
  }
}

Report Announcer::report() const {
  std::lock_guard lock(mutex_);
  Report s;
  s.enabled = true;
  s.vips = vips_;
  s.peers = peers_;
  s.configured = planned_ && generation_ == configured_generation_;
  s.error = error_;
  s.include_file = config_.bird_include.string();
  s.bird_socket = config_.bird_socket.string();
  return s;
}

}  // namespace xlb::bgp
