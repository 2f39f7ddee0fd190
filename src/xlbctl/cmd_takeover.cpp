// xlbctl takeover | rollback: a canary node from kube-proxy to xlb and back, one checked step at a
// time. At every moment something serves the Services: during takeover kube-proxy's rules stay
// until xlb serves (xlb's socket-LB and XDP act before netfilter), during rollback they are back
// before xlb's datapath leaves.
//
// xlbd's mode is kept in STATE_DIR/mode ("serve" or "shadow"), which xlbd reads at start over the
// config and --shadow: a takeover survives restarts and reboots, and so does a rollback.
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <ostream>
#include <sstream>
#include <thread>

#include "config/config.h"
#include "datapath/datapath.h"
#include "datapath/preflight.h"
#include "xlbctl/commands.h"
#include "xlbctl/kube_proxy.h"

namespace xlb::ctl {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A fixed command of ours (no user input reaches the shell) fed `input` on stdin; its exit status.
int run_with_input(const std::string& command, const std::string& input) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "w"), pclose);
  if (!pipe) return -1;
  fwrite(input.data(), 1, input.size(), pipe.get());
  const int status = pclose(pipe.release());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Result<std::string> output_of(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((command + " 2>/dev/null").c_str(), "r"), pclose);
  if (!pipe) return Error{"cannot run " + command};
  std::string out;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe.get())) > 0;) out.append(buffer, n);
  if (pclose(pipe.release()) != 0) return Error{command + " failed"};
  return out;
}

Status write_file(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  std::ofstream out(tmp, std::ios::trunc);
  out << text;
  out.close();
  if (!out) return Error{"cannot write " + tmp.string()};
  std::error_code ec;
  fs::rename(tmp, path, ec);  // whole or not at all: xlbd may read it at any moment
  if (ec) return Error{"cannot rename " + tmp.string() + ": " + ec.message()};
  return {};
}

void step(const Context& ctx, const std::string& what) { ctx.out << "== " << what << "\n" << std::flush; }

// The PID of a running kube-proxy on this node, 0 when there is none.
long kube_proxy_pid() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    std::ifstream comm(entry.path() / "comm");
    std::string name;
    if (comm >> name && name == "kube-proxy") return std::atol(entry.path().filename().c_str());
  }
  return 0;
}

bool systemd_manages_xlbd() { return std::system("systemctl is-active --quiet xlb.service 2>/dev/null") == 0; }

// What xlbd says its datapath does ("serve"-ing modes or "shadow"), "" while it does not answer.
std::string datapath_mode(const Context& ctx) {
  auto reply = ctx.api.get("/api/v1/node", 2);
  if (!reply || reply->status != 200) return "";
  const auto body = json::parse(reply->body, nullptr, false);
  return body.is_object() ? body.value("datapath_mode", "") : "";
}

// Waits, bounded, until `done` holds; says what it waits for once.
bool wait_until(const Context& ctx, long seconds, const std::string& what, const std::function<bool()>& done) {
  const auto deadline = Clock::now() + std::chrono::seconds(seconds);
  bool said = false;
  while (Clock::now() < deadline) {
    if (done()) return true;
    if (!said) ctx.out << "   waiting up to " << seconds << " s for " << what << "\n" << std::flush;
    said = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return done();
}

Status check_kube_proxy_stopped() {
  const long pid = kube_proxy_pid();
  if (pid == 0) return {};
  return Error{
      "kube-proxy is running on this node (pid " + std::to_string(pid) +
      "). Stop it here first; its rules stay behind and keep serving until xlb does. On kubeadm it is the "
      "kube-proxy DaemonSet: label the node (kubectl label node NODE xlb.io/datapath=xlb) and keep the DaemonSet "
      "off such nodes with a node affinity:\n  kubectl -n kube-system patch daemonset kube-proxy --type merge -p "
      "'{\"spec\":{\"template\":{\"spec\":{\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":"
      "{\"nodeSelectorTerms\":[{\"matchExpressions\":[{\"key\":\"xlb.io/datapath\",\"operator\":\"DoesNotExist\"}]}]}}}}}}}'"};
}

// NodePorts, external and load-balancer IPs are reached from outside the node: without links to
// attach XDP and tc to, xlb would not see that traffic, and removing kube-proxy's rules would cut it off.
Status check_outside_traffic(const Context& ctx, const kubeproxy::Rules& rules) {
  size_t outside = 0;
  for (const auto& s : rules.catalog.services)
    for (const auto& f : s.frontends) outside += f.kind != model::FrontendKind::cluster_ip;
  if (outside == 0) return {};
  auto config = config::load(ctx.config);
  if (config && !config->node.interfaces.empty()) return {};
  return Error{"kube-proxy serves " + std::to_string(outside) +
               " NodePort, external or load-balancer frontends, reached from outside this node, and xlbd's config (" +
               ctx.config + ") names no link to attach to ([node] interfaces): after takeover that traffic would find "
               "nothing. Set [node] interfaces first; nothing was changed"};
}

// Saves what a rollback puts back, then removes kube-proxy's rules as `kube-proxy --cleanup` does,
// IPv4 and IPv6.
Status remove_kube_proxy_rules(const Context& ctx, const kubeproxy::Rules& rules) {
  const fs::path dir = ctx.state_dir;
  std::error_code ec;  // a copy of an earlier takeover (another layout, another family) must not be restored
  for (const char* name : {"kube-proxy.ip.restore", "kube-proxy.ip6.restore", "kube-proxy.nft"}) fs::remove(dir / name, ec);
  if (rules.layout == kubeproxy::Layout::nftables) {
    std::string saved;
    for (const std::string family : {"ip", "ip6"}) {
      auto text = output_of("nft list table " + family + " kube-proxy");
      if (!text) continue;  // single stack
      saved += *text;
      if (std::system(("nft delete table " + family + " kube-proxy").c_str()) != 0)
        return Error{"nft delete table " + family + " kube-proxy failed"};
      ctx.out << "   deleted table " << family << " kube-proxy\n";
    }
    return write_file(dir / "kube-proxy.nft", saved);
  }
  for (const std::string family : {"ip", "ip6"}) {
    const std::string tool = family == "ip" ? "iptables" : "ip6tables";
    auto text = output_of(tool + "-save");
    if (!text) continue;  // no IPv6 tables here
    const auto scripts = kubeproxy::iptables_scripts(*text);
    if (scripts.chains == 0) continue;
    const fs::path saved = dir / ("kube-proxy." + family + ".restore");
    if (auto s = write_file(saved, scripts.restore); !s) return s;
    if (run_with_input(tool + "-restore --noflush", scripts.remove) != 0)
      return Error{tool + "-restore --noflush refused the removal of kube-proxy's rules; they are unchanged"};
    ctx.out << "   " << tool << ": removed " << scripts.chains << " chains of kube-proxy and the jumps to them (saved in "
            << saved.string() << ")\n";
  }
  return {};
}

Status restore_kube_proxy_rules(const Context& ctx) {
  if (read_kube_proxy_rules("").ok()) {
    ctx.out << "   kube-proxy's rules are in place already (kube-proxy is back, or they were never removed)\n";
    return {};
  }
  const fs::path dir = ctx.state_dir;
  bool restored = false;
  for (const auto& [file, command] : {std::pair{"kube-proxy.nft", "nft -f -"},
                                      {"kube-proxy.ip.restore", "iptables-restore --noflush"},
                                      {"kube-proxy.ip6.restore", "ip6tables-restore --noflush"}}) {
    std::ifstream in(dir / file);
    if (!in) continue;
    std::ostringstream text;
    text << in.rdbuf();
    if (run_with_input(command, text.str()) != 0)
      return Error{std::string(command) + " refused the saved rules of kube-proxy in " + (dir / file).string()};
    restored = true;
  }
  ctx.out << (restored ? "   kube-proxy's rules are back as they were at takeover\n"
                       : "   no saved rules of kube-proxy in " + ctx.state_dir + ": start kube-proxy to write them\n");
  return {};
}

Status set_mode(const Context& ctx, const std::string& mode) {
  if (auto s = write_file(fs::path(ctx.state_dir) / "mode", mode + "\n"); !s) return s;
  ctx.out << "   " << ctx.state_dir << "/mode: " << mode << "\n";
  return {};
}

int fail(const Context& ctx, const Error& error) { return report(ctx, Failure{kExitFailed, error.message}); }

}  // namespace

int takeover(const Context& ctx, const Args& args, const CommandOptions& options) {
  if (!args.empty()) return usage_error(ctx, "takeover", "takes no arguments");
  if (ctx.output == Output::json) return usage_error(ctx, "takeover", "reports its steps as text only (no -o json)");
  step(ctx, "1/5 preflight: can the datapath run on this node?");
  if (preflight(ctx, {}) != kExitOk) return kExitFailed;

  step(ctx, "2/5 kube-proxy stopped on this node?");
  if (auto s = check_kube_proxy_stopped(); !s) return fail(ctx, s.error());
  ctx.out << "   no kube-proxy process\n";

  step(ctx, "3/5 do kube-proxy's rules and xlb agree?");
  const auto rules = read_kube_proxy_rules(options.rules);
  if (!rules.ok()) return report(ctx, rules.failure());
  const auto findings = diff_kube_proxy(ctx, *rules, true);
  if (!findings.ok()) return report(ctx, findings.failure());
  if (!findings->empty()) return report(ctx, {kExitFailed, "not taking over while they differ; nothing was changed"});
  if (auto s = check_outside_traffic(ctx, *rules); !s) return fail(ctx, s.error());

  step(ctx, "4/5 xlb serves");
  if (auto s = set_mode(ctx, "serve"); !s) return fail(ctx, s.error());
  const std::string mode = datapath_mode(ctx);
  if (mode == "shadow" && systemd_manages_xlbd()) {
    if (std::system("systemctl restart xlb.service") != 0) return fail(ctx, Error{"systemctl restart xlb.service failed"});
  } else if (mode == "shadow") {
    ctx.out << "   restart xlbd now (it reads its mode at start)\n";
  } else if (mode.empty()) {
    ctx.out << "   xlbd does not answer: start it (it reads its mode at start)\n";
  } else {
    ctx.out << "   xlbd serves already\n";
  }
  auto serving = [&] { const auto m = datapath_mode(ctx); return !m.empty() && m != "shadow"; };
  if (!wait_until(ctx, options.wait_s, "xlbd to serve", serving))
    return fail(ctx, Error{"xlbd does not serve yet; kube-proxy's rules are untouched and still serve. Run "
                           "takeover again once xlbd is up, or xlbctl rollback"});
  ctx.out << "   xlbd serves (xdp " << datapath_mode(ctx) << ")\n";

  step(ctx, "5/5 kube-proxy's rules go");
  if (auto s = remove_kube_proxy_rules(ctx, *rules); !s) return fail(ctx, s.error());
  if (read_kube_proxy_rules("").ok()) return fail(ctx, Error{"kube-proxy's rules are still there: is kube-proxy running again?"});
  ctx.out << "done: xlb serves this node's Services; xlbctl rollback undoes it\n";
  return kExitOk;
}

int rollback(const Context& ctx, const Args& args, const CommandOptions& options) {
  if (!args.empty()) return usage_error(ctx, "rollback", "takes no arguments");
  if (ctx.output == Output::json) return usage_error(ctx, "rollback", "reports its steps as text only (no -o json)");
  step(ctx, "1/3 kube-proxy's rules come back (before xlb leaves, so something always serves)");
  if (auto s = restore_kube_proxy_rules(ctx); !s) return fail(ctx, s.error());

  step(ctx, "2/3 xlbd stops serving");
  if (auto s = set_mode(ctx, "shadow"); !s) return fail(ctx, s.error());
  const bool systemd = systemd_manages_xlbd();
  if (systemd && std::system("systemctl stop xlb.service") != 0) return fail(ctx, Error{"systemctl stop xlb.service failed"});
  if (!systemd && !datapath_mode(ctx).empty()) ctx.out << "   stop xlbd now (kill -TERM its pid)\n";
  if (!wait_until(ctx, options.wait_s, "xlbd to stop", [&] { return datapath_mode(ctx).empty(); }))
    return fail(ctx, Error{"xlbd still runs; its datapath stays. Stop it and run rollback again"});

  step(ctx, "3/3 xlb's datapath leaves the kernel");
  std::vector<std::string> interfaces;
  if (auto config = config::load(ctx.config)) interfaces = config->node.interfaces;
  if (auto s = datapath::Datapath::cleanup(options.pin_dir, interfaces); !s) return fail(ctx, s.error());
  ctx.out << "   detached from " << interfaces.size() << " links and the cgroup; " << options.pin_dir << " removed\n";
  if (systemd && std::system("systemctl start xlb.service") != 0) return fail(ctx, Error{"systemctl start xlb.service failed"});
  ctx.out << "done: kube-proxy's rules serve; " << (systemd ? "xlbd runs" : "start xlbd again to run")
          << " in shadow mode. Let kube-proxy back on the node (remove its label xlb.io/datapath)\n";
  return kExitOk;
}

}  // namespace xlb::ctl
