// Per-packet cost of the XDP program (bpf/xlb_xdp.bpf.c), by BPF_PROG_TEST_RUN.
//
// Each call runs the program once (repeat=1) on a pristine copy of a packet: the kernel copies
// data_in into a buffer of its own for every call, so a rewriting program never sees its own
// output. The time is the kernel's own measurement of the run (bpf_test_run_opts.duration),
// which leaves out the system call and the copies. The same loop with a program that only
// returns XDP_PASS (xdp_pass.bpf.c) measures what the test-run machinery costs; the difference
// is the program's cost. Each run interleaves the two, and the median of the runs' differences
// is reported, next to the wall time per call for reference.
//
// The paths, each with 10 and with 100,000 frontends in xlb_services_v4:
//   established   a conntrack hit: 64 flows to 64 frontends, already known
//   not frontend  TCP to an address that no frontend has: one lookup and XDP_PASS
//   new flow      a fresh source port every call from one client: ring pick, conntrack and
//                 reverse-NAT inserts, into tables that still have room (a client has at
//                 most 65535 ports, the tables 262144 entries)
//   new, full     the same once the flow tables are full (300,000 flows from many clients
//                 first), so that every insert evicts the least recently used flow, as on a
//                 busy node: the memory-bound steady state
//   tc            the tc balancer (xlb_tc_lb, xdp_mode = "tc") with 10 frontends: established,
//                 new flow and not a frontend, net of a tc program that only returns TC_ACT_OK
//                 (the skb test run costs more than XDP's: an skb is built per call), next to
//                 XDP's figures of the same run; and a reply from a backend of an established
//                 nat flow through xlb_tc (reverse NAT), the half every nat reply pays
//   dsr           with 10 frontends in dsr mode: established and new flows encapsulated
//                 (IPv4 in IPv4) instead of translated, next to nat's figures; by XDP, and by
//                 the tc balancer (last line)
//
// The services maps are loaded with room for 131072 entries (bpf_map__set_max_entries, as
// xlbd's [node] max_services does) for both sizes; each frontend has its own service id (and
// counters), all share one ring. The route lookups see the namespace of tests/support/lb_netns.h.
//
//   sudo ./build/bench/xdp_bench
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "support/lb_netns.h"
#include "support/lb_programs.h"
#include "support/netns.h"
#include "support/packet.h"
#include "xlb_xdp_pass.skel.h"

namespace {

using namespace xlb;
using namespace xlb::test;

constexpr int kRuns = 9;
constexpr int kCallsPerRun = 20000;
constexpr int kNewFlowCallsPerRun = 6000;  // 9 x 6000 fresh ports of one client fit in 65535
constexpr int kPool = 64;
constexpr uint32_t kServicesMaxEntries = 131072;
constexpr uint32_t kTableFill = 2 * XLB_CT_FLOWS;  // before timing: all but 4 in 100 of conntrack's sets full

struct Timing {
  double kernel_ns = 0;  // mean of the kernel's duration per call
  double wall_ns = 0;    // mean wall time per call, system call included
};

// A packet for call i: the bytes to run.
using PacketSource = std::function<const Bytes&(uint64_t)>;

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "xdp_bench: %s\n", message.c_str());
  std::exit(1);
}

// tc programs (an skb context) when set; XDP otherwise.
bool g_skb = false;

Timing time_calls(int prog_fd, int ifindex, const PacketSource& packet, uint64_t first, int calls) {
  Bytes out(2048);
  xdp_md ctx{};
  ctx.ingress_ifindex = static_cast<__u32>(ifindex);
  __sk_buff skb{};
  skb.ifindex = static_cast<__u32>(ifindex);
  uint64_t kernel = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) {
    const Bytes& in = packet(first + static_cast<uint64_t>(i));
    ctx.data_end = static_cast<__u32>(in.size());
    bpf_test_run_opts opts{};
    opts.sz = sizeof opts;
    opts.data_in = in.data();
    opts.data_size_in = static_cast<__u32>(in.size());
    opts.data_out = out.data();
    opts.data_size_out = static_cast<__u32>(out.size());
    if (g_skb) {
      opts.ctx_in = &skb;
      opts.ctx_size_in = sizeof skb;
    } else {
      opts.ctx_in = &ctx;
      opts.ctx_size_in = sizeof ctx;
    }
    opts.repeat = 1;
    if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) die(std::string("test run: ") + std::strerror(errno));
    kernel += opts.duration;
  }
  const auto wall = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  return {static_cast<double>(kernel) / calls, wall / calls};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

struct Measured {
  double net_ns;       // median over runs of (program - baseline), kernel time
  double gross_ns;     // median program time
  double baseline_ns;  // median baseline time
  double net_wall_ns;  // the same difference in wall time per call
};

Measured measure(int prog_fd, int pass_fd, int ifindex, const PacketSource& packet, uint64_t& next,
                 int calls = kCallsPerRun) {
  std::vector<double> net, gross, baseline, net_wall;
  for (int run = 0; run < kRuns; ++run) {
    const Timing base = time_calls(pass_fd, ifindex, packet, next, calls);
    const Timing prog = time_calls(prog_fd, ifindex, packet, next, calls);
    next += static_cast<uint64_t>(calls);
    net.push_back(prog.kernel_ns - base.kernel_ns);
    gross.push_back(prog.kernel_ns);
    baseline.push_back(base.kernel_ns);
    net_wall.push_back(prog.wall_ns - base.wall_ns);
  }
  return {median(net), median(gross), median(baseline), median(net_wall)};
}

IpAddr v4_addr(uint32_t host_order) {
  IpAddr a;
  const uint32_t n = htonl(host_order);
  std::memcpy(a.bytes.data(), &n, 4);
  return a;
}

// The i-th frontend: 198.18.0.0/15, the benchmarking range, port 80.
IpAddr frontend(uint32_t i) { return v4_addr((198U << 24 | 18U << 16) + i); }

void check(const Status& s) {
  if (!s) die(s.error().message);
}

std::unique_ptr<LbPrograms> load_with_frontends(uint32_t count, uint32_t flags = 0, bool tc = false) {
  LbPrograms::Options options;
  options.services_max_entries = kServicesMaxEntries;
  options.load_tc = tc;
  Result<std::unique_ptr<LbPrograms>> loaded = LbPrograms::load(options);
  if (!loaded) die(loaded.error().message);
  std::unique_ptr<LbPrograms> lb = std::move(loaded).value();

  const lbnet::Family f = lbnet::v4();
  for (uint32_t i = 0; i < 3; ++i) check(lb->upsert_backend(1 + i, f.backend[i], 8080));
  // One Maglev-sized ring over the three backends, shared by every service id.
  std::vector<uint32_t> ring(251);
  for (uint32_t slot = 0; slot < ring.size(); ++slot) ring[slot] = 1 + slot % 3;
  auto offset = lb->set_ring(ring);
  if (!offset) die(offset.error().message);
  for (uint32_t i = 0; i < count; ++i) {
    const xlb_service_value value{.service_id = i % XLB_MAX_SERVICES, .ring_size = 251, .flags = flags,
                                  .affinity_timeout_s = 0, .ring_offset = *offset};
    check(lb->upsert_service(frontend(i), 80, kTcp, value));
  }
  return lb;
}

// The backend's answer to a packet xlb sent it (IPv4, as translated): Ethernet addresses, IP
// addresses and ports swapped. Checksums are not checked by the programs.
Bytes reply_to(const Bytes& sent) {
  Bytes reply = sent;
  std::swap_ranges(reply.begin(), reply.begin() + 6, reply.begin() + 6);
  std::swap_ranges(reply.begin() + 14 + 12, reply.begin() + 14 + 16, reply.begin() + 14 + 16);
  std::swap_ranges(reply.begin() + 14 + 20, reply.begin() + 14 + 22, reply.begin() + 14 + 22);
  return reply;
}

PacketSpec client_packet(const IpAddr& src, uint16_t sport, const IpAddr& dst, uint16_t dport) {
  PacketSpec s;
  s.eth_src = lbnet::kClientMac;
  s.eth_dst = lbnet::kClientLinkMac;
  s.src = src;
  s.dst = dst;
  s.protocol = kTcp;
  s.sport = sport;
  s.dport = dport;
  s.tcp_flags = 0x10;  // ACK
  s.payload = Bytes(32, 'x');
  return s;
}

struct Row {
  Measured ten;
  Measured many;
};


// Call i's packet: a pool flow's with a fresh source port, a new flow every call (the pool's
// client has 60,000 ports to give). Written into scratch; checksums are not checked.
PacketSource fresh_ports(const std::vector<Bytes>& flows, Bytes& scratch) {
  return [&flows, &scratch](uint64_t i) -> const Bytes& {
    scratch = flows[i % flows.size()];
    const uint16_t sport = htons(static_cast<uint16_t>(1024 + i % 60000));
    std::memcpy(&scratch[14 + 20], &sport, 2);
    return scratch;
  };
}

struct DsrRows {
  Measured established;
  Measured new_flow;
};

// dsr with 10 frontends through XDP (xlb_xdp, bpf_xdp_adjust_head) or the tc balancer
// (xlb_tc_lb, bpf_skb_adjust_room): established flows and fresh ones, encapsulated toward
// their backends; pass_fd is the matching do-nothing program.
DsrRows measure_dsr(bool at_tc, int ifindex, int pass_fd) {
  std::unique_ptr<LbPrograms> lb = load_with_frontends(10, XLB_SERVICE_F_DSR, at_tc);
  xlb_dsr_config config{};
  config.src_v4 = htonl(10U << 24 | 99U << 16);
  config.src_v4_prefix_len = 16;
  const __u32 zero = 0;
  if (bpf_map_update_elem(lb->fd(lb->xdp()->maps.xlb_dsr), &zero, &config, BPF_ANY) != 0) die("write xlb_dsr");
  const int prog_fd = at_tc ? bpf_program__fd(lb->tc()->progs.xlb_tc_lb) : bpf_program__fd(lb->xdp()->progs.xlb_xdp);
  const IpAddr client = lbnet::v4().client;
  std::vector<Bytes> flows;
  for (int k = 0; k < kPool; ++k)
    flows.push_back(build_frame(client_packet(client, static_cast<uint16_t>(30000 + k), frontend(k % 10U), 80)));
  for (const Bytes& f : flows) {
    Result<TestRun> run = at_tc ? lb->run_tc(f, ifindex, prog_fd) : lb->run_xdp(f, ifindex);
    if (!run || run->action != (at_tc ? TC_ACT_REDIRECT : XDP_REDIRECT)) die("an established dsr flow was not redirected");
  }
  g_skb = at_tc;
  DsrRows rows;
  uint64_t next = 0;
  rows.established = measure(prog_fd, pass_fd, ifindex, [&](uint64_t i) -> const Bytes& { return flows[i % kPool]; },
                             next);
  Bytes scratch;
  next = 0;
  rows.new_flow = measure(prog_fd, pass_fd, ifindex, fresh_ports(flows, scratch), next, kNewFlowCallsPerRun);
  g_skb = false;
  const uint64_t expected = kPool + static_cast<uint64_t>(kRuns) * (kCallsPerRun + kNewFlowCallsPerRun);
  if (lb->reason(XLB_REASON_FORWARDED).packets != expected) die("the dsr program did not take the paths measured");
  return rows;
}

}  // namespace

int main() {
  if (::geteuid() != 0) die("needs root (BPF_PROG_TEST_RUN, a private network namespace): sudo " "xdp_bench");
  // One CPU: per-CPU maps and caches stay put, and runs compare like with like.
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  CPU_SET(static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)) - 1, &cpus);
  ::sched_setaffinity(0, sizeof cpus, &cpus);

  check(enter_private_netns());
  check(lbnet::build());
  const int ifindex = lbnet::ifindex(lbnet::kClientLink);

  xlb_xdp_pass* pass = xlb_xdp_pass__open_and_load();
  if (!pass) die("load xdp_pass");
  const int pass_fd = bpf_program__fd(pass->progs.xlb_xdp_pass);

  const uint32_t sizes[2] = {10, 100000};
  Row established{}, not_frontend{}, new_flow{}, new_flow_full{};
  for (int size_index = 0; size_index < 2; ++size_index) {
    const uint32_t count = sizes[size_index];
    std::unique_ptr<LbPrograms> lb = load_with_frontends(count);
    const int prog_fd = bpf_program__fd(lb->xdp()->progs.xlb_xdp);
    const IpAddr client = lbnet::v4().client;
    const auto pick = [&](Row& row) -> Measured& { return size_index == 0 ? row.ten : row.many; };

    // Established: 64 flows over frontends spread through the catalog, run once to be known.
    std::vector<Bytes> flows;
    for (int k = 0; k < kPool; ++k) {
      const uint32_t fe = static_cast<uint32_t>(k) * 1543U % count;
      flows.push_back(build_frame(client_packet(client, static_cast<uint16_t>(30000 + k), frontend(fe), 80)));
    }
    for (const Bytes& f : flows) {
      Result<TestRun> run = lb->run_xdp(f, ifindex);
      if (!run || run->action != XDP_REDIRECT) die("an established flow was not redirected");
    }
    const PacketSource pool = [&](uint64_t i) -> const Bytes& { return flows[i % kPool]; };
    uint64_t next = 0;
    pick(established) = measure(prog_fd, pass_fd, ifindex, pool, next);

    // Not for a frontend: TCP to this node's own address, other ports.
    std::vector<Bytes> others;
    for (int k = 0; k < kPool; ++k) {
      others.push_back(build_frame(client_packet(client, 40000, lbnet::v4().node, static_cast<uint16_t>(1000 + k))));
    }
    const PacketSource other = [&](uint64_t i) -> const Bytes& { return others[i % kPool]; };
    next = 0;
    pick(not_frontend) = measure(prog_fd, pass_fd, ifindex, other, next);

    // New flows: a pool flow's packet with a fresh source port (and, for the full tables,
    // a fresh client address every 50000 ports). Checksums are not checked by the program.
    Bytes scratch;
    const auto fresh_from = [&](uint32_t client_base) {
      return [&, client_base](uint64_t i) -> const Bytes& {
        scratch = flows[i % kPool];
        const uint32_t src = htonl(client_base + static_cast<uint32_t>(i / 50000));
        const uint16_t sport = htons(static_cast<uint16_t>(1024 + i % 50000));
        std::memcpy(&scratch[14 + 12], &src, 4);    // IPv4 source
        std::memcpy(&scratch[14 + 20], &sport, 2);  // TCP source port
        return scratch;
      };
    };
    const PacketSource one_client = fresh_from(10U << 24);
    next = 0;
    pick(new_flow) = measure(prog_fd, pass_fd, ifindex, one_client, next, kNewFlowCallsPerRun);

    const PacketSource many_clients = fresh_from(11U << 24);
    uint64_t next_fresh = 0;
    for (; next_fresh < kTableFill; ++next_fresh) {
      Result<TestRun> run = lb->run_xdp(many_clients(next_fresh), ifindex);
      if (!run || run->action != XDP_REDIRECT) die("a new flow was not redirected");
    }
    pick(new_flow_full) = measure(prog_fd, pass_fd, ifindex, many_clients, next_fresh);

    // Every call took the path it was meant to: a frontend's packets forwarded, the others
    // passed as not for a frontend.
    const xlb_stats forwarded = lb->reason(XLB_REASON_FORWARDED);
    const xlb_stats passed = lb->reason(XLB_PASS_NOT_SERVICE);
    const uint64_t per_path = static_cast<uint64_t>(kRuns) * kCallsPerRun;
    const uint64_t new_flows = static_cast<uint64_t>(kRuns) * kNewFlowCallsPerRun;
    if (forwarded.packets != kPool + per_path + new_flows + kTableFill + per_path || passed.packets != per_path) {
      die("the program did not take the paths measured (forwarded " + std::to_string(forwarded.packets) +
          ", not a frontend " + std::to_string(passed.packets) + ")");
    }
  }

  // dsr with 10 frontends: the same established pool and fresh flows, encapsulated (IPv4 in
  // IPv4) instead of translated, by XDP and by the tc balancer.
  const DsrRows dsr = measure_dsr(false, ifindex, pass_fd);
  const DsrRows tc_dsr = measure_dsr(true, ifindex, bpf_program__fd(pass->progs.xlb_tc_pass));

  // The tc balancer with 10 frontends: the same established pool, fresh flows and packets not
  // for a frontend, through xlb_tc_lb on an skb.
  Measured tc_established{}, tc_new_flow{}, tc_not_frontend{}, tc_reply{};
  {
    std::unique_ptr<LbPrograms> lb = load_with_frontends(10, 0, true);
    const int prog_fd = bpf_program__fd(lb->tc()->progs.xlb_tc_lb);
    const int tc_pass_fd = bpf_program__fd(pass->progs.xlb_tc_pass);
    const IpAddr client = lbnet::v4().client;
    std::vector<Bytes> flows, others;
    for (int k = 0; k < kPool; ++k) {
      flows.push_back(build_frame(client_packet(client, static_cast<uint16_t>(30000 + k), frontend(k % 10U), 80)));
      others.push_back(build_frame(client_packet(client, 40000, lbnet::v4().node, static_cast<uint16_t>(1000 + k))));
    }
    std::vector<Bytes> replies;
    for (const Bytes& f : flows) {
      Result<TestRun> run = lb->run_tc(f, ifindex, prog_fd);
      if (!run || run->action != TC_ACT_REDIRECT) die("an established flow was not redirected by xlb_tc_lb");
      replies.push_back(reply_to(run->out));
    }
    g_skb = true;
    uint64_t next = 0;
    tc_established = measure(prog_fd, tc_pass_fd, ifindex, [&](uint64_t i) -> const Bytes& { return flows[i % kPool]; },
                             next);
    next = 0;
    tc_not_frontend = measure(prog_fd, tc_pass_fd, ifindex,
                              [&](uint64_t i) -> const Bytes& { return others[i % kPool]; }, next);
    Bytes scratch;
    next = 0;
    tc_new_flow = measure(prog_fd, tc_pass_fd, ifindex, fresh_ports(flows, scratch), next, kNewFlowCallsPerRun);
    // Replies (xlb_tc on the backend link): each pool flow's answer from the backend it was given,
    // the flows seen again first (the new flows may have taken a pool flow's conntrack way, as
    // they would a flow's that was quiet so long).
    for (const Bytes& f : flows) {
      Result<TestRun> run = lb->run_tc(f, ifindex, prog_fd);
      if (!run || run->action != TC_ACT_REDIRECT) die("an established flow was not redirected by xlb_tc_lb");
    }
    next = 0;
    tc_reply = measure(bpf_program__fd(lb->tc()->progs.xlb_tc), tc_pass_fd, lbnet::ifindex(lbnet::kBackendLink),
                       [&](uint64_t i) -> const Bytes& { return replies[i % kPool]; }, next);
    g_skb = false;
    const uint64_t expected = 2 * kPool + static_cast<uint64_t>(kRuns) * (2 * kCallsPerRun + kNewFlowCallsPerRun);
    if (lb->reason(XLB_REASON_FORWARDED).packets != expected ||
        lb->reason(XLB_PASS_NOT_SERVICE).packets != static_cast<uint64_t>(kRuns) * kCallsPerRun)
      die("the tc balancer did not take the paths measured");
  }
  xlb_xdp_pass__destroy(pass);

  std::printf("xlb_xdp per packet, BPF_PROG_TEST_RUN repeat=1 with a pristine packet per call, net of an XDP_PASS\n"
              "program timed the same way; median of %d runs, one CPU. Kernel-measured time (test_run\n"
              "duration); in brackets the wall time per call, system call included.\n\n",
              kRuns);
  std::printf("%-28s %22s %22s %9s %8s\n", "path", "10 frontends", "100000 frontends", "100k/10", "target");
  const auto row = [](const char* name, const Row& r, const char* target) {
    std::printf("%-28s %8.1f ns [%7.1f ns] %8.1f ns [%7.1f ns] %9.3f %8s\n", name, r.ten.net_ns, r.ten.net_wall_ns,
                r.many.net_ns, r.many.net_wall_ns, r.many.net_ns / r.ten.net_ns, target);
  };
  row("established (ct hit)", established, "90 ns");
  row("new flow (pick + inserts)", new_flow, "440 ns");
  row("new flow, flow tables full", new_flow_full, "-");
  row("not a frontend", not_frontend, "33 ns");
  std::printf("\nbaseline (the XDP_PASS program): %.1f ns per call; xlb_xdp gross with 10 frontends: established "
              "%.1f, new flow %.1f, not a frontend %.1f ns\n",
              established.ten.baseline_ns, established.ten.gross_ns, new_flow.ten.gross_ns, not_frontend.ten.gross_ns);
  std::printf("targets: established <= 90 ns, new flow <= 440 ns, not a frontend <= 33 ns, 100k/10 within 10%%\n");
  std::printf("\ndsr (IPv4 in IPv4), 10 frontends: established %.1f ns [%.1f ns], new flow %.1f ns [%.1f ns]; "
              "nat the same run: %.1f and %.1f ns\n",
              dsr.established.net_ns, dsr.established.net_wall_ns, dsr.new_flow.net_ns, dsr.new_flow.net_wall_ns,
              established.ten.net_ns, new_flow.ten.net_ns);
  std::printf("\ntc balancer (xlb_tc_lb, xdp_mode = \"tc\"), 10 frontends, net of a TC_ACT_OK program on an skb:\n"
              "  established %.1f ns [%.1f ns] (XDP %.1f ns, x%.2f), new flow %.1f ns [%.1f ns] (XDP %.1f ns, x%.2f),\n"
              "  not a frontend %.1f ns [%.1f ns] (XDP %.1f ns); baseline (TC_ACT_OK program) %.1f ns per call,\n"
              "  gross established %.1f ns;\n"
              "  a reply from a backend (xlb_tc: reverse nat) %.1f ns [%.1f ns]\n",
              tc_established.net_ns, tc_established.net_wall_ns, established.ten.net_ns,
              tc_established.net_ns / established.ten.net_ns, tc_new_flow.net_ns, tc_new_flow.net_wall_ns,
              new_flow.ten.net_ns, tc_new_flow.net_ns / new_flow.ten.net_ns, tc_not_frontend.net_ns,
              tc_not_frontend.net_wall_ns, not_frontend.ten.net_ns, tc_established.baseline_ns, tc_established.gross_ns,
              tc_reply.net_ns, tc_reply.net_wall_ns);
  std::printf("  dsr: established %.1f ns [%.1f ns], new flow %.1f ns [%.1f ns]\n", tc_dsr.established.net_ns,
              tc_dsr.established.net_wall_ns, tc_dsr.new_flow.net_ns, tc_dsr.new_flow.net_wall_ns);
  return 0;
}
