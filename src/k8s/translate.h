// Kubernetes Services and EndpointSlices into the model, with kube-proxy's rules: which
// services this proxy serves, which frontends each port gets, and which endpoints serve it.
#pragma once

#include <string>
#include <vector>

#include "k8s/objects.h"
#include "model/model.h"

namespace xlb::k8s {

struct TranslateOptions {
  std::string node_name;                       // for externalTrafficPolicy/internalTrafficPolicy Local
  std::string zone;                            // for topology hints and PreferClose; empty: ignored
  std::vector<model::IpAddress> node_addresses;  // where NodePorts listen; empty: no NodePort frontends
  // Serve the services whose label service.kubernetes.io/service-proxy-name has this value;
  // empty: serve those without the label, as kube-proxy does by default.
  std::string service_proxy_name;
  model::ForwardingMode default_mode = model::ForwardingMode::nat;
};

// Why an object (or one port of it) is not in the catalog: shown to the operator.
struct Skipped {
  std::string object;  // "Service default/web", "EndpointSlice default/web-abc12"
  std::string reason;
};

struct Translation {
  model::Catalog catalog;
  std::vector<Skipped> skipped;
};

// Model service names: "NAMESPACE/NAME:PORT" (the port's name, or its number when unnamed);
// the frontends of a port whose external and internal endpoints differ (a traffic policy is
// Local) get their own service, "NAMESPACE/NAME:PORT/external".
// Deterministic: the same objects in any order give the same catalog.
Translation translate(const std::vector<Service>& services, const std::vector<EndpointSlice>& slices,
                      const TranslateOptions& options);

}  // namespace xlb::k8s
