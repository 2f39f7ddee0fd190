// What `xlbctl advise --measure` found on this node: new-connection latency through a kube-proxy
// style iptables rule set and through xlb's socket-LB at a few catalog sizes, and the crossover,
// the catalog size from which socket-LB wins here. Saved in xlbd's state directory so that the API
// and the dashboard show it; pure apart from save/load.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "advise/advise.h"
#include "base/result.h"

namespace xlb::advise {

// The record xlbctl advise --measure leaves for xlbd: the measurement, and the inputs only
// xlbctl knows (the cluster's nodes, kube-proxy's rules on the node, the operator's needs).
struct Saved {
  Measured measured;
  std::optional<uint32_t> nodes;
  std::string kube_proxy_mode;
  uint32_t kube_proxy_services = 0;
  Needs needs;
};

inline constexpr const char* kSavedFile = "advise.json";  // in xlbd's state directory

nlohmann::json to_json(const Measured& m);
nlohmann::json to_json(const Saved& s);
Result<Saved> saved_from_json(const nlohmann::json& j);
// Written whole or not at all (a temporary file renamed over it), readable by root only like the rest
// of the state directory.
Status save(const std::filesystem::path& file, const Saved& saved);
// nullopt when there is no file (never measured); an error when it does not parse.
Result<std::optional<Saved>> load(const std::filesystem::path& file);

}  // namespace xlb::advise
