#include "api/views.h"

#include "model/json.h"

namespace xlb::api {

using nlohmann::json;

namespace {

json to_json(const Counters& c) {
  return {{"packets", c.packets}, {"bytes", c.bytes}, {"new_flows", c.new_flows}};
}

std::string_view family_name(model::IpAddress::Family f) {
  return f == model::IpAddress::Family::v4 ? "ipv4" : "ipv6";
}

json to_json(const RingView& ring) {
  json shares = json::array();
  for (const auto& s : ring.shares)
    shares.push_back({{"backend", s.backend},
                      {"slots", s.slots},
                      {"share", ring.size ? static_cast<double>(s.slots) / ring.size : 0.0}});
  return {{"family", family_name(ring.family)}, {"size", ring.size}, {"shares", std::move(shares)}};
}

std::string_view change_kind(model::ServiceChange::Kind kind) {
  switch (kind) {
    case model::ServiceChange::Kind::added: return "added";
    case model::ServiceChange::Kind::removed: return "removed";
    case model::ServiceChange::Kind::changed: return "changed";
  }
  return "changed";
}

json totals(const Snapshot& s) {
  Counters sum;
  size_t frontends = 0, backends = 0;
  for (const auto& v : s.services) {
    frontends += v.service.frontends.size();
    backends += v.service.backends.size();
    sum.packets += v.counters.packets;
    sum.bytes += v.counters.bytes;
    sum.new_flows += v.counters.new_flows;
  }
  json out = to_json(sum);
  out["services"] = s.services.size();
  out["frontends"] = frontends;
  out["backends"] = backends;
  return out;
}

}  // namespace

json to_json(const ServiceView& v) {
  json out = model::to_json(v.service);
  for (size_t i = 0; i < v.service.backends.size(); ++i) {
    const std::string key = v.service.backends[i].key();
    const auto counters = v.backend_counters.find(key);
    out["backends"][i]["key"] = key;
    out["backends"][i]["counters"] = to_json(counters == v.backend_counters.end() ? Counters{} : counters->second);
  }
  json rings = json::array();
  for (const auto& r : v.rings) rings.push_back(to_json(r));
  out["source"] = v.source;
  out["rings"] = std::move(rings);
  out["last_disruption"] = v.last_disruption;
  out["counters"] = to_json(v.counters);
  return out;
}

json node_json(const Snapshot& s) {
  json attachments = json::array();
  for (const auto& a : s.node.attachments)
    attachments.push_back({{"interface", a.interface}, {"program", a.program}, {"mode", a.mode}});
  json preflight = json::array();
  for (const auto& c : s.node.preflight) preflight.push_back({{"name", c.name}, {"ok", c.ok}, {"detail", c.detail}});
  json sources = json::array();
  for (const auto& src : s.sources)
    sources.push_back({{"name", src.name}, {"state", src.state}, {"detail", src.detail}, {"services", src.services},
                       {"problems", src.problems}});
  return {{"hostname", s.node.hostname},
          {"kernel", s.node.kernel},
          {"version", s.node.version},
          {"datapath_mode", s.node.datapath_mode},
          {"attachments", std::move(attachments)},
          {"preflight", std::move(preflight)},
          {"sources", std::move(sources)},
          {"revision", s.revision},
          {"sampled_at_ms", s.sampled_at_ms},
          {"totals", totals(s)},
          {"drops", s.drops},
          {"bgp", to_json(s.bgp)}};
}

json services_json(const Snapshot& s) {
  json services = json::array();
  for (const auto& v : s.services) services.push_back(to_json(v));
  return {{"revision", s.revision}, {"sampled_at_ms", s.sampled_at_ms}, {"services", std::move(services)}};
}

json service_json(const Snapshot& s, const ServiceView& v) {
  return {{"revision", s.revision}, {"sampled_at_ms", s.sampled_at_ms}, {"service", to_json(v)}};
}

json to_json(const RevisionView& r) {
  json changes = json::array();
  for (const auto& c : r.changes)
    changes.push_back({{"kind", change_kind(c.kind)}, {"service", c.service}, {"details", c.details}});
  return {{"id", r.id},
          {"created_at", r.created_at},
          {"source", r.source},
          {"summary", r.summary},
          {"changes", std::move(changes)}};
}

json to_json(const EventView& e) {
  return {{"id", e.id}, {"created_at", e.created_at}, {"kind", e.kind}, {"subject", e.subject}, {"message", e.message}};
}

json to_json(const DropsView& v) {
  json drops = json::array();
  for (const auto& d : v.drops)
    drops.push_back({{"id", d.id},
                     {"unix_ms", d.unix_ms},
                     {"reason", d.reason},
                     {"interface", d.interface},
                     {"protocol", d.protocol},
                     {"source", d.source},
                     {"destination", d.destination}});
  return {{"drops", std::move(drops)}, {"last_id", v.last_id}, {"unreported", v.unreported}};
}

json to_json(const TraceView& t) {
  json conntrack = nullptr;
  if (t.conntrack) conntrack = {{"backend", t.conntrack_backend}, {"idle_ms", t.conntrack_idle_ms}};
  return {{"verdict", t.verdict}, {"service", t.service}, {"backend", t.backend},   {"why", t.why},
          {"hash", t.hash},       {"slot", t.slot},       {"ring_size", t.ring_size}, {"conntrack", std::move(conntrack)}};
}

json to_json(const BgpView& b) {
  json vips = json::array();
  for (const auto& v : b.vips)
    vips.push_back({{"address", v.address}, {"services", v.services}, {"announced", v.announced}, {"reason", v.reason}});
  json peers = json::array();
  for (const auto& p : b.peers)
    peers.push_back({{"name", p.name}, {"address", p.address}, {"asn", p.asn}, {"state", p.state},
                     {"since", p.since}, {"info", p.info}, {"established", p.established}});
  return {{"enabled", b.enabled}, {"configured", b.configured}, {"error", b.error}, {"include_file", b.include_file},
          {"bird_socket", b.bird_socket}, {"vips", vips}, {"peers", peers}};
}

}  // namespace xlb::api
