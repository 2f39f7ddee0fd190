#include "datapath/trace.h"

#include <cstring>

#include "datapath/flow_hash.h"
#include "datapath/flow_key.h"

namespace xlb::datapath {

namespace {

std::string backend_text(const BackendEntry& b) {
  return (b.address.is_v4() ? b.address.to_string() : "[" + b.address.to_string() + "]") + ":" +
         std::to_string(b.port);
}

std::string seconds(uint64_t ns) { return std::to_string(ns / 1'000'000'000) + " s"; }

const BackendEntry* find_backend(const State& maps, BackendId id) {
  auto it = maps.backends.find(id);
  return it == maps.backends.end() ? nullptr : &it->second;
}

// xlb_usable_backend: exists, not draining, of the flow's family.
const BackendEntry* usable_backend(const State& maps, BackendId id, const Flow& flow) {
  const BackendEntry* b = find_backend(maps, id);
  return b && !b->draining && b->address.family() == flow.client.family() ? b : nullptr;
}

// Whether the programs keep the flow on its conntrack backend: that backend still exists (draining
// or not) in the flow's family, and the flow began in the service's present mode (snat or not;
// dsr flows never have an snat port).
const BackendEntry* established_backend(const State& maps, const FrontendEntry& frontend,
                                        const ConntrackEntry& ct, const Flow& flow, std::string& passed_over) {
  const bool snat = frontend.snat && !frontend.dsr;
  if (snat != (ct.snat_port != 0)) {
    passed_over = "conntrack's entry began in another mode (snat or not) and is balanced again; ";
    return nullptr;
  }
  const BackendEntry* b = find_backend(maps, ct.backend_id);
  if (!b || b->address.family() != flow.client.family()) {
    passed_over = "conntrack's backend (id " + std::to_string(ct.backend_id) + ") is gone, so it is balanced again; ";
    return nullptr;
  }
  return b;
}

// A pick from the ring by `hash`, as lb_ring_pick then xlb_usable_backend.
void ring_pick(const State& maps, const FrontendEntry& frontend, const Flow& flow, uint32_t hash, Trace& t) {
  t.hash = hash;
  const auto size = static_cast<uint32_t>(frontend.ring.size());
  if (size == 0) {
    t.verdict = Trace::Verdict::no_backend;
    t.why += "the ring is empty (no backend takes new flows): dropped as \"no backend\"";
    return;
  }
  t.slot = hash % size;
  const BackendId id = frontend.ring[t.slot];
  const BackendEntry* b = usable_backend(maps, id, flow);
  const std::string where = "ring slot " + std::to_string(t.slot) + " of " + std::to_string(size) + " (hash " +
                            std::to_string(hash) + (t.client_address_hash ? " of the client address" : " of the flow") + ")";
  if (!b) {
    t.verdict = Trace::Verdict::no_backend;
    t.why += where + " names no usable backend: dropped as \"no backend\"";
    return;
  }
  t.verdict = Trace::Verdict::ring;
  t.backend = *b;
  t.why += "a new flow: " + where + " -> " + backend_text(*b);
}

// xlb_pick_backend with affinity: the client's recent backend while it is usable and younger
// than the timeout, else the ring slot of the client address's hash.
Status affinity_pick(const State& maps, const FrontendEntry& frontend, const Flow& flow, const FlowReader& reader,
                     Trace& t) {
  auto entry = reader.affinity(flow.client, frontend.service_id);
  if (!entry) return entry.error();
  t.affinity = *entry;
  const uint64_t timeout_ns = uint64_t{frontend.affinity_timeout_s} * 1'000'000'000;
  if (t.affinity && t.affinity->idle_ns < timeout_ns) {
    if (const BackendEntry* b = usable_backend(maps, t.affinity->backend_id, flow)) {
      t.verdict = Trace::Verdict::affinity;
      t.backend = *b;
      t.why += "ClientIP affinity: the client's backend of " + seconds(t.affinity->idle_ns) + " ago -> " +
               backend_text(*b);
      return {};
    }
    t.why += "the client's affinity backend cannot take new flows; ";
  } else if (t.affinity) {
    t.why += "the client's affinity expired (" + seconds(t.affinity->idle_ns) + " idle, timeout " +
             std::to_string(frontend.affinity_timeout_s) + " s); ";
  }
  const xlb_flow_key key = flow_key_of(flow);
  t.client_address_hash = true;
  ring_pick(maps, frontend, flow, address_hash(key.src), t);
  return {};
}

}  // namespace

std::string_view to_string(Trace::Verdict verdict) {
  switch (verdict) {
    case Trace::Verdict::not_a_frontend: return "not_a_frontend";
    case Trace::Verdict::conntrack: return "conntrack";
    case Trace::Verdict::affinity: return "affinity";
    case Trace::Verdict::ring: return "ring";
    case Trace::Verdict::no_backend: return "no_backend";
  }
  return "unknown";
}

Result<Trace> trace_flow(const State& maps, const Flow& flow, const FlowReader& reader) {
  Trace t;
  auto frontend = maps.frontends.find({flow.frontend, flow.frontend_port, flow.protocol});
  if (frontend == maps.frontends.end() || flow.client.family() != flow.frontend.family()) {
    t.why = "no frontend at " + FrontendKey{flow.frontend, flow.frontend_port, flow.protocol}.to_string() +
            ": the packet is passed to the node's stack untouched";
    return t;
  }
  const FrontendEntry& f = frontend->second;
  t.frontend = f;
  auto ct = reader.conntrack(flow);
  if (!ct) return ct.error();
  t.conntrack = *ct;
  if (t.conntrack) {
    std::string passed_over;
    if (const BackendEntry* b = established_backend(maps, f, *t.conntrack, flow, passed_over)) {
      t.verdict = Trace::Verdict::conntrack;
      t.backend = *b;
      t.why = "an established flow: conntrack keeps it on " + backend_text(*b) + (b->draining ? " (draining)" : "") +
              ", last seen " + seconds(t.conntrack->idle_ns) + " ago";
      // balance.h xlb_backend_keeps_flow: a SYN is a new connection on a reused port.
      if (b->draining && flow.protocol == model::Protocol::tcp)
        t.why += "; a new connection from this port (a SYN) goes by the ring instead";
      return t;
    }
    t.why += passed_over;
  }
  if (f.affinity) {
    if (auto s = affinity_pick(maps, f, flow, reader, t); !s) return s.error();
    return t;
  }
  ring_pick(maps, f, flow, flow_hash(flow_key_of(flow)), t);
  return t;
}

}  // namespace xlb::datapath
