// kube-proxy's rules against xlb's catalog, frontend by frontend: services are named differently
// on the two sides (kube-proxy "ns/web" for an unnamed port, xlb "ns/web:80"; the traffic-policy
// splits), but a frontend is what a client connects to, and its endpoints are where it lands.
#include <algorithm>
#include <map>
#include <set>

#include "kubeproxy/kubeproxy.h"

namespace xlb::kubeproxy {
namespace {

struct Entry {
  std::string service;
  model::Frontend frontend;
  std::set<std::string> backends;
  model::Affinity affinity;
  bool local = false;  // kube-proxy: reaches only this node's endpoints
};

// A NodePort is matched by port and protocol: kube-proxy accepts it on every local address, xlb
// lists the node's addresses one by one.
std::string key_of(const model::Frontend& f) {
  if (f.kind == model::FrontendKind::node_port)
    return "*:" + std::to_string(f.port) + "/" + std::string(model::to_string(f.protocol));
  return f.to_string();
}

using Entries = std::map<std::string, Entry>;

Entries entries_of(const model::Catalog& catalog, bool kube_proxy) {
  Entries out;
  for (const model::Service& s : catalog.services) {
    if (!kube_proxy && s.source != "kubernetes") continue;  // the config file's services are xlb's own
    if (s.backends.empty()) continue;
    const bool local = kube_proxy && s.name.ends_with(kLocalSuffix);
    const std::string name = local ? s.name.substr(0, s.name.size() - kLocalSuffix.size()) : s.name;
    for (const model::Frontend& f : s.frontends) {
      Entry& e = out[key_of(f)];
      e.service = name;
      e.frontend = f;
      e.affinity = s.affinity;
      e.local = local;
      // A dual-stack service holds both families' endpoints; a frontend reaches its own family's.
      for (const model::Backend& b : s.backends)
        if (b.address.family() == f.address.family() || f.kind == model::FrontendKind::node_port) e.backends.insert(b.key());
    }
  }
  return out;
}

// "ns/web:http" and "ns/web/external" -> "ns/web": the Kubernetes Service both sides name.
std::string service_of(const std::string& name) {
  return name.substr(0, std::min(name.find(':'), name.find('/', name.find('/') + 1)));
}

std::string list(const std::set<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out.empty() ? "none" : out;
}

std::set<std::string> minus(const std::set<std::string>& a, const std::set<std::string>& b) {
  std::set<std::string> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::inserter(out, out.end()));
  return out;
}

std::string affinity_text(const model::Affinity& a) {
  return a.client_ip ? "ClientIP for " + std::to_string(a.timeout.count()) + "s" : "none";
}

class Comparer {
 public:
  Comparer(const Rules& rules, const model::Catalog& xlb)
      : kube_proxy_(entries_of(rules.catalog, true)), xlb_(entries_of(xlb, false)) {}

  std::vector<Finding> run() {
    for (const auto& [key, kp] : kube_proxy_) {
      auto x = xlb_.find(key);
      if (x == xlb_.end()) only_kube_proxy_.push_back(&kp);
      else compare(kp, x->second);
    }
    for (const auto& [key, x] : xlb_)
      if (!kube_proxy_.count(key)) only_xlb_.push_back(&x);
    pair_ports();
    for (const Entry* kp : only_kube_proxy_)
      add(Finding::Kind::only_kube_proxy, kp->service, *kp,
          "kube-proxy serves it (" + std::to_string(kp->backends.size()) + " endpoints: " + list(kp->backends) +
              ") and xlb does not: after takeover its connections would fail. Check that xlbd's Kubernetes source "
              "sees the Service (xlbctl status, xlbctl service list) and that its proxy-name label is xlb's");
    for (const Entry* x : only_xlb_)
      add(Finding::Kind::only_xlb, x->service, *x,
          "xlb serves it (" + std::to_string(x->backends.size()) + " endpoints: " + list(x->backends) +
              ") and kube-proxy has no rule for it: if the Service is new, kube-proxy may not have synced yet "
              "(run the diff again); otherwise xlb would serve traffic that kube-proxy refuses");
    return std::move(findings_);
  }

 private:
  void add(Finding::Kind kind, const std::string& service, const Entry& e, std::string message) {
    findings_.push_back({kind, service, key_of(e.frontend), std::move(message)});
  }

  void compare(const Entry& kp, const Entry& x) {
    if (kp.affinity != x.affinity)
      add(Finding::Kind::affinity, x.service, x,
          "session affinity differs: kube-proxy " + affinity_text(kp.affinity) + ", xlb " + affinity_text(x.affinity) +
              ". Clients that rely on sticking to one endpoint would be spread (or stuck) differently");
    if (kp.backends == x.backends) return;
    if (traffic_policy(kp, x)) return;
    endpoints(kp, x);
  }

  // The same endpoints minus or plus the other nodes' ones: the two sides disagree on a traffic
  // policy Local, not on the endpoints.
  bool traffic_policy(const Entry& kp, const Entry& x) {
    const bool kp_fewer = std::includes(x.backends.begin(), x.backends.end(), kp.backends.begin(), kp.backends.end());
    const bool xlb_fewer = std::includes(kp.backends.begin(), kp.backends.end(), x.backends.begin(), x.backends.end());
    if (kp.local && kp_fewer) {
      add(Finding::Kind::traffic_policy, x.service, x,
          "traffic policy differs: kube-proxy sends it only to this node's endpoints (policy Local: " +
              list(kp.backends) + "), xlb to " + list(x.backends) +
              ". Check the Service's externalTrafficPolicy/internalTrafficPolicy and the node name xlbd uses "
              "([kubernetes] node_name)");
      return true;
    }
    if (!kp.local && xlb_fewer && x.service.ends_with("/external")) {
      add(Finding::Kind::traffic_policy, x.service, x,
          "traffic policy differs: xlb sends it only to this node's endpoints (" + list(x.backends) +
              "), kube-proxy to every endpoint (" + list(kp.backends) +
              "). Check the Service's externalTrafficPolicy and the node name xlbd uses ([kubernetes] node_name)");
      return true;
    }
    return false;
  }

  void endpoints(const Entry& kp, const Entry& x) {
    std::set<std::string> missing = minus(kp.backends, x.backends), extra = minus(x.backends, kp.backends);
    // The same address on both sides with another port: one finding about the port.
    for (auto m = missing.begin(); m != missing.end();) {
      const std::string host = m->substr(0, m->rfind(':'));
      auto e = std::find_if(extra.begin(), extra.end(), [&](const auto& s) { return s.substr(0, s.rfind(':')) == host; });
      if (e == extra.end()) {
        ++m;
        continue;
      }
      add(Finding::Kind::port, x.service, x,
          "endpoint port differs: kube-proxy sends it to " + *m + ", xlb to " + *e +
              ". Check the Service's targetPort and the EndpointSlice's port name");
      extra.erase(e);
      m = missing.erase(m);
    }
    if (!missing.empty())
      add(Finding::Kind::endpoints, x.service, x,
          "endpoints missing in xlb: " + list(missing) +
              " (kube-proxy sends traffic there). Check that xlbd sees the Service's EndpointSlices and that the "
              "endpoints are ready");
    if (!extra.empty())
      add(Finding::Kind::endpoints, x.service, x,
          "endpoints only xlb has: " + list(extra) +
              " (kube-proxy sends no traffic there). If they are new, kube-proxy may not have synced yet; "
              "otherwise check their readiness in the EndpointSlices");
  }

  // A frontend each side has only once, of the same Service, address and protocol but another port:
  // one finding about the port instead of two about services.
  void pair_ports() {
    for (auto k = only_kube_proxy_.begin(); k != only_kube_proxy_.end();) {
      auto x = std::find_if(only_xlb_.begin(), only_xlb_.end(), [&](const Entry* e) {
        return same_but_port(**k, *e);
      });
      if (x == only_xlb_.end()) {
        ++k;
        continue;
      }
      add(Finding::Kind::port, (*x)->service, **x,
          "port differs: kube-proxy serves " + key_of((*k)->frontend) + ", xlb " + key_of((*x)->frontend) +
              ". Clients of the other port would fail after takeover; check the Service's port (or nodePort) as "
              "each side read it");
      only_xlb_.erase(x);
      k = only_kube_proxy_.erase(k);
    }
  }

  static bool same_but_port(const Entry& kp, const Entry& x) {
    const bool node_port = kp.frontend.kind == model::FrontendKind::node_port;
    return node_port == (x.frontend.kind == model::FrontendKind::node_port) &&
           (node_port || kp.frontend.address == x.frontend.address) && kp.frontend.protocol == x.frontend.protocol &&
           kp.frontend.port != x.frontend.port && service_of(kp.service) == service_of(x.service);
  }

  Entries kube_proxy_, xlb_;
  std::vector<const Entry*> only_kube_proxy_, only_xlb_;
  std::vector<Finding> findings_;
};

}  // namespace

std::vector<Finding> compare(const Rules& kube_proxy, const model::Catalog& xlb) {
  return Comparer(kube_proxy, xlb).run();
}

std::string_view to_string(Finding::Kind kind) {
  switch (kind) {
    case Finding::Kind::only_kube_proxy: return "only-kube-proxy";
    case Finding::Kind::only_xlb: return "only-xlb";
    case Finding::Kind::port: return "port";
    case Finding::Kind::endpoints: return "endpoints";
    case Finding::Kind::traffic_policy: return "traffic-policy";
    case Finding::Kind::affinity: return "affinity";
  }
  return "unknown";
}

}  // namespace xlb::kubeproxy
