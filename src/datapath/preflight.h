// What the datapath needs of this node, each probed on the running kernel (not guessed from its
// version): program and map types, bpffs, cgroup v2, BTF, XDP on each link, socket destroy,
// forwarding. xlbd refuses to start when a check fails, with the same words xlbctl prints.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace xlb::datapath {

struct PreflightCheck {
  enum class Outcome { pass, warn, fail };
  std::string name;    // "bpffs", "xdp eth0", ...
  Outcome outcome = Outcome::pass;
  std::string detail;  // what was found
  std::string fix;     // what to do about a warn or fail; empty on pass
};

std::string_view to_string(PreflightCheck::Outcome);

struct PreflightOptions {
  std::vector<std::string> interfaces;  // links XDP and tc will attach to
  bool socket_lb = true;                // cgroup != "off"
  bool routes = true;                   // balanced packets are routed here (NodeConfig::routes_packets)
  bool tc_balancer = false;             // xdp_mode = "tc": the links balance at tc ingress, not XDP
  std::filesystem::path pin_dir = "/sys/fs/bpf/xlb";  // must be (or go) on a bpf file system
  std::filesystem::path mountinfo = "/proc/self/mountinfo";
  std::filesystem::path btf = "/sys/kernel/btf/vmlinux";
};

std::vector<PreflightCheck> run_preflight(const PreflightOptions& options);

bool any_failed(const std::vector<PreflightCheck>& checks);

}  // namespace xlb::datapath
