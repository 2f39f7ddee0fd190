// The parts of v1 Service and discovery.k8s.io/v1 EndpointSlice that a service proxy reads,
// parsed from the API server's JSON. A malformed object yields an Error naming the object and
// the field, so that the source can skip it with a reason and apply the rest.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/result.h"

namespace xlb::k8s {

struct ServicePort {
  std::string name;
  std::string protocol = "TCP";  // TCP, UDP or SCTP
  uint16_t port = 0;
  uint16_t node_port = 0;  // 0: none
};

struct Service {
  std::string ns;
  std::string name;
  std::string resource_version;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::string type = "ClusterIP";  // ClusterIP, NodePort, LoadBalancer, ExternalName
  std::vector<std::string> cluster_ips;  // "None" for a headless service
  std::vector<std::string> external_ips;
  std::vector<std::string> load_balancer_ips;  // status.loadBalancer.ingress[].ip
  std::vector<ServicePort> ports;
  bool session_affinity_client_ip = false;
  uint32_t session_affinity_timeout = 10800;  // seconds, Kubernetes' default
  bool external_traffic_local = false;
  bool internal_traffic_local = false;
  bool prefer_close = false;  // spec.trafficDistribution: PreferClose

  std::string key() const { return ns + "/" + name; }
};

struct EndpointConditions {
  // Absent conditions mean "unknown"; the API says to read unknown readiness as ready.
  std::optional<bool> ready;
  std::optional<bool> serving;
  std::optional<bool> terminating;
};

struct Endpoint {
  std::vector<std::string> addresses;
  EndpointConditions conditions;
  std::string node_name;
  std::string zone;
  std::vector<std::string> hint_zones;  // hints.forZones[].name
};

struct EndpointPort {
  std::string name;
  std::string protocol = "TCP";
  std::optional<uint16_t> port;  // absent: "all ports", which a service proxy cannot use
};

struct EndpointSlice {
  std::string ns;
  std::string name;
  std::string resource_version;
  std::string service_name;  // label kubernetes.io/service-name
  std::string address_type;  // IPv4, IPv6 or FQDN
  std::vector<Endpoint> endpoints;
  std::vector<EndpointPort> ports;

  std::string key() const { return ns + "/" + name; }
};

// Object metadata alone: enough to delete an object whose body no longer parses.
struct ObjectRef {
  std::string ns;
  std::string name;
  std::string key() const { return ns + "/" + name; }
};

Result<ObjectRef> parse_ref(const nlohmann::json& object);
Result<Service> parse_service(const nlohmann::json& object);
Result<EndpointSlice> parse_endpoint_slice(const nlohmann::json& object);

}  // namespace xlb::k8s
