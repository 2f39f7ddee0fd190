// Health overlay: backends the probes found down, laid over every catalog the engine applies,
// like the operator's drains (drains.h). A down backend gets state `down`: it keeps its place in
// the member list and its established flows (conntrack), and takes no ring slots, so Maglev
// moves only the flows its slots held. Runtime state only: it is not saved, and a restarted
// xlbd starts with every backend as its source says and probes again.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "model/model.h"

namespace xlb::engine {

class HealthOverlay {
 public:
  bool is_down(std::string_view service, std::string_view backend) const;
  // Marks a backend down or up again; false when it already was so.
  bool set_down(std::string_view service, std::string_view backend, bool down);

  bool is_slow(std::string_view service, std::string_view backend) const;
  // Marks a backend slow (latency awareness) or not; false when it already was so.
  bool set_slow(std::string_view service, std::string_view backend, bool slow);

  // A slow backend keeps 1/kSlowShare of its weight relative to its peers: Maglev weights are
  // relative, so the others' weights are multiplied instead (a weight of 1 cannot be divided).
  static constexpr uint32_t kSlowShare = 4;

  // The catalog with every down backend that would take new flows (active or draining) marked
  // down. Only services with probes (health type tcp or http) are touched, so a service whose
  // probes were switched off by a reload cannot keep a stale "down".
  // Slow backends of such services keep their weight while their peers' is multiplied by
  // kSlowShare (at most the model's maximum weight).
  model::Catalog overlay(model::Catalog catalog) const;
  model::Service overlay(model::Service service) const;

 private:
  using Keys = std::set<std::pair<std::string, std::string>, std::less<>>;  // (service, backend key)
  Keys down_;
  Keys slow_;
};

}  // namespace xlb::engine
