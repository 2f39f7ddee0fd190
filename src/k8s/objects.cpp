#include "k8s/objects.h"

#include <nlohmann/json.hpp>

namespace xlb::k8s {
namespace {

using nlohmann::json;

std::string join(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }

// Reads fields of one object and remembers the first problem, with the field's path, so
// that each parser reads straight through and checks once at the end.
class Reader {
 public:
  explicit Reader(std::string what) : what_(std::move(what)) {}

  const json* child(const json& parent, const char* key, const std::string& path) {
    if (!parent.is_object()) {
      fail(path, "is not an object");
      return nullptr;
    }
    auto it = parent.find(key);
    return it == parent.end() || it->is_null() ? nullptr : &*it;
  }

  std::string string(const json& parent, const char* key, const std::string& path, std::string fallback = {}) {
    const json* v = child(parent, key, join(path, key));
    if (!v) return fallback;
    if (!v->is_string()) {
      fail(join(path, key), "must be a string");
      return fallback;
    }
    return v->get<std::string>();
  }

  std::optional<bool> boolean(const json& parent, const char* key, const std::string& path) {
    const json* v = child(parent, key, join(path, key));
    if (!v) return std::nullopt;
    if (!v->is_boolean()) {
      fail(join(path, key), "must be true or false");
      return std::nullopt;
    }
    return v->get<bool>();
  }

  std::optional<int64_t> integer(const json& parent, const char* key, const std::string& path) {
    const json* v = child(parent, key, join(path, key));
    if (!v) return std::nullopt;
    if (!v->is_number_integer()) {
      fail(join(path, key), "must be an integer");
      return std::nullopt;
    }
    return v->get<int64_t>();
  }

  std::optional<uint16_t> port(const json& parent, const char* key, const std::string& path, bool zero_ok) {
    auto v = integer(parent, key, path);
    if (!v) return std::nullopt;
    if (*v < (zero_ok ? 0 : 1) || *v > 65535) {
      fail(join(path, key), "must be a port number, 1-65535 (it is " + std::to_string(*v) + ")");
      return std::nullopt;
    }
    return static_cast<uint16_t>(*v);
  }

  // Calls `each(item, path)` for every element of an optional array.
  template <class F>
  void array(const json& parent, const char* key, const std::string& path, F each) {
    const json* v = child(parent, key, join(path, key));
    if (!v) return;
    if (!v->is_array()) {
      fail(join(path, key), "must be a list");
      return;
    }
    for (size_t i = 0; i < v->size() && ok(); ++i)
      each((*v)[i], join(path, key) + "[" + std::to_string(i) + "]");
  }

  std::vector<std::string> strings(const json& parent, const char* key, const std::string& path) {
    std::vector<std::string> out;
    array(parent, key, path, [&](const json& item, const std::string& item_path) {
      if (item.is_string())
        out.push_back(item.get<std::string>());
      else
        fail(item_path, "must be a string");
    });
    return out;
  }

  std::map<std::string, std::string> string_map(const json& parent, const char* key, const std::string& path) {
    std::map<std::string, std::string> out;
    const json* v = child(parent, key, join(path, key));
    if (!v) return out;
    if (!v->is_object()) {
      fail(join(path, key), "must be a map");
      return out;
    }
    for (const auto& [k, item] : v->items()) {
      if (item.is_string())
        out[k] = item.get<std::string>();
      else
        fail(join(path, key) + "." + k, "must be a string");
    }
    return out;
  }

  void fail(const std::string& path, const std::string& message) {
    if (problem_.empty()) problem_ = path + " " + message;
  }
  bool ok() const { return problem_.empty(); }
  void name(const std::string& key) { what_ += " " + key; }
  Error error() const { return Error{what_ + ": " + problem_}; }

 private:
  std::string what_;
  std::string problem_;
};

Result<ObjectRef> read_ref(Reader& r, const json& object) {
  ObjectRef ref;
  const json* meta = r.child(object, "metadata", "");
  if (meta) {
    ref.ns = r.string(*meta, "namespace", "metadata");
    ref.name = r.string(*meta, "name", "metadata");
  }
  if (r.ok() && (ref.ns.empty() || ref.name.empty())) r.fail("metadata", "needs a namespace and a name");
  if (!r.ok()) return r.error();
  return ref;
}

ServicePort read_service_port(Reader& r, const json& item, const std::string& path) {
  ServicePort p;
  p.name = r.string(item, "name", path);
  p.protocol = r.string(item, "protocol", path, "TCP");
  p.port = r.port(item, "port", path, false).value_or(0);
  if (r.ok() && p.port == 0) r.fail(path + ".port", "is missing");
  p.node_port = r.port(item, "nodePort", path, true).value_or(0);
  return p;
}

void read_service_spec(Reader& r, const json& spec, Service& s) {
  s.type = r.string(spec, "type", "spec", "ClusterIP");
  s.cluster_ips = r.strings(spec, "clusterIPs", "spec");
  if (s.cluster_ips.empty()) {
    std::string single = r.string(spec, "clusterIP", "spec");
    if (!single.empty()) s.cluster_ips.push_back(single);
  }
  s.external_ips = r.strings(spec, "externalIPs", "spec");
  r.array(spec, "ports", "spec", [&](const json& item, const std::string& path) {
    s.ports.push_back(read_service_port(r, item, path));
  });
  s.session_affinity_client_ip = r.string(spec, "sessionAffinity", "spec") == "ClientIP";
  if (const json* cfg = r.child(spec, "sessionAffinityConfig", "spec.sessionAffinityConfig")) {
    if (const json* cip = r.child(*cfg, "clientIP", "spec.sessionAffinityConfig.clientIP")) {
      auto t = r.integer(*cip, "timeoutSeconds", "spec.sessionAffinityConfig.clientIP");
      if (t && (*t < 1 || *t > 86400))
        r.fail("spec.sessionAffinityConfig.clientIP.timeoutSeconds", "must be 1-86400");
      else if (t)
        s.session_affinity_timeout = static_cast<uint32_t>(*t);
    }
  }
  s.external_traffic_local = r.string(spec, "externalTrafficPolicy", "spec") == "Local";
  s.internal_traffic_local = r.string(spec, "internalTrafficPolicy", "spec") == "Local";
  s.prefer_close = r.string(spec, "trafficDistribution", "spec") == "PreferClose";
}

Endpoint read_endpoint(Reader& r, const json& item, const std::string& path) {
  Endpoint e;
  e.addresses = r.strings(item, "addresses", path);
  if (const json* c = r.child(item, "conditions", path + ".conditions")) {
    e.conditions.ready = r.boolean(*c, "ready", path + ".conditions");
    e.conditions.serving = r.boolean(*c, "serving", path + ".conditions");
    e.conditions.terminating = r.boolean(*c, "terminating", path + ".conditions");
  }
  e.node_name = r.string(item, "nodeName", path);
  e.zone = r.string(item, "zone", path);
  if (const json* hints = r.child(item, "hints", path + ".hints")) {
    r.array(*hints, "forZones", path + ".hints", [&](const json& z, const std::string& zpath) {
      e.hint_zones.push_back(r.string(z, "name", zpath));
    });
  }
  return e;
}

EndpointPort read_endpoint_port(Reader& r, const json& item, const std::string& path) {
  EndpointPort p;
  p.name = r.string(item, "name", path);
  p.protocol = r.string(item, "protocol", path, "TCP");
  p.port = r.port(item, "port", path, false);
  return p;
}

}  // namespace

Result<ObjectRef> parse_ref(const json& object) {
  Reader r("object");
  return read_ref(r, object);
}

Result<Service> parse_service(const json& object) {
  Reader r("Service");
  auto ref = read_ref(r, object);
  if (!ref) return ref.error();
  r.name(ref->key());
  Service s;
  s.ns = ref->ns;
  s.name = ref->name;
  const json& meta = object["metadata"];
  s.resource_version = r.string(meta, "resourceVersion", "metadata");
  s.labels = r.string_map(meta, "labels", "metadata");
  s.annotations = r.string_map(meta, "annotations", "metadata");
  if (const json* spec = r.child(object, "spec", "spec"))
    read_service_spec(r, *spec, s);
  else if (r.ok())
    r.fail("spec", "is missing");
  if (const json* status = r.child(object, "status", "status"))
    if (const json* lb = r.child(*status, "loadBalancer", "status.loadBalancer"))
      r.array(*lb, "ingress", "status.loadBalancer", [&](const json& item, const std::string& path) {
        std::string ip = r.string(item, "ip", path);
        if (!ip.empty()) s.load_balancer_ips.push_back(ip);
      });
  if (!r.ok()) return r.error();
  return s;
}

Result<EndpointSlice> parse_endpoint_slice(const json& object) {
  Reader r("EndpointSlice");
  auto ref = read_ref(r, object);
  if (!ref) return ref.error();
  r.name(ref->key());
  EndpointSlice s;
  s.ns = ref->ns;
  s.name = ref->name;
  const json& meta = object["metadata"];
  s.resource_version = r.string(meta, "resourceVersion", "metadata");
  auto labels = r.string_map(meta, "labels", "metadata");
  s.service_name = labels["kubernetes.io/service-name"];
  s.address_type = r.string(object, "addressType", "");
  if (r.ok() && s.address_type.empty()) r.fail("addressType", "is missing");
  r.array(object, "endpoints", "", [&](const json& item, const std::string& path) {
    s.endpoints.push_back(read_endpoint(r, item, path));
  });
  r.array(object, "ports", "", [&](const json& item, const std::string& path) {
    s.ports.push_back(read_endpoint_port(r, item, path));
  });
  if (!r.ok()) return r.error();
  return s;
}

}  // namespace xlb::k8s
