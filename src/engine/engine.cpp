#include "engine/engine.h"

#include "model/diff.h"

namespace xlb::engine {

Status Engine::restore() {
  auto latest = store_.latest_revision();
  if (!latest) return latest.error();
  if (!*latest) return {};
  catalog_ = std::move((*latest)->catalog);
  revision_ = (*latest)->id;
  log_.info("restored revision " + std::to_string(revision_) + " (" + std::to_string(catalog_.services.size()) +
            " services) from the state database");
  return {};
}

Result<Applied> Engine::apply(const model::Catalog& catalog, std::string_view source) {
  const auto changes = model::diff(catalog_, catalog);
  if (changes.empty() && revision_ != 0) return Applied{false, revision_, "no change"};
  const std::string summary = revision_ == 0 && changes.empty() ? "empty catalog" : changes.summary();
  auto id = store_.record_revision(source, summary, catalog);
  if (!id) return Error{"the catalog was not applied: " + id.error().message};
  catalog_ = catalog;
  revision_ = *id;
  return Applied{true, revision_, summary};
}

}  // namespace xlb::engine
