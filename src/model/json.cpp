#include "model/json.h"

namespace xlb::model {

using nlohmann::json;

json to_json(const Frontend& f) {
  return {{"address", f.address.to_string()},
          {"port", f.port},
          {"protocol", to_string(f.protocol)},
          {"kind", to_string(f.kind)}};
}

json to_json(const Backend& b) {
  return {{"address", b.address.to_string()}, {"port", b.port},   {"weight", b.weight},
          {"state", to_string(b.state)},      {"node", b.node},   {"zone", b.zone}};
}

json to_json(const Service& s) {
  json frontends = json::array();
  for (const auto& f : s.frontends) frontends.push_back(to_json(f));
  json backends = json::array();
  for (const auto& b : s.backends) backends.push_back(to_json(b));
  json out = {{"name", s.name},
              {"mode", to_string(s.mode)},
              {"frontends", std::move(frontends)},
              {"backends", std::move(backends)},
              {"health",
               {{"type", to_string(s.health.type)},
                {"interval_ms", s.health.interval.count()},
                {"timeout_ms", s.health.timeout.count()},
                {"rise", s.health.rise},
                {"fall", s.health.fall},
                {"http_path", s.health.http_path},
                {"expect_status", s.health.expect_status},
                {"port", s.health.port},
                {"slow_factor", s.health.slow_factor}}}};
  if (s.maglev_table_size) out["maglev_table_size"] = *s.maglev_table_size;
  if (!s.source.empty()) out["source"] = s.source;
  if (s.affinity.client_ip) out["affinity"] = {{"type", "client-ip"}, {"timeout_s", s.affinity.timeout.count()}};
  return out;
}

json to_json(const Catalog& c) {
  json services = json::array();
  for (const auto& s : c.services) services.push_back(to_json(s));
  return {{"services", std::move(services)}};
}

json to_json(const CatalogChanges& c) {
  json upserted = json::array();
  for (const auto& s : c.upserted) upserted.push_back(to_json(s));
  return {{"upserted", std::move(upserted)}, {"removed", c.removed}};
}

namespace {

std::string_view to_string(ServiceChange::Kind kind) {
  switch (kind) {
    case ServiceChange::Kind::added: return "added";
    case ServiceChange::Kind::removed: return "removed";
    case ServiceChange::Kind::changed: return "changed";
  }
  return "changed";
}

}  // namespace

json to_json(const std::vector<ServiceChange>& changes) {
  json out = json::array();
  for (const auto& c : changes) out.push_back({{"kind", to_string(c.kind)}, {"service", c.service}, {"details", c.details}});
  return out;
}

namespace {

template <class E>
E enum_field(const json& j, const char* key, std::optional<E> (*parse)(std::string_view)) {
  const auto text = j.at(key).get<std::string>();
  if (auto v = parse(text)) return *v;
  throw std::invalid_argument(std::string(key) + " \"" + text + "\" is not known");
}

IpAddress address_field(const json& j) {
  auto a = IpAddress::parse(j.at("address").get<std::string>());
  if (!a) throw std::invalid_argument(a.error().message);
  return *a;
}

Service service_from_json(const json& j) {
  Service s;
  s.name = j.at("name").get<std::string>();
  s.source = j.value("source", "");
  s.mode = enum_field(j, "mode", parse_forwarding_mode);
  for (const auto& f : j.at("frontends"))
    s.frontends.push_back({address_field(f), f.at("port").get<uint16_t>(),
                           enum_field(f, "protocol", parse_protocol),
                           enum_field(f, "kind", parse_frontend_kind)});
  for (const auto& b : j.at("backends"))
    s.backends.push_back({address_field(b), b.at("port").get<uint16_t>(),
                          b.at("weight").get<uint32_t>(), enum_field(b, "state", parse_backend_state),
                          b.value("node", ""), b.value("zone", "")});
  const auto& h = j.at("health");
  s.health.type = enum_field(h, "type", parse_health_check_type);
  s.health.interval = std::chrono::milliseconds(h.at("interval_ms").get<int64_t>());
  s.health.timeout = std::chrono::milliseconds(h.at("timeout_ms").get<int64_t>());
  // Revisions recorded before rise and fall existed hold neither: they had the defaults.
  s.health.rise = h.value("rise", HealthCheck{}.rise);
  s.health.fall = h.value("fall", HealthCheck{}.fall);
  s.health.http_path = h.value("http_path", HealthCheck{}.http_path);
  s.health.port = h.value("port", HealthCheck{}.port);
  s.health.expect_status = h.value("expect_status", HealthCheck{}.expect_status);
  s.health.slow_factor = h.value("slow_factor", HealthCheck{}.slow_factor);
  if (j.contains("maglev_table_size")) s.maglev_table_size = j["maglev_table_size"].get<uint32_t>();
  if (j.contains("affinity")) {
    s.affinity.client_ip = true;
    s.affinity.timeout = std::chrono::seconds(j["affinity"].at("timeout_s").get<int64_t>());
  }
  return s;
}

}  // namespace

Result<Catalog> catalog_from_json(const json& j) {
  try {
    Catalog c;
    for (const auto& s : j.at("services")) c.services.push_back(service_from_json(s));
    return c;
  } catch (const std::exception& e) {
    return Error{std::string("malformed catalog snapshot: ") + e.what()};
  }
}

Result<CatalogChanges> changes_from_json(const json& j) {
  try {
    CatalogChanges c;
    for (const auto& s : j.at("upserted")) c.upserted.push_back(service_from_json(s));
    c.removed = j.at("removed").get<std::vector<std::string>>();
    return c;
  } catch (const std::exception& e) {
    return Error{std::string("malformed catalog change: ") + e.what()};
  }
}

Result<std::vector<ServiceChange>> service_changes_from_json(const json& j) {
  try {
    std::vector<ServiceChange> out;
    for (const auto& c : j) {
      const auto kind = c.at("kind").get<std::string>();
      const auto k = kind == "added"     ? ServiceChange::Kind::added
                     : kind == "removed" ? ServiceChange::Kind::removed
                     : kind == "changed" ? ServiceChange::Kind::changed
                                         : throw std::invalid_argument("kind \"" + kind + "\" is not known");
      out.push_back({k, c.at("service").get<std::string>(), c.at("details").get<std::vector<std::string>>()});
    }
    return out;
  } catch (const std::exception& e) {
    return Error{std::string("malformed list of changes: ") + e.what()};
  }
}

}  // namespace xlb::model
