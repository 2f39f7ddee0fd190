#include "model/diff.h"

#include <string_view>
#include <unordered_map>

#include <map>

namespace xlb::model {

namespace {

std::string describe(const Backend& b) {
  std::string s = b.key();
  if (b.weight != 1) s += " weight " + std::to_string(b.weight);
  if (b.state != BackendState::active) s += " " + std::string(to_string(b.state));
  return s;
}

void diff_frontends(const Service& a, const Service& b, std::vector<std::string>& out) {
  auto contains = [](const std::vector<Frontend>& list, const Frontend& f) {
    for (const auto& x : list)
      if (x == f) return true;
    return false;
  };
  for (const auto& f : b.frontends)
    if (!contains(a.frontends, f)) out.push_back("+frontend " + f.to_string());
  for (const auto& f : a.frontends)
    if (!contains(b.frontends, f)) out.push_back("-frontend " + f.to_string());
}

void diff_backends(const Service& a, const Service& b, std::vector<std::string>& out) {
  std::map<std::string, const Backend*> before;
  for (const auto& x : a.backends) before[x.key()] = &x;
  for (const auto& x : b.backends) {
    auto it = before.find(x.key());
    if (it == before.end()) {
      out.push_back("+backend " + describe(x));
      continue;
    }
    if (!(*it->second == x)) out.push_back("~backend " + describe(*it->second) + " -> " + describe(x));
    before.erase(it);
  }
  for (const auto& [key, x] : before) out.push_back("-backend " + describe(*x));
}

std::vector<std::string> diff_service(const Service& a, const Service& b) {
  std::vector<std::string> out;
  if (a.mode != b.mode)
    out.push_back("mode " + std::string(to_string(a.mode)) + " -> " + std::string(to_string(b.mode)));
  diff_frontends(a, b, out);
  diff_backends(a, b, out);
  if (a.health != b.health) out.push_back("health check changed");
  if (a.affinity != b.affinity) out.push_back("affinity changed");
  if (a.maglev_table_size != b.maglev_table_size) out.push_back("maglev table size changed");
  return out;
}

}  // namespace

CatalogDiff diff(const Catalog& before, const Catalog& after) {
  CatalogDiff d;
  // Indexed by name: catalogs of tens of thousands of services are diffed at every change.
  std::unordered_map<std::string_view, const Service*> old_by_name, new_by_name;
  for (const auto& s : before.services) old_by_name.emplace(s.name, &s);
  for (const auto& s : after.services) new_by_name.emplace(s.name, &s);
  for (const auto& s : after.services) {
    auto found = old_by_name.find(s.name);
    const Service* old = found == old_by_name.end() ? nullptr : found->second;
    if (!old) {
      d.changes.push_back({ServiceChange::Kind::added, s.name, {}});
    } else if (!(*old == s)) {
      d.changes.push_back({ServiceChange::Kind::changed, s.name, diff_service(*old, s)});
    }
  }
  for (const auto& s : before.services)
    if (!new_by_name.count(s.name)) d.changes.push_back({ServiceChange::Kind::removed, s.name, {}});
  return d;
}

std::optional<ServiceChange> diff(const Service* before, const Service* after) {
  if (!before && !after) return std::nullopt;
  if (!before) return ServiceChange{ServiceChange::Kind::added, after->name, {}};
  if (!after) return ServiceChange{ServiceChange::Kind::removed, before->name, {}};
  if (*before == *after) return std::nullopt;
  return ServiceChange{ServiceChange::Kind::changed, after->name, diff_service(*before, *after)};
}

std::string CatalogDiff::summary() const {
  if (changes.empty()) return "no change";
  // A line stays a line: the whole change set of a big sync is in the revision's catalog.
  constexpr size_t kListed = 10;
  std::string out;
  for (size_t i = 0; i < changes.size(); ++i) {
    const auto& c = changes[i];
    if (i == kListed) {
      out += "; and " + std::to_string(changes.size() - kListed) + " more services";
      break;
    }
    if (!out.empty()) out += "; ";
    switch (c.kind) {
      case ServiceChange::Kind::added: out += "+" + c.service; break;
      case ServiceChange::Kind::removed: out += "-" + c.service; break;
      case ServiceChange::Kind::changed: {
        out += "~" + c.service + " (";
        for (size_t d = 0; d < c.details.size(); ++d) out += (d ? ", " : "") + c.details[d];
        out += ")";
        break;
      }
    }
  }
  return out;
}

}  // namespace xlb::model
