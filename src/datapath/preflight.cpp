#include "datapath/preflight.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

#include "datapath/cgroup.h"

namespace xlb::datapath {
namespace {

using Outcome = PreflightCheck::Outcome;

// The oldest kernel with everything the programs use: BPF_F_INNER_MAP rings of any size (5.10),
// ring buffers (5.8), batch map operations (5.6), cgroup bpf_links (5.7).
constexpr int kMinMajor = 5;
constexpr int kMinMinor = 10;

// The netdev generic netlink family (kernel 6.3, linux/netdev.h), newer than the uapi headers
// this builds with.
constexpr int kNetdevCmdDevGet = 1;
constexpr int kNetdevAttrIfindex = 1;
constexpr int kNetdevAttrXdpFeatures = 3;
constexpr int kNetdevAttrMax = 3;
constexpr uint64_t kXdpActBasic = 1;     // XDP_PASS, XDP_DROP, XDP_TX in the driver
constexpr uint64_t kXdpActRedirect = 2;  // XDP_REDIRECT out of this driver
constexpr uint64_t kXdpActNdoXmit = 4;   // frames redirected from elsewhere sent by this driver

PreflightCheck pass(std::string name, std::string detail) { return {std::move(name), Outcome::pass, std::move(detail), ""}; }
PreflightCheck warn(std::string name, std::string detail, std::string fix) {
  return {std::move(name), Outcome::warn, std::move(detail), std::move(fix)};
}
PreflightCheck fail(std::string name, std::string detail, std::string fix) {
  return {std::move(name), Outcome::fail, std::move(detail), std::move(fix)};
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

PreflightCheck check_kernel() {
  utsname uts{};
  ::uname(&uts);
  int major = 0, minor = 0;
  std::sscanf(uts.release, "%d.%d", &major, &minor);
  const std::string release = uts.release;
  if (major > kMinMajor || (major == kMinMajor && minor >= kMinMinor)) return pass("kernel", release);
  return fail("kernel", release + ", older than " + std::to_string(kMinMajor) + "." + std::to_string(kMinMinor),
              "upgrade the kernel to 5.10 or later (the maps and links xlb uses arrived up to 5.10)");
}

// libbpf's probes load a tiny program or create a tiny map: 1 supported, 0 not, <0 not allowed.
PreflightCheck probe(std::string name, int result, std::string_view what, std::string_view since) {
  if (result == 1) return pass(std::move(name), std::string(what) + " supported");
  if (result == 0)
    return fail(std::move(name), std::string(what) + " not supported by this kernel",
                "a kernel with " + std::string(what) + " (" + std::string(since) + ")");
  return fail(std::move(name), "cannot probe " + std::string(what) + ": " + std::strerror(-result),
              "run as root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON)");
}

// The rings live in one array that xlbd maps into its memory (BPF_F_MMAPABLE): 1 when a small
// one can be made and mapped, 0 when the kernel refuses the flag, <0 when not allowed at all.
int probe_mmapable_array() {
  bpf_map_create_opts options{};
  options.sz = sizeof options;
  options.map_flags = BPF_F_MMAPABLE;
  const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, nullptr, sizeof(__u32), sizeof(__u32), 1024, &options);
  if (fd < 0) return errno == EINVAL ? 0 : -errno;
  void* mapped = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int result = mapped == MAP_FAILED ? 0 : 1;
  if (mapped != MAP_FAILED) ::munmap(mapped, 4096);
  ::close(fd);
  return result;
}

// The file system the pin directory is (or will be created) on: its nearest existing ancestor's.
PreflightCheck check_bpffs(const PreflightOptions& o) {
  constexpr long kBpfFsMagic = 0xcafe4a11;  // BPF_FS_MAGIC in linux/magic.h
  std::filesystem::path at = o.pin_dir;
  std::error_code ec;
  while (!at.empty() && at != at.root_path() && !std::filesystem::exists(at, ec)) at = at.parent_path();
  struct statfs fs {};
  if (::statfs(at.c_str(), &fs) == 0 && static_cast<long>(fs.f_type) == kBpfFsMagic)
    return pass("bpffs", o.pin_dir.string() + " is on a bpf file system");
  return fail("bpffs", o.pin_dir.string() + " is not on a bpf file system: maps could not be pinned, and a restart "
                                            "would lose every flow",
              "mount -t bpf bpf /sys/fs/bpf (and add it to /etc/fstab)");
}

PreflightCheck check_cgroup(const PreflightOptions& o, const std::string& mountinfo) {
  if (!o.socket_lb) return pass("cgroup v2", "socket-LB is off ([node] cgroup = \"off\")");
  auto mount = parse_cgroup2_mount(mountinfo);
  if (mount) return pass("cgroup v2", "mounted at " + mount->string());
  return fail("cgroup v2", mount.error().message,
              "mount -t cgroup2 none /sys/fs/cgroup, or set [node] cgroup = \"off\" to run without socket-LB");
}

using Btf = std::unique_ptr<btf, decltype(&btf__free)>;

PreflightCheck check_btf(const PreflightOptions& o) {
  if (std::filesystem::exists(o.btf)) return pass("btf", o.btf.string());
  return warn("btf", "the kernel exposes no BTF at " + o.btf.string(),
              "a kernel built with CONFIG_DEBUG_INFO_BTF=y; without it socket destroy cannot be used");
}

PreflightCheck check_socket_destroy() {
  Btf vmlinux(btf__load_vmlinux_btf(), btf__free);
  if (!vmlinux || libbpf_get_error(vmlinux.get()))
    return warn("socket destroy", "no kernel BTF to look the kfunc up in", "a kernel with BTF (6.5 or later)");
  if (btf__find_by_name_kind(vmlinux.get(), "bpf_sock_destroy", BTF_KIND_FUNC) > 0)
    return pass("socket destroy", "bpf_sock_destroy available");
  return warn("socket destroy", "bpf_sock_destroy is missing (kernel before 6.5)",
              "a kernel 6.5 or later; until then a UDP client connected through socket-LB stays on a removed "
              "backend until it reconnects");
}

// The driver's XDP features, from the netdev generic netlink family; nullopt if the kernel
// cannot say (before 6.3).
std::optional<uint64_t> xdp_features(unsigned ifindex) {
  std::unique_ptr<nl_sock, decltype(&nl_socket_free)> sock(nl_socket_alloc(), nl_socket_free);
  if (!sock || genl_connect(sock.get()) < 0) return std::nullopt;
  const int family = genl_ctrl_resolve(sock.get(), "netdev");
  if (family < 0) return std::nullopt;
  std::unique_ptr<nl_msg, decltype(&nlmsg_free)> msg(nlmsg_alloc(), nlmsg_free);
  if (!msg || !genlmsg_put(msg.get(), NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, 0, kNetdevCmdDevGet, 1) ||
      nla_put_u32(msg.get(), kNetdevAttrIfindex, ifindex) < 0 || nl_send_auto(sock.get(), msg.get()) < 0)
    return std::nullopt;
  std::optional<uint64_t> features;
  auto parse = [](nl_msg* reply, void* out) -> int {
    nlattr* attrs[kNetdevAttrMax + 1] = {};
    if (genlmsg_parse(nlmsg_hdr(reply), 0, attrs, kNetdevAttrMax, nullptr) == 0 && attrs[kNetdevAttrXdpFeatures])
      *static_cast<std::optional<uint64_t>*>(out) = nla_get_u64(attrs[kNetdevAttrXdpFeatures]);
    return NL_OK;
  };
  nl_socket_modify_cb(sock.get(), NL_CB_VALID, NL_CB_CUSTOM, parse, &features);
  if (nl_recvmsgs_default(sock.get()) < 0) return std::nullopt;
  return features;
}

PreflightCheck check_link(const std::string& interface, bool tc_balancer) {
  const std::string name = (tc_balancer ? "tc " : "xdp ") + interface;
  const unsigned index = ::if_nametoindex(interface.c_str());
  if (index == 0)
    return fail(name, "no link " + interface + " in this network namespace",
                "fix [node] interfaces, or start xlbd in the namespace that has the link");
  if (tc_balancer)
    return pass(name, "tc balancing in use (xdp_mode = \"tc\"): the tc ingress balancer, no XDP, on this link "
                      "(slower than XDP; dsr services are not balanced)");
  const auto features = xdp_features(index);
  if (!features)
    return warn(name, "the kernel cannot tell whether the driver runs XDP (before 6.3)",
                "nothing to do: native XDP is tried, and generic XDP used if the driver refuses it");
  if (!(*features & kXdpActBasic))
    return warn(name, "the driver has no native XDP: generic XDP (in the kernel's stack, slower) will be used",
                "a NIC driver with native XDP, or [node] xdp_mode = \"generic\" to say so");
  std::string detail = "native XDP";
  if (*features & kXdpActRedirect) detail += ", redirect";
  if (*features & kXdpActNdoXmit) detail += ", receives redirected frames";
  return pass(name, detail);
}

PreflightCheck check_forwarding(const PreflightOptions& o) {
  if (o.interfaces.empty()) return pass("forwarding", "no interface configured: nothing to route");
  if (!o.routes) return pass("forwarding", "this node only decapsulates dsr packets: nothing to route");
  const std::string v4 = read_file("/proc/sys/net/ipv4/ip_forward");
  if (!v4.empty() && v4[0] == '1') return pass("forwarding", "net.ipv4.ip_forward = 1");
  return warn("forwarding", "net.ipv4.ip_forward = 0: balanced IPv4 packets are dropped as \"no route\"",
              "sysctl -w net.ipv4.ip_forward=1 (and net.ipv6.conf.all.forwarding=1 for IPv6)");
}

}  // namespace

std::string_view to_string(PreflightCheck::Outcome o) {
  switch (o) {
    case Outcome::pass: return "pass";
    case Outcome::warn: return "warn";
    case Outcome::fail: return "fail";
  }
  return "?";
}

std::vector<PreflightCheck> run_preflight(const PreflightOptions& o) {
  const std::string mountinfo = read_file(o.mountinfo);
  std::vector<PreflightCheck> checks{
      check_kernel(),
      probe("xdp", libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_XDP, nullptr), "XDP programs", "4.8"),
      probe("tc", libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SCHED_CLS, nullptr), "tc (clsact) programs", "4.1"),
      probe("mmapable array", probe_mmapable_array(), "memory-mapped array maps", "5.5"),
      probe("lru maps", libbpf_probe_bpf_map_type(BPF_MAP_TYPE_LRU_HASH, nullptr), "LRU hash maps", "4.10"),
      probe("ring buffer", libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr), "ring buffers", "5.8"),
      check_bpffs(o),
      check_cgroup(o, mountinfo),
      check_btf(o),
  };
  if (o.socket_lb) {
    checks.push_back(probe("socket-lb", libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, nullptr),
                           "cgroup socket-address programs", "4.17"));
    checks.push_back(check_socket_destroy());
  }
  for (const auto& interface : o.interfaces) checks.push_back(check_link(interface, o.tc_balancer));
  checks.push_back(check_forwarding(o));
  return checks;
}

bool any_failed(const std::vector<PreflightCheck>& checks) {
  return std::any_of(checks.begin(), checks.end(), [](const auto& c) { return c.outcome == Outcome::fail; });
}

}  // namespace xlb::datapath
