#include "api/advice_view.h"

#include "advise/advise.h"
#include "advise/measured.h"

namespace xlb::api {

using nlohmann::json;

namespace {

std::string_view code_of(advise::Verdict v) {
  switch (v) {
    case advise::Verdict::replace: return "replace";
    case advise::Verdict::keep_kube_proxy: return "keep_kube_proxy";
    case advise::Verdict::cannot_run: return "cannot_run";
  }
  return "";
}

std::string needs_text(const advise::Needs& n) {
  std::string out;
  for (const auto& [on, word] : {std::pair{n.l7_policy, "l7"}, {n.observability, "observability"}, {n.mesh, "mesh"}})
    if (on) out += (out.empty() ? "" : ", ") + std::string(word);
  return out.empty() ? "none" : out;
}

}  // namespace

json advice_json(const Snapshot& snapshot, const std::filesystem::path& saved_file) {
  advise::Inputs in;
  json inputs = json::array();
  auto show = [&](std::string name, std::string value, std::string source) {
    inputs.push_back({{"input", std::move(name)}, {"value", std::move(value)}, {"source", std::move(source)}});
  };
  in.kernel = snapshot.node.kernel;
  show("kernel", in.kernel, "uname");
  for (const auto& c : snapshot.node.preflight)
    if (!c.ok) in.preflight_failures.push_back(c.name + ": " + c.detail);
  show("preflight",
       snapshot.node.preflight.empty()       ? "not run (shadow mode loads nothing)"
       : in.preflight_failures.empty() ? "pass"
                                       : std::to_string(in.preflight_failures.size()) + " failed",
       "xlbd's checks at start");
  in.services = static_cast<uint32_t>(snapshot.services.size());
  show("services", std::to_string(in.services), "xlbd (revision " + std::to_string(snapshot.revision) + ")");

  std::vector<std::string> problems;
  auto saved = advise::load(saved_file);
  if (!saved) problems.push_back("the last measurement is unreadable: " + saved.error().message);
  const advise::Saved* s = saved && saved->has_value() ? &**saved : nullptr;
  const std::string from = s ? "xlbctl advise --measure, " + s->measured.measured_at : "";
  if (s) {
    in.nodes = s->nodes;
    in.kube_proxy_mode = s->kube_proxy_mode;
    in.kube_proxy_services = s->kube_proxy_services;
    in.needs = s->needs;
    in.measured = s->measured;
  }
  show("nodes", in.nodes ? std::to_string(*in.nodes) : "unknown",
       s ? from : "xlbd does not list nodes: xlbctl advise --measure records them");
  show("kube-proxy",
       !s ? "not read" : in.kube_proxy_mode.empty() ? "none found"
                                                    : in.kube_proxy_mode + " mode, " +
                                                          std::to_string(in.kube_proxy_services) + " services",
       s ? from : "xlbctl advise reads this node's rules");
  show("needs", needs_text(in.needs), s ? from : "xlbctl advise --need");
  show("crossover",
       !s ? "not measured"
          : s->measured.crossover ? std::to_string(*s->measured.crossover) + " services"
                                  : "none up to " + std::to_string(s->measured.largest()) + " services",
       s ? from : "xlbctl advise --measure (as root, about a minute)");

  auto advice = advise::decide(in);
  for (auto& p : problems) advice.notes.push_back(std::move(p));
  return {{"verdict", std::string(advise::to_string(advice.verdict))},
          {"verdict_code", std::string(code_of(advice.verdict))},
          {"reason", advice.reason},
          {"notes", advice.notes},
          {"inputs", inputs},
          {"measured", s ? advise::to_json(s->measured) : json(nullptr)}};
}

}  // namespace xlb::api
