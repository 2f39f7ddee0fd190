// The JSON bodies of the API (snake_case), from the Provider's views.
#pragma once

#include <nlohmann/json.hpp>

#include "api/provider.h"

namespace xlb::api {

// {"hostname", "kernel", "version", "datapath_mode", "attachments", "preflight", "revision",
//  "sampled_at_ms", "totals": {services, frontends, backends, packets, bytes, new_flows}, "drops"}
nlohmann::json node_json(const Snapshot&);
// {"revision", "sampled_at_ms", "services": [service...]}
nlohmann::json services_json(const Snapshot&);
// {"revision", "sampled_at_ms", "service": service}
nlohmann::json service_json(const Snapshot&, const ServiceView&);
// The model's service plus "source", "rings", "last_disruption", "counters", and per backend
// "key" and "counters".
nlohmann::json to_json(const ServiceView&);
nlohmann::json to_json(const RevisionView&);
nlohmann::json to_json(const EventView&);
// {"drops": [{"id", "unix_ms", "reason", "interface", "protocol", "source", "destination"}...],
//  "last_id", "unreported"}
nlohmann::json to_json(const DropsView&);
// {"verdict", "service", "backend", "why", "hash", "slot", "ring_size",
//  "conntrack": null | {"backend", "idle_ms"}}
nlohmann::json to_json(const TraceView&);
// {"enabled", "configured", "error", "include_file", "bird_socket",
//  "vips": [{"address", "services", "announced", "reason"}...],
//  "peers": [{"name", "address", "asn", "state", "since", "info", "established"}...]}
nlohmann::json to_json(const BgpView&);

}  // namespace xlb::api
