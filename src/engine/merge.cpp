#include "engine/merge.h"

#include <map>
#include <set>
#include <tuple>

namespace xlb::engine {
namespace {

using FrontendKey = std::tuple<model::IpAddress, uint16_t, model::Protocol>;

FrontendKey key_of(const model::Frontend& f) { return {f.address, f.port, f.protocol}; }

std::string origin(const model::Service& s) {
  return (s.source.empty() ? std::string("config") : s.source) + " service \"" + s.name + "\"";
}

}  // namespace

Merged merge_sources(const model::Catalog& config, const model::Catalog& kubernetes) {
  Merged out;
  out.catalog = config;
  std::set<std::string> names;
  std::map<FrontendKey, std::string> claimed;  // frontend -> who has it
  for (const auto& s : config.services) {
    names.insert(s.name);
    for (const auto& f : s.frontends) claimed.emplace(key_of(f), origin(s));
  }
  for (model::Service s : kubernetes.services) {
    if (names.count(s.name)) {
      out.conflicts.push_back(origin(s) + " has the name of a config service; the config's is kept");
      continue;
    }
    std::vector<model::Frontend> kept;
    for (const auto& f : s.frontends) {
      auto [it, inserted] = claimed.emplace(key_of(f), origin(s));
      if (inserted)
        kept.push_back(f);
      else
        out.conflicts.push_back("frontend " + f.to_string() + " is claimed by " + it->second + " and by " + origin(s) +
                                "; " + it->second + " keeps it");
    }
    if (kept.empty()) continue;
    s.frontends = std::move(kept);
    // A service the model rejects here (say dsr with a port change) stays out alone.
    model::Catalog alone{{s}};
    if (auto problems = model::validate(alone); !problems.empty()) {
      out.conflicts.push_back(origin(s) + " is left out: " + problems.front().message);
      continue;
    }
    names.insert(s.name);
    out.catalog.services.push_back(std::move(s));
  }
  return out;
}

}  // namespace xlb::engine
