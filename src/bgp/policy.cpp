// Which VIPs this node announces: a pure function of the catalog in force and the node's state.
#include <algorithm>
#include <map>

#include "bgp/bgp.h"

namespace xlb::bgp {

namespace {

// Addresses of their own on the network, which routers must be told where to send.
bool announceable(model::FrontendKind kind) {
  using K = model::FrontendKind;
  return kind == K::vip || kind == K::load_balancer || kind == K::external_ip;
}

bool takes_new_flows(const model::Service& service) {
  return std::any_of(service.backends.begin(), service.backends.end(), [](const model::Backend& b) {
    return b.state == model::BackendState::active && b.weight > 0;
  });
}

}  // namespace

std::vector<Vip> plan_vips(const model::Catalog& in_force, const NodeInputs& node) {
  struct Seen {
    std::vector<std::string> services;
    bool servable = false;
  };
  std::map<model::IpAddress, Seen> by_address;
  for (const auto& service : in_force.services) {
    const bool servable = takes_new_flows(service);
    for (const auto& frontend : service.frontends) {
      if (!announceable(frontend.kind)) continue;
      Seen& seen = by_address[frontend.address];
      if (std::find(seen.services.begin(), seen.services.end(), service.name) == seen.services.end())
        seen.services.push_back(service.name);
      seen.servable = seen.servable || servable;
    }
  }
  std::vector<Vip> vips;
  for (auto& [address, seen] : by_address) {
    Vip vip{address, std::move(seen.services), false, ""};
    std::sort(vip.services.begin(), vip.services.end());
    if (node.withdraw_all)
      vip.reason = *node.withdraw_all;
    else if (!node.datapath_attached)
      vip.reason = "the datapath is not attached (shadow mode, or xdp_mode = \"off\")";
    else if (!seen.servable)
      vip.reason = "no backend takes new flows (all down, drained or weight 0)";
    else
      vip.announced = true;
    vips.push_back(std::move(vip));
  }
  return vips;
}

}  // namespace xlb::bgp
