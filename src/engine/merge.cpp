#include "engine/merge.h"

#include <optional>
#include <utility>

namespace xlb::engine {
namespace {

std::string origin(const model::Service& s) {
  return (s.source.empty() ? std::string("config") : s.source) + " service \"" + s.name + "\"";
}

}  // namespace

Merged SourceMerger::merge(const model::Catalog& config, const model::Catalog& kubernetes) {
  *this = SourceMerger{};
  Merged out;
  out.catalog = config;
  for (const auto& s : config.services) {
    config_names_.insert(s.name);
    for (const auto& f : s.frontends) claims_.emplace(FrontendKey{f.address, f.port, f.protocol}, origin(s));
  }
  for (const auto& s : kubernetes.services) {
    kubernetes_.insert_or_assign(s.name, s);
    if (auto merged = admit(s)) out.catalog.services.push_back(std::move(*merged));
  }
  out.conflicts = all_conflicts();
  return out;
}

MergedChanges SourceMerger::change_kubernetes(const model::CatalogChanges& changes) {
  // What may change: the services named, and those left out (a frontend they wanted may be free).
  std::set<std::string, std::less<>> affected;
  for (const auto& s : changes.upserted) affected.insert(s.name);
  for (const auto& name : changes.removed) affected.insert(name);
  for (const auto& [name, list] : conflicts_) affected.insert(name);
  std::set<std::string, std::less<>> was_in;
  for (const auto& name : affected)
    if (admitted_.count(name)) {
      was_in.insert(name);
      release(name);
    }
  for (const auto& s : changes.upserted) kubernetes_.insert_or_assign(s.name, s);
  for (const auto& name : changes.removed) kubernetes_.erase(name);

  MergedChanges out;
  for (const auto& name : affected) {
    auto source = kubernetes_.find(name);
    std::optional<model::Service> merged;
    if (source != kubernetes_.end()) merged = admit(source->second);
    if (merged)
      out.changes.upserted.push_back(std::move(*merged));
    else if (was_in.count(name))
      out.changes.removed.push_back(name);
  }
  out.conflicts = all_conflicts();
  return out;
}

std::optional<model::Service> SourceMerger::admit(model::Service s) {
  const std::string name = s.name;
  std::vector<std::string> conflicts;
  std::optional<model::Service> result;
  if (config_names_.count(s.name)) {
    conflicts.push_back(origin(s) + " has the name of a config service; the config's is kept");
  } else {
    std::vector<model::Frontend> kept;
    std::vector<FrontendKey> claimed;
    for (const auto& f : s.frontends) {
      const FrontendKey key{f.address, f.port, f.protocol};
      auto [it, inserted] = claims_.emplace(key, origin(s));
      if (inserted) {
        kept.push_back(f);
        claimed.push_back(key);
      } else {
        conflicts.push_back("frontend " + f.to_string() + " is claimed by " + it->second + " and by " + origin(s) +
                            "; " + it->second + " keeps it");
      }
    }
    s.frontends = std::move(kept);
    // A service the model rejects here (say dsr with a port change) stays out alone.
    const auto problems = s.frontends.empty() ? std::vector<model::Problem>{} : model::validate(model::Catalog{{s}});
    if (!problems.empty()) conflicts.push_back(origin(s) + " is left out: " + problems.front().message);
    if (s.frontends.empty() || !problems.empty()) {
      for (const auto& key : claimed) claims_.erase(key);
    } else {
      admitted_[name] = std::move(claimed);
      result = std::move(s);
    }
  }
  if (conflicts.empty())
    conflicts_.erase(name);
  else
    conflicts_[name] = std::move(conflicts);
  return result;
}

void SourceMerger::release(const std::string& name) {
  auto it = admitted_.find(name);
  if (it == admitted_.end()) return;
  for (const auto& key : it->second) claims_.erase(key);
  admitted_.erase(it);
}

std::vector<std::string> SourceMerger::all_conflicts() const {
  std::vector<std::string> out;
  for (const auto& [name, list] : conflicts_) out.insert(out.end(), list.begin(), list.end());
  return out;
}

Merged merge_sources(const model::Catalog& config, const model::Catalog& kubernetes) {
  return SourceMerger{}.merge(config, kubernetes);
}

}  // namespace xlb::engine
