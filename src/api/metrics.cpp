#include "api/metrics.h"

#include <initializer_list>
#include <tuple>
#include <utility>

namespace xlb::api {

namespace {

using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

class Writer {
 public:
  // Every family gets its HELP and TYPE lines once, before its samples.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP " + std::string(name) + " " + std::string(help) + "\n";
    out_ += "# TYPE " + std::string(name) + " " + std::string(type) + "\n";
  }

  template <class Number>
  void sample(std::string_view name, Labels labels, Number value) {
    out_ += name;
    if (labels.size() > 0) {
      out_ += '{';
      bool first = true;
      for (const auto& [key, val] : labels) {
        if (!first) out_ += ',';
        first = false;
        out_ += std::string(key) + "=\"" + escape_label_value(val) + "\"";
      }
      out_ += '}';
    }
    out_ += ' ' + std::to_string(value) + '\n';
  }

  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string_view family_name(model::IpAddress::Family f) {
  return f == model::IpAddress::Family::v4 ? "ipv4" : "ipv6";
}

void node_metrics(Writer& w, const Snapshot& s) {
  w.family("xlb_info", "gauge", "Always 1; the labels say which xlbd runs where.");
  w.sample("xlb_info", {{"version", s.node.version}, {"hostname", s.node.hostname}, {"kernel", s.node.kernel}}, 1);
  w.family("xlb_revision", "gauge", "The catalog revision in force.");
  w.sample("xlb_revision", {}, s.revision);
  w.family("xlb_services", "gauge", "Services in the catalog.");
  w.sample("xlb_services", {}, s.services.size());
  w.family("xlb_drops_total", "counter", "Packets the datapath dropped, by reason.");
  for (const auto& [reason, count] : s.drops) w.sample("xlb_drops_total", {{"reason", reason}}, count);
}

void service_metrics(Writer& w, const Snapshot& s) {
  using Field = uint64_t Counters::*;
  const std::tuple<std::string_view, Field, std::string_view> counters[] = {
      {"xlb_service_packets_total", &Counters::packets, "Packets sent to the service's backends."},
      {"xlb_service_bytes_total", &Counters::bytes, "Bytes sent to the service's backends."},
      {"xlb_service_new_flows_total", &Counters::new_flows, "Flows that picked a backend from the ring."}};
  for (const auto& [name, field, help] : counters) {
    w.family(name, "counter", help);
    for (const auto& v : s.services) w.sample(name, {{"service", v.service.name}}, v.counters.*field);
  }
  w.family("xlb_service_last_disruption_ratio", "gauge",
           "Share of new flows that the service's last change sent to another backend.");
  for (const auto& v : s.services)
    w.sample("xlb_service_last_disruption_ratio", {{"service", v.service.name}}, v.last_disruption);
}

void backend_metrics(Writer& w, const Snapshot& s) {
  using Field = uint64_t Counters::*;
  const std::tuple<std::string_view, Field, std::string_view> counters[] = {
      {"xlb_backend_packets_total", &Counters::packets, "Packets sent to the backend."},
      {"xlb_backend_bytes_total", &Counters::bytes, "Bytes sent to the backend."},
      {"xlb_backend_new_flows_total", &Counters::new_flows, "New flows that picked the backend."}};
  for (const auto& [name, field, help] : counters) {
    w.family(name, "counter", help);
    for (const auto& v : s.services)
      for (const auto& b : v.service.backends) {
        const auto it = v.backend_counters.find(b.key());
        const uint64_t value = it == v.backend_counters.end() ? 0 : it->second.*field;
        w.sample(name, {{"service", v.service.name}, {"backend", b.key()}}, value);
      }
  }
  w.family("xlb_backend_weight", "gauge", "The backend's configured weight; 0 takes no new flows.");
  for (const auto& v : s.services)
    for (const auto& b : v.service.backends)
      w.sample("xlb_backend_weight", {{"service", v.service.name}, {"backend", b.key()}}, b.weight);
  w.family("xlb_backend_state", "gauge", "1 for the backend's state: active, draining, down or maintenance.");
  for (const auto& v : s.services)
    for (const auto& b : v.service.backends)
      w.sample("xlb_backend_state",
               {{"service", v.service.name}, {"backend", b.key()}, {"state", model::to_string(b.state)}}, 1);
  w.family("xlb_backend_ring_slots", "gauge", "Slots of the service's Maglev ring that the backend owns.");
  for (const auto& v : s.services)
    for (const auto& ring : v.rings)
      for (const auto& share : ring.shares)
        w.sample("xlb_backend_ring_slots",
                 {{"service", v.service.name}, {"backend", share.backend}, {"family", family_name(ring.family)}},
                 share.slots);
}

// Only with [bgp] enabled: an ECMP fleet's dashboards compare these across nodes.
void bgp_metrics(Writer& w, const Snapshot& s) {
  if (!s.bgp.enabled) return;
  w.family("xlb_bgp_vip_announced", "gauge", "1 while this node announces the VIP over BGP, 0 while it holds it back.");
  for (const auto& v : s.bgp.vips) w.sample("xlb_bgp_vip_announced", {{"vip", v.address}}, v.announced ? 1 : 0);
  w.family("xlb_bgp_peer_up", "gauge", "1 while the BGP session with the peer is established.");
  for (const auto& p : s.bgp.peers) w.sample("xlb_bgp_peer_up", {{"peer", p.address}}, p.established ? 1 : 0);
  w.family("xlb_bgp_configured", "gauge", "1 when bird accepted xlb's current routes, 0 while it has not.");
  w.sample("xlb_bgp_configured", {}, s.bgp.configured ? 1 : 0);
}

}  // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string render_metrics(const Snapshot& s) {
  Writer w;
  node_metrics(w, s);
  service_metrics(w, s);
  backend_metrics(w, s);
  bgp_metrics(w, s);
  return w.take();
}

}  // namespace xlb::api
