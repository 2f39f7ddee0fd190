// Which backend a flow gets and why, decided as the XDP program decides it (bpf/xlb_xdp.bpf.c:
// xlb_translate, xlb_pick_backend; xlb_dsr_balance for dsr): from the maps the engine wrote
// (State) and the flow tables (FlowReader), with the programs' own flow hash (flow_hash.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/result.h"
#include "datapath/flows.h"
#include "datapath/state.h"

namespace xlb::datapath {

struct Trace {
  enum class Verdict {
    not_a_frontend,  // passed untouched: no frontend at that address, port and protocol
    conntrack,       // an established flow keeps the backend conntrack has for it
    affinity,        // ClientIP affinity: the client's recent backend
    ring,            // a new flow: the backend in ring slot `slot`
    no_backend,      // dropped ("no backend"): an empty ring, or a slot with no usable backend
  };
  Verdict verdict = Verdict::not_a_frontend;
  std::optional<FrontendEntry> frontend;
  std::optional<BackendEntry> backend;
  // Ring picks: the hash (of the whole flow, or with affinity of the client address alone), and
  // the slot it names (hash % ring size).
  uint32_t hash = 0;
  uint32_t slot = 0;
  bool client_address_hash = false;
  std::optional<ConntrackEntry> conntrack;  // whatever conntrack holds, used or not
  std::optional<AffinityEntry> affinity;
  std::string why;  // one sentence: what decided, and what was passed over
};

std::string_view to_string(Trace::Verdict verdict);

Result<Trace> trace_flow(const State& maps, const Flow& flow, const FlowReader& reader);

}  // namespace xlb::datapath
