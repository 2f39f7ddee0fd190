#include "advise/measured.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <system_error>

namespace xlb::advise {

using nlohmann::json;

json to_json(const Measured& m) {
  json points = json::array();
  for (const auto& p : m.points)
    points.push_back({{"services", p.services},
                      {"socket_lb_p50_us", p.socket_lb_p50_us},
                      {"iptables_p50_us", p.iptables_p50_us},
                      {"socket_lb_load_s", p.socket_lb_load_s},
                      {"iptables_load_s", p.iptables_load_s}});
  return {{"points", points},
          {"crossover", m.crossover ? json(*m.crossover) : json(nullptr)},
          {"margin", kClearMargin},
          {"measured_at", m.measured_at},
          {"kernel", m.kernel},
          {"seconds", m.seconds}};
}

json to_json(const Saved& s) {
  json needs = json::array();
  if (s.needs.l7_policy) needs.push_back("l7");
  if (s.needs.observability) needs.push_back("observability");
  if (s.needs.mesh) needs.push_back("mesh");
  return {{"measured", to_json(s.measured)},
          {"nodes", s.nodes ? json(*s.nodes) : json(nullptr)},
          {"kube_proxy_mode", s.kube_proxy_mode},
          {"kube_proxy_services", s.kube_proxy_services},
          {"needs", needs}};
}

Result<Saved> saved_from_json(const json& j) {
  try {
    Saved s;
    const json& m = j.at("measured");
    for (const auto& p : m.at("points"))
      s.measured.points.push_back({p.at("services").get<uint32_t>(), p.at("socket_lb_p50_us").get<double>(),
                                   p.at("iptables_p50_us").get<double>(), p.value("socket_lb_load_s", 0.0),
                                   p.value("iptables_load_s", 0.0)});
    // Recomputed rather than trusted: a file from an older rule still reads the same way.
    s.measured.crossover = crossover(s.measured.points);
    s.measured.measured_at = m.value("measured_at", "");
    s.measured.kernel = m.value("kernel", "");
    s.measured.seconds = m.value("seconds", 0.0);
    if (j.contains("nodes") && j["nodes"].is_number_unsigned()) s.nodes = j["nodes"].get<uint32_t>();
    s.kube_proxy_mode = j.value("kube_proxy_mode", "");
    s.kube_proxy_services = j.value("kube_proxy_services", 0u);
    for (const auto& n : j.value("needs", json::array())) {
      if (n == "l7") s.needs.l7_policy = true;
      if (n == "observability") s.needs.observability = true;
      if (n == "mesh") s.needs.mesh = true;
    }
    return s;
  } catch (const json::exception& e) {
    return Error{std::string("not a measurement xlbctl advise --measure wrote: ") + e.what()};
  }
}

Status save(const std::filesystem::path& file, const Saved& saved) {
  const std::filesystem::path temporary = file.string() + ".new";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << to_json(saved).dump(2) << "\n";
    out.close();
    if (!out) return Error{"cannot write " + temporary.string() + " (is the state directory there and writable?)"};
  }
  std::error_code ec;
  std::filesystem::permissions(temporary, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                               ec);
  std::filesystem::rename(temporary, file, ec);
  if (ec) {
    std::filesystem::remove(temporary, ec);
    return Error{"cannot write " + file.string() + ": " + ec.message()};
  }
  return {};
}

Result<std::optional<Saved>> load(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) {
    if (!std::filesystem::exists(file)) return std::optional<Saved>();
    return Error{"cannot read " + file.string()};
  }
  std::stringstream text;
  text << in.rdbuf();
  const json j = json::parse(text.str(), nullptr, false);
  if (j.is_discarded()) return Error{file.string() + " is not JSON"};
  auto saved = saved_from_json(j);
  if (!saved) return Error{file.string() + ": " + saved.error().message};
  return std::optional<Saved>(std::move(*saved));
}

}  // namespace xlb::advise
