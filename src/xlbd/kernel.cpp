#include "xlbd/kernel.h"

#include <algorithm>
#include <fstream>
#include <tuple>

#include "datapath/cgroup.h"
#include "datapath/preflight.h"

namespace xlb::xlbd {

Status preflight(const config::NodeConfig& node, const std::filesystem::path& pin_dir, const Logger& log) {
  datapath::PreflightOptions options;
  options.interfaces = node.interfaces;
  options.socket_lb = node.cgroup != "off";
  options.routes = node.routes_packets();
  options.tc_balancer = node.xdp_mode == config::XdpMode::tc;
  options.pin_dir = pin_dir;
  std::string failed;
  for (const auto& check : datapath::run_preflight(options)) {
    const std::string line = "preflight: " + check.name + ": " + check.detail + (check.fix.empty() ? "" : "; " + check.fix);
    if (check.outcome == datapath::PreflightCheck::Outcome::fail)
      failed += "\n" + line;
    else if (check.outcome == datapath::PreflightCheck::Outcome::warn)
      log.warning(line);
  }
  if (!failed.empty()) return Error{"this node lacks what the datapath needs (xlbctl preflight says the same):" + failed};
  return {};
}

Result<datapath::Datapath> load_datapath(const config::NodeConfig& node, const std::filesystem::path& pin_dir,
                                         const Logger& log) {
  if (auto s = preflight(node, pin_dir, log); !s) return s.error();
  std::error_code ec;
  const bool adopting = std::filesystem::exists(pin_dir / "xlb_conntrack", ec);
  auto datapath = datapath::Datapath::load({pin_dir, node.max_services, node.max_backends, node.max_ring_slots});
  if (!datapath) return datapath.error();
  if (const auto capacity = datapath->capacity(); !capacity.note.empty()) log.warning("datapath: " + capacity.note);
  datapath::NodeSettings settings;
  settings.snat_ipv4 = node.snat_ipv4;
  settings.snat_ipv6 = node.snat_ipv6;
  settings.snat_port_min = node.snat_port_min;
  settings.snat_port_max = node.snat_port_max;
  for (auto [from, to] : {std::pair{&node.dsr_source_ipv4, &settings.dsr_source_ipv4},
                          std::pair{&node.dsr_source_ipv6, &settings.dsr_source_ipv6}})
    if (*from) *to = datapath::Prefix{(*from)->address, (*from)->length};
  settings.decap = node.decap;
  if (auto s = datapath->write_node(settings); !s) return s.error();
  log.info(std::string("datapath: loaded, maps ") + (adopting ? "adopted from " : "pinned under ") + pin_dir.string() +
           (adopting ? " (flows in conntrack keep their backends)" : ""));
  return datapath;
}

namespace {

// Balanced packets are routed: without forwarding, the route lookup of every one fails.
void warn_without_forwarding(const config::Config& config, const Logger& log) {
  if (config.node.interfaces.empty() || !config.node.routes_packets()) return;
  for (auto [v4, path, sysctl] :
       {std::tuple{true, "/proc/sys/net/ipv4/ip_forward", "net.ipv4.ip_forward"},
        std::tuple{false, "/proc/sys/net/ipv6/conf/all/forwarding", "net.ipv6.conf.all.forwarding"}}) {
    const auto& services = config.catalog.services;
    const bool used = std::any_of(services.begin(), services.end(), [v4](const model::Service& s) {
      return std::any_of(s.frontends.begin(), s.frontends.end(),
                         [v4](const model::Frontend& f) { return f.address.is_v4() == v4; });
    });
    if (!used) continue;
    std::ifstream in(path);
    char value = '1';
    if (in >> value && value == '0')
      log.warning(std::string("datapath: forwarding is off (") + sysctl +
                  " = 0): balanced packets of that family are dropped as \"no route\"; sysctl -w " + sysctl + "=1");
  }
}

}  // namespace

Result<std::vector<api::Attachment>> attach_link(datapath::Datapath& datapath, const config::NodeConfig& node,
                                                 const std::string& interface, const Logger& log) {
  std::vector<api::Attachment> attached;
  if (node.xdp_mode == config::XdpMode::tc) {
    if (auto s = datapath.attach_tc(interface, true); !s) return s.error();
    attached.push_back({interface, "xlb_tc_lb", "clsact ingress (tc balancer)"});
    log.info("datapath: attached to " + interface + " (tc ingress balancer, xdp_mode = \"tc\": no XDP)");
    return attached;
  }
  if (node.xdp_mode != config::XdpMode::off) {
    const auto wanted = node.xdp_mode == config::XdpMode::native ? datapath::XdpMode::native : datapath::XdpMode::generic;
    auto mode = datapath.attach_xdp(interface, wanted);
    if (!mode) return mode.error();
    if (*mode != wanted)
      log.warning("datapath: " + interface + " cannot run XDP in native mode; attached in generic mode (slower)");
    attached.push_back({interface, "xlb_xdp", std::string(datapath::to_string(*mode))});
  }
  if (auto s = datapath.attach_tc(interface); !s) return s.error();
  attached.push_back({interface, "xlb_tc", "clsact ingress"});
  log.info("datapath: attached to " + interface + " (XDP " + std::string(config::to_string(node.xdp_mode)) +
           ", tc ingress)");
  return attached;
}

Result<std::vector<api::Attachment>> attach_datapath(datapath::Datapath& datapath, const config::Config& config,
                                                     const Logger& log) {
  const auto& node = config.node;
  warn_without_forwarding(config, log);
  std::vector<api::Attachment> attached;
  for (const auto& interface : node.interfaces) {
    auto link = attach_link(datapath, node, interface, log);
    if (!link) return link.error();
    attached.insert(attached.end(), link->begin(), link->end());
  }
  if (node.cgroup == "off") return attached;
  auto cgroup = node.cgroup == "auto" ? datapath::find_cgroup2_mount() : Result<std::filesystem::path>(node.cgroup);
  if (!cgroup) return cgroup.error();
  if (auto s = datapath.attach_cgroup(*cgroup); !s) return s.error();
  attached.push_back({cgroup->string(), "xlb_sock", "cgroup: connect, sendmsg, recvmsg, getpeername (v4, v6)"});
  log.info("datapath: socket-LB attached to cgroup " + cgroup->string());
  return attached;
}

Status cleanup_datapath(const config::NodeConfig& node, const std::filesystem::path& pin_dir, const Logger& log) {
  if (auto s = datapath::Datapath::cleanup(pin_dir, node.interfaces); !s) return s;
  log.info("cleanup: detached from " + std::to_string(node.interfaces.size()) + " interfaces, removed " + pin_dir.string());
  return {};
}

}  // namespace xlb::xlbd
