// Kubernetes objects as the API server's JSON (one object, an array, or a List's "items"): each
// one through parse_ref, parse_service and parse_endpoint_slice, then everything that parsed
// through translate. None of them may throw or crash on any JSON; translate must give the same
// catalog whatever the order of its objects, as translate.h promises (the source keeps objects
// by key, so the fuzzer's objects are too: one per key, first wins).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "k8s/objects.h"
#include "k8s/translate.h"

namespace {

using nlohmann::json;
using namespace xlb;

const k8s::TranslateOptions& options() {
  static const k8s::TranslateOptions o = [] {
    k8s::TranslateOptions t;
    t.node_name = "node-a";
    t.zone = "zone-a";
    t.node_addresses = {*model::IpAddress::parse("192.0.2.11"), *model::IpAddress::parse("2001:db8::11")};
    return t;
  }();
  return o;
}

template <typename T>
std::vector<T> reversed(std::vector<T> v) {
  std::reverse(v.begin(), v.end());
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const json input = json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (input.is_discarded()) return 0;
  const json* items = &input;
  if (input.is_object() && input.contains("items")) items = &input["items"];
  std::vector<json> objects;
  if (items->is_array())
    objects.assign(items->begin(), items->end());
  else
    objects.push_back(*items);

  std::vector<k8s::Service> services;
  std::vector<k8s::EndpointSlice> slices;
  std::set<std::string> service_keys, slice_keys;
  for (const json& object : objects) {
    (void)k8s::parse_ref(object);
    if (auto s = k8s::parse_service(object); s && service_keys.insert(s->key()).second) services.push_back(*s);
    if (auto e = k8s::parse_endpoint_slice(object); e && slice_keys.insert(e->key()).second) slices.push_back(*e);
  }

  const k8s::Translation forward = k8s::translate(services, slices, options());
  const k8s::Translation backward = k8s::translate(reversed(services), reversed(slices), options());
  if (!(forward.catalog == backward.catalog)) {
    std::fprintf(stderr, "k8s_objects_fuzz: the catalog depends on the order of the objects\n");
    std::abort();
  }
  // The merge validates what translate gives (engine/merge.cpp); that must not crash either.
  for (const auto& problem : model::validate(forward.catalog)) (void)problem.location.describe(forward.catalog);
  return 0;
}
