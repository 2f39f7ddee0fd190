// GET /api/v1/advice: the decision rule (src/advise) on what xlbd knows of this node (kernel,
// preflight, the services it serves) and on what the last `xlbctl advise --measure` saved in the
// state directory (the crossover it measured, and the inputs only xlbctl reads: the cluster's
// nodes, kube-proxy's rules on the node, the operator's needs).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>

#include "api/provider.h"

namespace xlb::api {

// {"verdict", "verdict_code": "replace"|"keep_kube_proxy"|"cannot_run", "reason", "notes": [...],
//  "inputs": [{"input", "value", "source"}...], "measured": null | {"points": [{"services",
//  "socket_lb_p50_us", "iptables_p50_us", ...}], "crossover": null | N, "margin", "measured_at",
//  "kernel", "seconds"}}
nlohmann::json advice_json(const Snapshot& snapshot, const std::filesystem::path& saved_file);

}  // namespace xlb::api
