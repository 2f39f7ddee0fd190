// xlbctl diff kube-proxy: what kube-proxy's rules on this node serve against what xlb would
// serve, so that an operator knows before a takeover whether any connection would go elsewhere.
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "kubeproxy/kubeproxy.h"
#include "model/json.h"
#include "xlbctl/commands.h"
#include "xlbctl/kube_proxy.h"

namespace xlb::ctl {

namespace {

// The output of a command run through the shell, or why it failed. The commands are fixed
// strings of ours: no input of the user's reaches the shell.
Result<std::string> run_command(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((command + " 2>/dev/null").c_str(), "r"), pclose);
  if (!pipe) return Error{"cannot run " + command};
  std::string out;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe.get())) > 0;) out.append(buffer, n);
  const int status = pclose(pipe.release());
  if (status != 0) return Error{command + " failed (exit status " + std::to_string(WEXITSTATUS(status)) + ")"};
  return out;
}

Result<std::string> read_file(const std::string& path) {
  if (path == "-") {
    std::ostringstream in;
    in << std::cin.rdbuf();
    return in.str();
  }
  std::ifstream in(path);
  if (!in) return Error{"cannot read " + path};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Answer<model::Catalog> xlb_catalog(const Context& ctx, uint64_t& revision) {
  const auto body = get_json(ctx, "/api/v1/services");
  if (!body.ok()) return body.failure();
  revision = body->value("revision", uint64_t{0});
  auto catalog = model::catalog_from_json(*body);
  if (!catalog) return Failure{kExitFailed, "xlbd's services did not parse: " + catalog.error().message};
  return *catalog;
}

size_t frontend_count(const model::Catalog& c, bool kubernetes_only) {
  size_t n = 0;
  for (const auto& s : c.services)
    if (!kubernetes_only || s.source == "kubernetes") n += s.frontends.size();
  return n;
}

void print_json_report(const Context& ctx, const kubeproxy::Rules& rules, const model::Catalog& xlb, uint64_t revision,
                       const std::vector<kubeproxy::Finding>& findings) {
  json list = json::array();
  for (const auto& f : findings)
    list.push_back({{"kind", kubeproxy::to_string(f.kind)}, {"service", f.service}, {"frontend", f.frontend},
                    {"message", f.message}});
  print_json(ctx, {{"agree", findings.empty()},
                   {"layout", kubeproxy::to_string(rules.layout)},
                   {"kube_proxy", {{"services", rules.catalog.services.size()}, {"frontends", frontend_count(rules.catalog, false)}}},
                   {"xlb", {{"revision", revision}, {"frontends", frontend_count(xlb, true)}}},
                   {"findings", std::move(list)},
                   {"warnings", rules.warnings}});
}

void print_text_report(const Context& ctx, const kubeproxy::Rules& rules, const model::Catalog& xlb, uint64_t revision,
                       const std::vector<kubeproxy::Finding>& findings) {
  ctx.out << "kube-proxy (" << kubeproxy::to_string(rules.layout) << " rules): " << frontend_count(rules.catalog, false)
          << " frontends; xlb (revision " << revision << "): " << frontend_count(xlb, true)
          << " frontends from Kubernetes\n";
  for (const auto& w : rules.warnings) ctx.out << "note: " << w << "\n";
  if (findings.empty()) {
    ctx.out << "agree: every frontend goes to the same endpoints under both\n";
    return;
  }
  ctx.out << findings.size() << (findings.size() == 1 ? " difference" : " differences")
          << " (a takeover now would change where these connections go):\n";
  for (const auto& f : findings)
    ctx.out << "\n  " << f.service << "  " << f.frontend << "  [" << kubeproxy::to_string(f.kind) << "]\n    "
            << f.message << "\n";
}

// The IPv4 and IPv6 rules of one layout: iptables (kube-proxy has chains in the nat table),
// else nftables. A family without kube-proxy's rules (single stack) adds nothing.
Result<std::string> node_rules() {
  std::string text;
  for (const char* command : {"iptables-save -t nat", "ip6tables-save -t nat"})
    if (auto t = run_command(command); t && t->find("KUBE-SERVICES") != std::string::npos) text += *t;
  if (!text.empty()) return text;
  for (const char* command : {"nft list table ip kube-proxy", "nft list table ip6 kube-proxy"})
    if (auto t = run_command(command)) text += *t;
  if (!text.empty()) return text;
  return Error{"neither iptables-save nor nft shows kube-proxy's rules"};
}

}  // namespace

Answer<kubeproxy::Rules> read_kube_proxy_rules(const std::string& rules_file) {
  Result<std::string> text = rules_file.empty() ? node_rules() : read_file(rules_file);
  if (!text) return Failure{kExitFailed, "cannot read kube-proxy's rules: " + text.error().message};
  auto rules = kubeproxy::parse(*text);
  if (!rules)
    return Failure{kExitFailed, "kube-proxy's rules " + (rules_file.empty() ? std::string("on this node") : "in " + rules_file) +
                                    ": " + rules.error().message +
                                    (rules_file.empty() ? " (is kube-proxy running here? --rules FILE reads a saved copy)" : "")};
  return *rules;
}

Answer<std::vector<kubeproxy::Finding>> diff_kube_proxy(const Context& ctx, const kubeproxy::Rules& rules, bool print) {
  uint64_t revision = 0;
  const auto catalog = xlb_catalog(ctx, revision);
  if (!catalog.ok()) return catalog.failure();
  auto findings = kubeproxy::compare(rules, *catalog);
  if (!print) return findings;
  if (ctx.output == Output::json)
    print_json_report(ctx, rules, *catalog, revision, findings);
  else
    print_text_report(ctx, rules, *catalog, revision, findings);
  return findings;
}

int diff(const Context& ctx, const Args& args, const CommandOptions& options) {
  if (args.size() != 1 || args[0] != "kube-proxy") return usage_error(ctx, "diff", "expects \"kube-proxy\"");
  const auto rules = read_kube_proxy_rules(options.rules);
  if (!rules.ok()) return report(ctx, rules.failure());
  const auto findings = diff_kube_proxy(ctx, *rules, true);
  if (!findings.ok()) return report(ctx, findings.failure());
  return findings->empty() ? kExitOk : kExitFailed;
}

}  // namespace xlb::ctl
