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

  // The catalog with every down backend that would take new flows (active or draining) marked
  // down. Only services with probes (health type tcp or http) are touched, so a service whose
  // probes were switched off by a reload cannot keep a stale "down".
  model::Catalog overlay(model::Catalog catalog) const;

 private:
  std::set<std::pair<std::string, std::string>, std::less<>> down_;  // (service, backend key)
};

}  // namespace xlb::engine
