#include "k8s/translate.h"

#include <algorithm>
#include <map>

namespace xlb::k8s {
namespace {

constexpr const char* kProxyNameLabel = "service.kubernetes.io/service-proxy-name";
constexpr const char* kModeAnnotation = "xlb.io/forwarding-mode";
// Probes on top of EndpointSlice readiness: "tcp", "http", "https" or "udp", with an optional
// path for http(s) in xlb.io/health-check-path.
constexpr const char* kHealthAnnotation = "xlb.io/health-check";
constexpr const char* kHealthPathAnnotation = "xlb.io/health-check-path";

// One endpoint address serving one service port, with what the slice says about it.
struct Candidate {
  model::Backend backend;
  EndpointConditions conditions;
  std::vector<std::string> hint_zones;

  bool ready() const { return conditions.ready.value_or(true); }
  bool serving_terminating() const {
    return conditions.serving.value_or(ready()) && conditions.terminating.value_or(false);
  }
};

using Candidates = std::vector<Candidate>;

class Translator {
 public:
  Translator(const std::vector<EndpointSlice>& slices, const TranslateOptions& options) : options_(options) {
    for (const EndpointSlice& slice : slices) slices_by_service_[slice.ns + "/" + slice.service_name].push_back(&slice);
  }

  Translation run(const std::vector<Service>& services) {
    std::vector<const Service*> sorted;
    for (const Service& s : services) sorted.push_back(&s);
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->key() < b->key(); });
    for (const Service* s : sorted)
      if (serves(*s)) add_service(*s);
    return std::move(out_);
  }

 private:
  void skip(const std::string& object, std::string reason) { out_.skipped.push_back({object, std::move(reason)}); }

  bool serves(const Service& s) {
    const std::string what = "Service " + s.key();
    auto label = s.labels.find(kProxyNameLabel);
    const std::string proxy = label == s.labels.end() ? "" : label->second;
    if (proxy != options_.service_proxy_name) return false;  // another proxy's service: not ours, not a problem
    if (s.type == "ExternalName") return false;               // DNS only: nothing to balance
    if (!s.cluster_ips.empty() && s.cluster_ips.front() == "None") return false;  // headless: DNS only
    if (s.ports.empty()) {
      skip(what, "has no ports");
      return false;
    }
    return true;
  }

  std::optional<model::ForwardingMode> mode_of(const Service& s) {
    auto it = s.annotations.find(kModeAnnotation);
    if (it == s.annotations.end()) return options_.default_mode;
    auto mode = model::parse_forwarding_mode(it->second);
    if (!mode) skip("Service " + s.key(), std::string(kModeAnnotation) + " \"" + it->second + "\" is not nat, snat or dsr");
    return mode;
  }

  // The probes a service's annotations ask for; nullopt (and a skip) when they are wrong.
  std::optional<model::HealthCheck> health_of(const Service& s) {
    model::HealthCheck h;
    auto type = s.annotations.find(kHealthAnnotation);
    if (type == s.annotations.end()) return h;
    auto parsed = model::parse_health_check_type(type->second);
    if (!parsed) {
      skip("Service " + s.key(), std::string(kHealthAnnotation) + " \"" + type->second + "\" is not tcp, http, https, udp or none");
      return std::nullopt;
    }
    h.type = *parsed;
    if (auto path = s.annotations.find(kHealthPathAnnotation); path != s.annotations.end()) h.http_path = path->second;
    return h;
  }

  void add_service(const Service& s) {
    auto mode = mode_of(s);
    if (!mode) return;
    auto health = health_of(s);
    if (!health) return;
    for (const ServicePort& port : s.ports) {
      if (port.protocol != "TCP" && port.protocol != "UDP") {
        skip("Service " + s.key(), "port " + port_label(port) + ": protocol " + port.protocol + " is not supported");
        continue;
      }
      add_port(s, port, *mode, *health);
    }
  }

  static std::string port_label(const ServicePort& port) {
    return port.name.empty() ? std::to_string(port.port) : port.name;
  }

  void add_port(const Service& s, const ServicePort& port, model::ForwardingMode mode, const model::HealthCheck& health) {
    const model::Protocol protocol = port.protocol == "UDP" ? model::Protocol::udp : model::Protocol::tcp;
    Candidates usable = usable_endpoints(collect(s, port));
    Candidates cluster = topology_aware(usable, s.prefer_close);
    Candidates internal = s.internal_traffic_local ? on_this_node(usable) : cluster;
    Candidates external = s.external_traffic_local ? on_this_node(usable) : cluster;

    model::Service base;
    base.name = s.key() + ":" + port_label(port);
    base.source = "kubernetes";
    base.mode = mode;
    base.health = health;
    base.affinity.client_ip = s.session_affinity_client_ip;
    base.affinity.timeout = std::chrono::seconds(s.session_affinity_timeout);

    std::vector<model::Frontend> internal_frontends = frontends_of(s, s.cluster_ips, port.port, protocol,
                                                                   model::FrontendKind::cluster_ip);
    std::vector<model::Frontend> external_frontends = external_frontends_of(s, port, protocol);
    if (s.internal_traffic_local == s.external_traffic_local) {
      internal_frontends.insert(internal_frontends.end(), external_frontends.begin(), external_frontends.end());
      external_frontends.clear();
    }
    emit(base, std::move(internal_frontends), internal);
    base.name += "/external";
    emit(base, std::move(external_frontends), external);
  }

  std::vector<model::Frontend> external_frontends_of(const Service& s, const ServicePort& port,
                                                     model::Protocol protocol) {
    std::vector<model::Frontend> out;
    const bool has_node_port = (s.type == "NodePort" || s.type == "LoadBalancer") && port.node_port != 0;
    if (has_node_port)
      for (const model::IpAddress& a : options_.node_addresses)
        out.push_back({a, port.node_port, protocol, model::FrontendKind::node_port});
    if (s.type == "LoadBalancer")
      for (auto& f : frontends_of(s, s.load_balancer_ips, port.port, protocol, model::FrontendKind::load_balancer))
        out.push_back(f);
    for (auto& f : frontends_of(s, s.external_ips, port.port, protocol, model::FrontendKind::external_ip))
      out.push_back(f);
    return out;
  }

  std::vector<model::Frontend> frontends_of(const Service& s, const std::vector<std::string>& addresses, uint16_t port,
                                            model::Protocol protocol, model::FrontendKind kind) {
    std::vector<model::Frontend> out;
    for (const std::string& text : addresses) {
      auto address = model::IpAddress::parse(text);
      if (!address) {
        skip("Service " + s.key(), std::string(model::to_string(kind)) + " address \"" + text + "\" is not an IP address");
        continue;
      }
      out.push_back({*address, port, protocol, kind});
    }
    return out;
  }

  // A frontend can be served only by endpoints of its family; while a dual-stack service has
  // endpoints of one family only, the other family's frontends wait (kube-proxy would reject).
  void emit(model::Service service, std::vector<model::Frontend> frontends, const Candidates& endpoints) {
    if (frontends.empty()) return;
    for (const Candidate& c : endpoints) service.backends.push_back(c.backend);
    std::sort(service.backends.begin(), service.backends.end(),
              [](const auto& a, const auto& b) { return a.key() < b.key(); });
    for (model::Frontend& f : frontends) {
      const bool served = service.backends.empty() ||
                          std::any_of(service.backends.begin(), service.backends.end(),
                                      [&](const auto& b) { return b.address.family() == f.address.family(); });
      if (served)
        service.frontends.push_back(f);
      else
        skip("Service " + service.name, "frontend " + f.to_string() + " waits: no endpoint of its address family yet");
    }
    if (!service.frontends.empty()) out_.catalog.services.push_back(std::move(service));
  }

  // Every address of every slice of the service that carries this port (matched by name, as
  // kube-proxy does), once: the same address in two slices during a rollout counts once, at its
  // best condition.
  Candidates collect(const Service& s, const ServicePort& port) {
    std::map<std::string, Candidate> by_key;
    auto it = slices_by_service_.find(s.key());
    if (it == slices_by_service_.end()) return {};
    for (const EndpointSlice* slice : it->second) {
      if (slice->address_type != "IPv4" && slice->address_type != "IPv6") continue;  // FQDN: not ours
      auto slice_port = std::find_if(slice->ports.begin(), slice->ports.end(), [&](const EndpointPort& p) {
        return p.name == port.name && p.protocol == port.protocol && p.port;
      });
      if (slice_port == slice->ports.end()) continue;
      for (const Endpoint& e : slice->endpoints) add_candidates(*slice, e, *slice_port->port, by_key);
    }
    Candidates out;
    for (auto& [key, c] : by_key) out.push_back(std::move(c));
    return out;
  }

  void add_candidates(const EndpointSlice& slice, const Endpoint& e, uint16_t port, std::map<std::string, Candidate>& by_key) {
    for (const std::string& text : e.addresses) {
      auto address = model::IpAddress::parse(text);
      if (!address) {
        skip("EndpointSlice " + slice.key(), "endpoint address \"" + text + "\" is not an IP address");
        continue;
      }
      Candidate c{{*address, port, 1, model::BackendState::active, e.node_name, e.zone}, e.conditions, e.hint_zones};
      auto [it, inserted] = by_key.emplace(c.backend.key(), c);
      if (!inserted && c.ready() && !it->second.ready()) it->second = c;
    }
  }

  // Ready endpoints; when none is ready, those still serving while they terminate, so that a
  // rolling update with no ready pod left does not drop connections it could still serve.
  static Candidates usable_endpoints(const Candidates& all) {
    Candidates ready;
    std::copy_if(all.begin(), all.end(), std::back_inserter(ready), [](const Candidate& c) { return c.ready(); });
    if (!ready.empty()) return ready;
    Candidates terminating;
    std::copy_if(all.begin(), all.end(), std::back_inserter(terminating),
                 [](const Candidate& c) { return c.serving_terminating(); });
    return terminating;
  }

  // Topology: zone hints are followed only when every endpoint has them and some are for this
  // zone (kube-proxy's rule: partial hints mean the controller is mid-way, so ignore them).
  // PreferClose without hints: this zone's endpoints when there are any.
  Candidates topology_aware(const Candidates& usable, bool prefer_close) const {
    if (options_.zone.empty() || usable.empty()) return usable;
    const bool all_hinted = std::all_of(usable.begin(), usable.end(), [](const Candidate& c) { return !c.hint_zones.empty(); });
    Candidates close;
    if (all_hinted) {
      std::copy_if(usable.begin(), usable.end(), std::back_inserter(close), [&](const Candidate& c) {
        return std::find(c.hint_zones.begin(), c.hint_zones.end(), options_.zone) != c.hint_zones.end();
      });
    } else if (prefer_close) {
      std::copy_if(usable.begin(), usable.end(), std::back_inserter(close),
                   [&](const Candidate& c) { return c.backend.zone == options_.zone; });
    }
    return close.empty() ? usable : close;
  }

  Candidates on_this_node(const Candidates& usable) const {
    Candidates local;
    std::copy_if(usable.begin(), usable.end(), std::back_inserter(local),
                 [&](const Candidate& c) { return !options_.node_name.empty() && c.backend.node == options_.node_name; });
    return local;
  }

  const TranslateOptions& options_;
  std::map<std::string, std::vector<const EndpointSlice*>> slices_by_service_;
  Translation out_;
};

}  // namespace

Translation translate(const std::vector<Service>& services, const std::vector<EndpointSlice>& slices,
                      const TranslateOptions& options) {
  return Translator(slices, options).run(services);
}

}  // namespace xlb::k8s
