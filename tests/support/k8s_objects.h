// Services and EndpointSlices shaped as a real API server returns them (as kubectl get -o json
// shows), for the Kubernetes source's tests.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace xlb::test {

using nlohmann::json;

inline json service_json(const std::string& name, json spec, json metadata_extra = json::object()) {
  json meta = {{"name", name},
               {"namespace", "default"},
               {"resourceVersion", "100"},
               {"uid", "3f1c2a9e-0000-4000-8000-000000000001"},
               {"creationTimestamp", "2026-11-01T10:00:00Z"}};
  meta.update(metadata_extra);
  json base_spec = {{"type", "ClusterIP"},
                    {"sessionAffinity", "None"},
                    {"ipFamilies", {"IPv4"}},
                    {"ipFamilyPolicy", "SingleStack"},
                    {"internalTrafficPolicy", "Cluster"}};
  base_spec.update(spec);
  return {{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", meta}, {"spec", base_spec},
          {"status", {{"loadBalancer", json::object()}}}};
}

inline json endpoint(const std::string& ip, bool ready = true, const std::string& node = "node-a",
              const std::string& zone = "zone-a") {
  return {{"addresses", {ip}},
          {"conditions", {{"ready", ready}, {"serving", ready}, {"terminating", false}}},
          {"nodeName", node},
          {"zone", zone},
          {"targetRef", {{"kind", "Pod"}, {"namespace", "default"}, {"name", "pod-" + ip}}}};
}

inline json slice_json(const std::string& name, const std::string& service, json endpoints,
                json ports = json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}}),
                const std::string& type = "IPv4") {
  return {{"apiVersion", "discovery.k8s.io/v1"},
          {"kind", "EndpointSlice"},
          {"metadata",
           {{"name", name},
            {"namespace", "default"},
            {"resourceVersion", "200"},
            {"labels",
             {{"kubernetes.io/service-name", service}, {"endpointslice.kubernetes.io/managed-by", "endpointslice-controller.k8s.io"}}}}},
          {"addressType", type},
          {"endpoints", endpoints},
          {"ports", ports}};
}

inline json http_port(int node_port = 0) {
  json p = {{"name", "http"}, {"port", 80}, {"protocol", "TCP"}, {"targetPort", 8080}};
  if (node_port) p["nodePort"] = node_port;
  return p;
}

}  // namespace xlb::test
