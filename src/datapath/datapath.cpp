#include "datapath/datapath.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <set>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>

#include "base/unique_fd.h"
#include "datapath/errno_error.h"
#include "datapath/local_addresses.h"
#include "xlb_abi.h"
#include "xlb_sock.skel.h"
#include "xlb_tc.skel.h"
#include "xlb_xdp.skel.h"

namespace xlb::datapath {

namespace fs = std::filesystem;

namespace {

// A failed load keeps the verifier's log in a buffer this large (the kernel keeps the end of a
// longer log), and the error quotes its last lines: they say what the verifier rejected.
constexpr size_t kVerifierLogSize = 1 << 20;
constexpr size_t kVerifierLogTailLines = 20;

// Where xlb's tc filter sits at clsact ingress: a fixed handle and priority, so a restart
// replaces exactly this filter and cleanup removes exactly it.
constexpr uint32_t kTcHandle = 0x7862;  // "xb"
constexpr uint32_t kTcPriority = 0x7862;

std::string tail_lines(std::string_view text, size_t count) {
  text = text.substr(0, text.find('\0'));
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  size_t start = text.size();
  for (size_t i = 0; i < count; ++i) {
    const size_t newline = start == 0 ? std::string_view::npos : text.rfind('\n', start - 1);
    if (newline == std::string_view::npos) return std::string(text);
    start = newline;
  }
  return std::string(text.substr(start + 1));
}

Error load_error(std::string_view name, int err, std::string_view verifier_log) {
  const std::string what = "load BPF programs " + std::string(name);
  const std::string tail = tail_lines(verifier_log, kVerifierLogTailLines);
  if (tail.empty()) {
    const bool denied = err == EPERM || err == EACCES;
    return errno_error(what, err, denied ? kPrivilegeHint : std::string_view{});
  }
  return errno_error(what, err, "the kernel's verifier rejected a program; the end of its log:\n" + tail);
}

Result<unsigned> interface_index(const std::string& name) {
  const unsigned index = ::if_nametoindex(name.c_str());
  if (index == 0) return errno_error("find interface " + name, errno, "is it in this network namespace?");
  return index;
}

// One skeleton, type-erased: what the loader needs is its bpf_object and how to free it.
struct Object {
  std::string name;
  bpf_object* object = nullptr;
  std::function<void()> destroy;

  Object() = default;
  Object(Object&& o) noexcept : name(std::move(o.name)), object(o.object), destroy(std::exchange(o.destroy, {})) {}
  Object& operator=(Object&&) = delete;
  Object(const Object&) = delete;
  ~Object() {
    if (destroy) destroy();
  }

  bpf_program* first_program() const { return bpf_object__next_program(object, nullptr); }
};

template <class Skeleton>
Result<Object> open_object(std::string name, Skeleton* (*open)(const bpf_object_open_opts*),
                           void (*destroy)(Skeleton*), std::string& verifier_log) {
  bpf_object_open_opts options{};
  options.sz = sizeof options;
  options.kernel_log_buf = verifier_log.data();
  options.kernel_log_size = verifier_log.size();
  Skeleton* skeleton = open(&options);
  if (!skeleton) return errno_error("open BPF object " + name, errno);
  Object o;
  o.name = std::move(name);
  o.object = skeleton->obj;
  o.destroy = [skeleton, destroy] { destroy(skeleton); };
  return o;
}

// Maps that only count: when a new xlb changes one's layout (a new drop reason makes
// xlb_reason_stats longer), the pinned one is dropped and made anew, and the counts start from
// zero, rather than the load failing. Maps that hold state (conntrack, rings, ...) never are:
// a layout change there needs a new ABI version.
bool is_counter_map(std::string_view name) {
  return name == "xlb_reason_stats" || name == "xlb_service_stats" || name == "xlb_backend_stats";
}

// Removes the pin of a counter map whose layout is not the one this build wants.
Status drop_incompatible_counters(bpf_map* map, const fs::path& pin) {
  const std::string name = bpf_map__name(map);
  std::error_code ec;
  if (!is_counter_map(name) || !fs::exists(pin, ec)) return {};
  UniqueFd pinned(bpf_obj_get(pin.c_str()));
  if (!pinned) return errno_error("open the pinned map " + pin.string(), errno);
  bpf_map_info info{};
  __u32 length = sizeof info;
  if (int err = bpf_obj_get_info_by_fd(pinned.get(), &info, &length); err != 0)
    return errno_error("read the pinned map " + pin.string(), -err);
  if (info.type == bpf_map__type(map) && info.key_size == bpf_map__key_size(map) &&
      info.value_size == bpf_map__value_size(map) && info.max_entries == bpf_map__max_entries(map))
    return {};
  if (!fs::remove(pin, ec) && ec) return Error{"remove " + pin.string() + ": " + ec.message()};
  return {};
}

static_assert(kDefaultMaxServices == XLB_DEFAULT_SERVICES && kDefaultMaxBackends == XLB_DEFAULT_BACKENDS &&
                  kDefaultMaxRingSlots == XLB_DEFAULT_RING_SLOTS,
              "LoadOptions' defaults are the ABI's");

// The maps whose max_entries is the node's capacity: of services (frontends, their addresses,
// counters) or of backends; and the ring slots, which every ring is a range of.
enum class Sized { no, services, backends, ring_slots };
Sized sized_by(std::string_view name) {
  if (name == "xlb_services_v4" || name == "xlb_services_v6" || name == "xlb_frontend_addrs" ||
      name == "xlb_service_stats")
    return Sized::services;
  if (name == "xlb_backends" || name == "xlb_backend_stats") return Sized::backends;
  if (name == "xlb_ring_slots") return Sized::ring_slots;
  return Sized::no;
}

// The max_entries of a pinned map, if there is one.
Result<std::optional<uint32_t>> pinned_size(const fs::path& pin) {
  std::error_code ec;
  if (!fs::exists(pin, ec)) return std::optional<uint32_t>();
  UniqueFd pinned(bpf_obj_get(pin.c_str()));
  if (!pinned) return errno_error("open the pinned map " + pin.string(), errno);
  bpf_map_info info{};
  __u32 length = sizeof info;
  if (int err = bpf_obj_get_info_by_fd(pinned.get(), &info, &length); err != 0)
    return errno_error("read the pinned map " + pin.string(), -err);
  return std::optional(info.max_entries);
}

// The sizes to load with: the options', or those of the maps a previous xlbd pinned (the maps
// that hold state: xlb_services_v4 and xlb_backends), which are adopted as they are.
Result<Capacity> capacity_to_load(const LoadOptions& options) {
  // Ring slots go two to an entry of xlb_ring_slots: an odd count is rounded up.
  Capacity c{options.max_services, options.max_backends, "",
             options.max_ring_slots + options.max_ring_slots % XLB_RING_SLOTS_PER_ENTRY};
  for (auto [what, name, size, key, ids, per_entry] :
       {std::tuple{"services", "xlb_services_v4", &c.services, "max_services", XLB_MAX_SERVICES, 1U},
        std::tuple{"backends", "xlb_backends", &c.backends, "max_backends", XLB_MAX_BACKENDS, 1U},
        std::tuple{"ring slots", "xlb_ring_slots", &c.ring_slots, "max_ring_slots", kMaxRingSlotsBound + 1,
                   static_cast<unsigned>(XLB_RING_SLOTS_PER_ENTRY)}}) {
    if (*size == 0 || *size >= ids)
      return Error{std::string(key) + " " + std::to_string(*size) + ": it goes from 1 to " + std::to_string(ids - 1)};
    if (options.pin_dir.empty()) continue;
    auto pinned = pinned_size(options.pin_dir / name);
    if (!pinned) return pinned.error();
    if (!*pinned) continue;
    const uint32_t held = **pinned * per_entry;
    if (held == *size) continue;
    if (!c.note.empty()) c.note += "; ";
    c.note += "the pinned maps hold " + std::to_string(held) + " " + what + ", adopted as they are: " + key + " " +
              std::to_string(*size) + " takes effect after xlbd --cleanup (which interrupts traffic) and a start";
    *size = held;
  }
  return c;
}

// Every map of every object is one shared instance per name: the first object to load creates it
// (or adopts it from the pin directory), later ones re-use its fd.
Status share_maps(Object& o, const std::map<std::string, int>& loaded, const fs::path& pin_dir, const Capacity& capacity) {
  bpf_map* map;
  bpf_object__for_each_map(map, o.object) {
    if (bpf_map__is_internal(map)) continue;  // .rodata, .bss: each object's own
    const std::string name = bpf_map__name(map);
    if (auto it = loaded.find(name); it != loaded.end()) {
      if (int err = bpf_map__reuse_fd(map, it->second); err != 0)
        return errno_error("share map " + name + " with " + o.name, -err);
      continue;
    }
    if (Sized kind = sized_by(name); kind != Sized::no) {
      // The counter arrays have one entry more: slot 0, which is no one's (bpf/lib/counters.h).
      const uint32_t extra = is_counter_map(name) ? 1 : 0;
      const uint32_t entries = kind == Sized::services   ? capacity.services
                               : kind == Sized::backends ? capacity.backends
                                                         : capacity.ring_slots / XLB_RING_SLOTS_PER_ENTRY;
      if (int err = bpf_map__set_max_entries(map, entries + extra);
          err != 0)
        return errno_error("size map " + name, -err);
    }
    if (!pin_dir.empty()) {
      if (Status s = drop_incompatible_counters(map, pin_dir / name); !s) return s;
      if (int err = bpf_map__set_pin_path(map, (pin_dir / name).c_str()); err != 0)
        return errno_error("pin map " + name, -err);
    }
  }
  return {};
}

int map_fd(const std::map<std::string, int>& maps, const std::string& name) {
  auto it = maps.find(name);
  return it == maps.end() ? -1 : it->second;
}

struct LinkDeleter {
  void operator()(bpf_link* link) const { bpf_link__destroy(link); }
};

// Sums a per-CPU map (array or hash) of struct xlb_stats over CPUs, keeping only entries with
// traffic. Read in batches: one system call per few thousand entries, not one per entry.
template <class Key>
Status read_stats(int fd, uint32_t entries, std::map<Key, Counter>& out, std::string_view what) {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return errno_error("count CPUs", -cpus);
  constexpr uint32_t kBatch = 4096;
  std::vector<uint32_t> keys(kBatch);
  std::vector<xlb_stats> values(static_cast<size_t>(kBatch) * static_cast<size_t>(cpus));
  uint32_t cursor = 0;
  for (uint32_t done = 0; done < entries;) {
    uint32_t count = std::min(kBatch, entries - done);
    const int err = bpf_map_lookup_batch(fd, done == 0 ? nullptr : &cursor, &cursor, keys.data(), values.data(),
                                         &count, nullptr);
    if (err != 0 && err != -ENOENT) return errno_error("read " + std::string(what), -err);
    for (uint32_t i = 0; i < count; ++i) {
      Counter sum;
      for (int cpu = 0; cpu < cpus; ++cpu) {
        const auto& v = values[static_cast<size_t>(i) * static_cast<size_t>(cpus) + static_cast<size_t>(cpu)];
        sum.packets += v.packets;
        sum.bytes += v.bytes;
        sum.new_flows += v.new_flows;
      }
      if (sum.packets || sum.new_flows) out[static_cast<Key>(keys[i])] = sum;
    }
    done += count;
    if (err == -ENOENT || count == 0) break;  // the end of the array
  }
  return {};
}

}  // namespace

struct Datapath::Objects {
  std::vector<Object> objects;  // xdp, tc, sock
  std::map<std::string, int> maps;  // shared maps by name; fds owned by the objects
  fs::path pin_dir;
  std::vector<std::unique_ptr<bpf_link, LinkDeleter>> links;  // unpinned links live as long as this
  std::optional<BpfMaps> writer;
  std::string capacity_note;

  const Object& xdp() const { return objects.at(0); }
  const Object& tc() const { return objects.at(1); }
  const Object& sock() const { return objects.at(2); }
};

void set_libbpf_verbose(bool verbose) {
  static constexpr libbpf_print_fn_t quiet = [](libbpf_print_level, const char*, va_list) { return 0; };
  if (!verbose) libbpf_set_print(quiet);  // the default printer stays otherwise (NULL would silence it)
}

fs::path default_pin_dir() { return fs::path("/sys/fs/bpf/xlb") / ("v" + std::to_string(XLB_ABI_VERSION)); }

std::string_view to_string(XdpMode mode) { return mode == XdpMode::native ? "native" : "generic"; }

std::string_view reason_name(uint32_t reason) {
  switch (reason) {
    case XLB_REASON_FORWARDED: return "forwarded";
    case XLB_PASS_NOT_IP: return "passed: not IP";
    case XLB_PASS_NOT_SERVICE: return "passed: not a frontend";
    case XLB_PASS_NOT_TCP_UDP: return "passed: not TCP or UDP";
    case XLB_PASS_NO_NEIGHBOUR: return "passed: next hop unresolved";
    case XLB_PASS_TTL_EXPIRED: return "passed: TTL expired";
    case XLB_PASS_FRAG_NEEDED: return "passed: larger than the route's MTU";
    case XLB_DROP_TRUNCATED: return "truncated header";
    case XLB_DROP_BAD_IHL: return "bad IPv4 header length";
    case XLB_DROP_IPV4_OPTIONS: return "IPv4 options";
    case XLB_DROP_FRAGMENT: return "fragment";
    case XLB_DROP_NO_BACKEND: return "no backend";
    case XLB_DROP_NO_ROUTE: return "no route";
    case XLB_DROP_SNAT_PORTS_EXHAUSTED: return "snat ports exhausted";
    case XLB_TX_ICMP_TOO_BIG: return "answered: too big once encapsulated (ICMP)";
    case XLB_DROP_TOO_BIG: return "too big once encapsulated, no DF";
    case XLB_DROP_NO_DSR_SOURCE: return "no dsr source prefix";
    case XLB_DECAPSULATED: return "decapsulated";
    case XLB_DROP_DSR_UNSUPPORTED: return "dsr at tc of a frame with a second VLAN tag";
    default: return "unknown reason";
  }
}

bool is_drop(uint32_t reason) {
  switch (reason) {
    case XLB_DROP_TRUNCATED:
    case XLB_DROP_BAD_IHL:
    case XLB_DROP_IPV4_OPTIONS:
    case XLB_DROP_FRAGMENT:
    case XLB_DROP_NO_BACKEND:
    case XLB_DROP_NO_ROUTE:
    case XLB_DROP_SNAT_PORTS_EXHAUSTED:
    case XLB_DROP_TOO_BIG:
    case XLB_DROP_NO_DSR_SOURCE:
    case XLB_DROP_DSR_UNSUPPORTED:
      return true;
    default:
      return false;
  }
}

Datapath::Datapath(std::unique_ptr<Objects> objects) : objects_(std::move(objects)) {}
Datapath::Datapath(Datapath&&) noexcept = default;
Datapath& Datapath::operator=(Datapath&&) noexcept = default;
Datapath::~Datapath() = default;

Result<Datapath> Datapath::load(const LoadOptions& options) {
  if (!options.pin_dir.empty()) {
    std::error_code ec;
    fs::create_directories(options.pin_dir, ec);
    if (ec)
      return Error{"create pin directory " + options.pin_dir.string() + ": " + ec.message() +
                   " (is bpffs mounted? mount -t bpf bpf /sys/fs/bpf)"};
  }
  auto capacity = capacity_to_load(options);
  if (!capacity) return capacity.error();
  auto objects = std::make_unique<Objects>();
  objects->pin_dir = options.pin_dir;
  objects->capacity_note = capacity->note;
  // libbpf loads quietly first; only when the verifier refuses does it load again with the
  // log on, into this buffer, so that the error can say why.
  std::string verifier_log(kVerifierLogSize, '\0');

  std::vector<std::function<Result<Object>()>> openers{
      [&] { return open_object("xlb_xdp", xlb_xdp__open_opts, xlb_xdp__destroy, verifier_log); },
      [&] { return open_object("xlb_tc", xlb_tc__open_opts, xlb_tc__destroy, verifier_log); },
      [&] { return open_object("xlb_sock", xlb_sock__open_opts, xlb_sock__destroy, verifier_log); },
  };
  for (auto& open : openers) {
    auto o = open();
    if (!o) return o.error();
    if (auto s = share_maps(*o, objects->maps, options.pin_dir, *capacity); !s) return s.error();
    if (int err = bpf_object__load(o->object); err != 0) {
      if (-err == EINVAL && !options.pin_dir.empty())
        return errno_error("load BPF programs " + o->name, -err,
                           "if a map pinned under " + options.pin_dir.string() +
                               " has another layout, an older xlb left it: run xlbd --cleanup");
      return load_error(o->name, -err, verifier_log);
    }
    bpf_map* map;
    bpf_object__for_each_map(map, o->object) {
      if (!bpf_map__is_internal(map)) objects->maps.emplace(bpf_map__name(map), bpf_map__fd(map));
    }
    objects->objects.push_back(std::move(*o));
  }

  auto writer = BpfMaps::open({map_fd(objects->maps, "xlb_services_v4"), map_fd(objects->maps, "xlb_services_v6"),
                               map_fd(objects->maps, "xlb_ring_slots"), map_fd(objects->maps, "xlb_backends"),
                               map_fd(objects->maps, "xlb_frontend_addrs"), map_fd(objects->maps, "xlb_backend_cache"),
                               map_fd(objects->maps, "xlb_service_stats"), map_fd(objects->maps, "xlb_backend_stats"),
                               map_fd(objects->maps, "xlb_frontend_filter"), map_fd(objects->maps, "xlb_frontend_epoch")});
  if (!writer) return writer.error();
  objects->writer.emplace(std::move(*writer));
  return Datapath(std::move(objects));
}

MapWriter& Datapath::maps() { return *objects_->writer; }

int Datapath::program_fd(std::string_view name) const {
  for (const auto& o : objects_->objects)
    if (bpf_program* p = bpf_object__find_program_by_name(o.object, std::string(name).c_str())) return bpf_program__fd(p);
  return -1;
}

Capacity Datapath::capacity() const {
  return {objects_->writer->service_capacity(), objects_->writer->backend_capacity(), objects_->capacity_note,
          objects_->writer->ring_slot_capacity()};
}

Status Datapath::write_node(const NodeSettings& s) {
  const __u32 key = 0;
  const int node_fd = map_fd(objects_->maps, "xlb_node");
  xlb_node_config config{};
  if (int err = bpf_map_lookup_elem(node_fd, &key, &config); err != 0)
    return errno_error("read the node settings", -err);
  // Conntrack's seed stays what the maps were made with; a new datapath gets a random one.
  const uint32_t ct_seed = config.ct_seed;
  config = xlb_node_config{};
  config.ct_seed = ct_seed;
  while (config.ct_seed == 0) {
    if (::getrandom(&config.ct_seed, sizeof config.ct_seed, 0) != sizeof config.ct_seed)
      return errno_error("make conntrack's seed (getrandom)", errno);
  }
  if (s.snat_ipv4) std::memcpy(&config.snat_v4, s.snat_ipv4->bytes().data(), 4);
  if (s.snat_ipv6) std::memcpy(config.snat_v6, s.snat_ipv6->bytes().data(), 16);
  config.snat_port_min = s.snat_port_min;
  config.snat_port_max = s.snat_port_max;
  config.events_per_second = s.events_per_second;
  if (int err = bpf_map_update_elem(node_fd, &key, &config, BPF_ANY); err != 0)
    return errno_error("write the node settings", -err);
  xlb_dsr_config dsr{};
  if (s.dsr_source_ipv4) {
    std::memcpy(&dsr.src_v4, s.dsr_source_ipv4->address.bytes().data(), 4);
    dsr.src_v4_prefix_len = s.dsr_source_ipv4->length;
  }
  if (s.dsr_source_ipv6) {
    std::memcpy(dsr.src_v6, s.dsr_source_ipv6->address.bytes().data(), 16);
    dsr.src_v6_prefix_len = s.dsr_source_ipv6->length;
  }
  dsr.decap = s.decap;
  if (int err = bpf_map_update_elem(map_fd(objects_->maps, "xlb_dsr"), &key, &dsr, BPF_ANY); err != 0)
    return errno_error("write the dsr settings", -err);
  return objects_->writer->set_local_dsr_frontends(s.decap);
}

namespace {

uint32_t program_id(int fd) {
  bpf_prog_info info{};
  uint32_t length = sizeof info;
  return bpf_obj_get_info_by_fd(fd, &info, &length) == 0 ? info.id : 0;
}

// The name of a loaded program by its id ("" if it is gone).
std::string program_name(uint32_t id) {
  const int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return "";
  bpf_prog_info info{};
  uint32_t length = sizeof info;
  std::string name = bpf_obj_get_info_by_fd(fd, &info, &length) == 0 ? std::string(info.name) : "";
  ::close(fd);
  return name;
}

}  // namespace

Result<XdpMode> Datapath::attach_xdp(const std::string& interface, XdpMode wanted) {
  auto index = interface_index(interface);
  if (!index) return index.error();
  const int fd = bpf_program__fd(objects_->xdp().first_program());
  const auto flags = [](XdpMode m) { return m == XdpMode::native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE; };
  int err = bpf_xdp_attach(static_cast<int>(*index), fd, flags(wanted), nullptr);
  if (err == 0) return wanted;
  if (wanted == XdpMode::native && (err == -EOPNOTSUPP || err == -EINVAL)) {
    // A program left in the other mode blocks this one: take it off first.
    if (bpf_xdp_attach(static_cast<int>(*index), fd, flags(XdpMode::generic), nullptr) == 0) return XdpMode::generic;
  }
  return errno_error("attach XDP (" + std::string(to_string(wanted)) + ") to " + interface, -err,
                     err == -EEXIST ? "another XDP program is attached in the other mode; detach it first" : "");
}

Status Datapath::attach_tc(const std::string& interface, bool balance) {
  auto index = interface_index(interface);
  if (!index) return index.error();
  bpf_tc_hook hook{};
  hook.sz = sizeof hook;
  hook.ifindex = static_cast<int>(*index);
  hook.attach_point = BPF_TC_INGRESS;
  if (int err = bpf_tc_hook_create(&hook); err != 0 && err != -EEXIST)
    return errno_error("create the clsact qdisc on " + interface, -err);
  bpf_tc_opts opts{};
  opts.sz = sizeof opts;
  opts.prog_fd = program_fd(balance ? "xlb_tc_lb" : "xlb_tc");
  opts.handle = kTcHandle;
  opts.priority = kTcPriority;
  opts.flags = BPF_TC_F_REPLACE;
  if (balance) {
    // An xlb XDP program left by an earlier xdp_mode (this or an earlier xlbd's, recognised by
    // its name) would balance before the tc balancer: it goes. Another XDP program stays.
    bpf_xdp_query_opts query{};
    query.sz = sizeof query;
    if (bpf_xdp_query(static_cast<int>(*index), 0, &query) == 0) {
      for (const auto& [id, mode] : {std::pair{query.drv_prog_id, XDP_FLAGS_DRV_MODE},
                                    std::pair{query.skb_prog_id, XDP_FLAGS_SKB_MODE}}) {
        if (id == 0 || program_name(id) != "xlb_xdp") continue;
        if (int err = bpf_xdp_detach(static_cast<int>(*index), mode, nullptr); err != 0)
          return errno_error("take xlb's XDP program off " + interface + " for the tc balancer", -err);
      }
    }
  }
  if (int err = bpf_tc_attach(&hook, &opts); err != 0)
    return errno_error("attach the tc program to " + interface + " ingress", -err);
  return {};
}


Result<bool> Datapath::attached_to(const std::string& interface, bool xdp, bool tc_balance) const {
  auto index = interface_index(interface);
  if (!index) return index.error();
  if (xdp) {
    bpf_xdp_query_opts query{};
    query.sz = sizeof query;
    if (int err = bpf_xdp_query(static_cast<int>(*index), 0, &query); err != 0)
      return errno_error("query XDP on " + interface, -err);
    const uint32_t ours = program_id(bpf_program__fd(objects_->xdp().first_program()));
    if (query.drv_prog_id != ours && query.skb_prog_id != ours) return false;
  }
  bpf_tc_hook hook{};
  hook.sz = sizeof hook;
  hook.ifindex = static_cast<int>(*index);
  hook.attach_point = BPF_TC_INGRESS;
  bpf_tc_opts opts{};
  opts.sz = sizeof opts;
  opts.handle = kTcHandle;
  opts.priority = kTcPriority;
  if (int err = bpf_tc_query(&hook, &opts); err == -ENOENT || err == -EINVAL)
    return false;
  else if (err != 0)
    return errno_error("query tc on " + interface, -err);
  return opts.prog_id == program_id(program_fd(tc_balance ? "xlb_tc_lb" : "xlb_tc"));
}

namespace {

// The socket-LB programs that attach to a cgroup: every program of the xlb_sock object but its
// socket iterators, which user space runs instead (destroy_sockets_to).
bool is_cgroup_program(const bpf_program* program) {
  switch (bpf_program__expected_attach_type(program)) {
    case BPF_CGROUP_INET4_CONNECT:
    case BPF_CGROUP_INET6_CONNECT:
    case BPF_CGROUP_UDP4_SENDMSG:
    case BPF_CGROUP_UDP6_SENDMSG:
    case BPF_CGROUP_UDP4_RECVMSG:
    case BPF_CGROUP_UDP6_RECVMSG:
    case BPF_CGROUP_INET4_GETPEERNAME:
    case BPF_CGROUP_INET6_GETPEERNAME:
      return true;
    default:
      return false;
  }
}

// "xlb_connect4" -> "link_connect4": the pin of the program's cgroup link.
std::string link_pin_name(const bpf_program* program) {
  std::string_view name = bpf_program__name(program);
  if (name.starts_with("xlb_")) name.remove_prefix(4);
  return "link_" + std::string(name);
}

}  // namespace

Status Datapath::attach_cgroup(const fs::path& cgroup) {
  const std::string what = "attach socket-LB to cgroup " + cgroup.string();
  UniqueFd directory;
  bpf_program* program;
  bpf_object__for_each_program(program, objects_->sock().object) {
    if (!is_cgroup_program(program)) continue;
    const std::string attach = what + " (" + bpf_program__name(program) + ")";
    // A pinned link outlives xlbd: a restart swaps the program in it, and socket calls never
    // go untranslated in between.
    const fs::path pin = objects_->pin_dir.empty() ? fs::path() : objects_->pin_dir / link_pin_name(program);
    if (!pin.empty() && fs::exists(pin)) {
      std::unique_ptr<bpf_link, LinkDeleter> link(bpf_link__open(pin.c_str()));
      if (!link) return errno_error(attach + ": open the pinned link " + pin.string(), errno);
      if (int err = bpf_link__update_program(link.get(), program); err != 0)
        return errno_error(attach + ": update the pinned link", -err);
      continue;
    }
    if (!directory) {
      directory = UniqueFd(::open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!directory) return errno_error(what, errno, "is cgroup v2 mounted there?");
    }
    std::unique_ptr<bpf_link, LinkDeleter> link(bpf_program__attach_cgroup(program, directory.get()));
    if (!link) {
      const int err = errno;
      if (err == EBADF) return errno_error(what, err, "not a directory of the cgroup v2 hierarchy");
      return errno_error(attach, err, err == EPERM || err == EACCES ? kPrivilegeHint : "");
    }
    if (!pin.empty()) {
      if (int err = bpf_link__pin(link.get(), pin.c_str()); err != 0)
        return errno_error(attach + ": pin the link", -err);
    }
    objects_->links.push_back(std::move(link));
  }
  return {};
}

namespace {

// The network namespaces of this host, each once: those of every process (/proc/PID/ns/net)
// and the named ones (/run/netns/NAME, which may have no process but still hold sockets). An
// fd keeps each alive while a pass runs; one that went away meanwhile is simply not there.
std::vector<UniqueFd> network_namespaces() {
  std::vector<UniqueFd> namespaces;
  std::set<std::pair<dev_t, ino_t>> seen;
  auto add = [&](const fs::path& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0) return;
    if (seen.emplace(st.st_dev, st.st_ino).second) namespaces.push_back(std::move(fd));
  };
  add("/proc/thread-self/ns/net");  // this thread's own first
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      add(entry.path() / "ns" / "net");
  }
  for (const auto& entry : fs::directory_iterator("/run/netns", ec)) add(entry.path());
  return namespaces;
}

// Reads each iterator once in the calling thread's network namespace: the tcp and udp
// iterators visit the sockets of the namespace their reader was in when it created them.
Status run_iterators(const std::vector<bpf_link*>& links, const std::string& what) {
  for (bpf_link* link : links) {
    UniqueFd iterator(bpf_iter_create(bpf_link__fd(link)));
    if (!iterator) return errno_error(what + ": create a socket iterator", errno);
    char buffer[64];
    ssize_t n;
    while ((n = ::read(iterator.get(), buffer, sizeof buffer)) > 0) {
    }
    if (n < 0) return errno_error(what + ": run a socket iterator", errno);
  }
  return {};
}

}  // namespace

Result<uint32_t> Datapath::destroy_sockets_to(const model::IpAddress& address, uint16_t port) {
  return destroy_sockets_to(std::vector<Endpoint>{{address, port}});
}

namespace {

// bpf/lib/sock_destroy.h's struct xlb_sock_destroy_target (the socket programs' own).
struct SockDestroyTarget {
  __be32 address[4];
  __be16 port;
  __u8 family;
  __u8 pad;
};
static_assert(sizeof(SockDestroyTarget) == 20);

constexpr size_t kSockDestroyTargets = 4096;  // XLB_SOCK_DESTROY_TARGETS

std::string endpoints_text(const std::vector<Endpoint>& backends) {
  std::string text;
  for (size_t i = 0; i < backends.size() && i < 3; ++i)
    text += (i ? ", " : "") + backends[i].address.to_string() + ":" + std::to_string(backends[i].port);
  if (backends.size() > 3) text += " and " + std::to_string(backends.size() - 3) + " more";
  return text;
}

// Empties the targets map, whatever an earlier pass (or a crash in one) left there.
Status clear_targets(int fd, const std::string& what) {
  std::vector<SockDestroyTarget> keys;
  SockDestroyTarget key{};
  const void* previous = nullptr;
  while (bpf_map_get_next_key(fd, previous, &key) == 0) {
    keys.push_back(key);
    previous = &keys.back();
  }
  for (const auto& k : keys)
    if (int err = bpf_map_delete_elem(fd, &k); err != 0 && err != -ENOENT) return errno_error(what + ": clear the targets", -err);
  return {};
}

}  // namespace

Result<uint32_t> Datapath::destroy_sockets_to(const std::vector<Endpoint>& backends) {
  if (backends.empty()) return 0U;
  if (backends.size() > kSockDestroyTargets) {
    uint32_t total = 0;
    for (size_t at = 0; at < backends.size(); at += kSockDestroyTargets) {
      const auto end = std::min(backends.size(), at + kSockDestroyTargets);
      auto part = destroy_sockets_to(std::vector<Endpoint>(backends.begin() + static_cast<ptrdiff_t>(at),
                                                           backends.begin() + static_cast<ptrdiff_t>(end)));
      if (!part) return part.error();
      total += *part;
    }
    return total;
  }
  const std::string what = "destroy the sockets connected to backend" + std::string(backends.size() > 1 ? "s " : " ") +
                           endpoints_text(backends);
  bpf_object* object = objects_->sock().object;
  // The iterators read their targets from xlb_sock_destroy_targets and count in the object's
  // .bss what they did (bpf/lib/sock_destroy.h).
  bpf_map* bss = nullptr;
  bpf_map* map;
  bpf_object__for_each_map(map, object) {
    if (bpf_map__is_internal(map) && std::string_view(bpf_map__name(map)).ends_with(".bss")) bss = map;
  }
  if (!bss) return Error{what + ": the xlb_sock object has no .bss"};
  const int targets = map_fd(objects_->maps, "xlb_sock_destroy_targets");
  if (targets < 0) return Error{what + ": the xlb_sock object has no xlb_sock_destroy_targets map"};
  std::remove_pointer_t<decltype(xlb_sock::bss)> run{};
  const uint32_t zero = 0;
  if (int err = bpf_map_update_elem(bpf_map__fd(bss), &zero, &run, BPF_ANY); err != 0)
    return errno_error(what + ": zero the counts", -err);
  if (Status s = clear_targets(targets, what); !s) return s.error();
  for (const auto& b : backends) {
    SockDestroyTarget target{};
    std::memcpy(target.address, b.address.bytes().data(), b.address.is_v4() ? 4 : 16);
    target.port = htons(b.port);
    target.family = b.address.is_v4() ? XLB_AF_INET : XLB_AF_INET6;
    const uint8_t yes = 1;
    if (int err = bpf_map_update_elem(targets, &target, &yes, BPF_ANY); err != 0)
      return errno_error(what + ": write the targets", -err);
  }

  std::vector<std::unique_ptr<bpf_link, LinkDeleter>> links;
  std::vector<bpf_link*> raw_links;
  for (const char* name : {"xlb_sock_destroy_tcp", "xlb_sock_destroy_udp"}) {
    bpf_program* program = bpf_object__find_program_by_name(object, name);
    if (!program) return Error{what + ": the xlb_sock object has no " + name + " program"};
    std::unique_ptr<bpf_link, LinkDeleter> link(bpf_program__attach_iter(program, nullptr));
    if (!link) return errno_error(what + ": attach " + name, errno);
    raw_links.push_back(link.get());
    links.push_back(std::move(link));
  }

  // Pods live in network namespaces of their own, and an iterator sees only its reader's: one
  // pass per namespace, from a thread of its own that enters each in turn (a thread's network
  // namespace is its own, so the caller's stays as it is; the thread ends with the pass). The
  // program destroys the matching sockets as it goes and writes nothing, so each read ends at
  // once. A pass costs a walk of the host's socket tables per namespace, whatever the number of
  // targets: give it every backend that left in one change at once.
  const std::vector<UniqueFd> namespaces = network_namespaces();
  Status passed;
  std::thread([&] {
    for (const UniqueFd& netns : namespaces) {
      if (::setns(netns.get(), CLONE_NEWNET) != 0) {
        passed = errno_error(what + ": enter a network namespace", errno);
        return;
      }
      if (Status s = run_iterators(raw_links, what); !s) {
        passed = s;
        return;
      }
    }
  }).join();
  // Destroy nothing on a later, unrelated run of the iterators.
  if (Status s = clear_targets(targets, what); !s) return s.error();
  if (!passed) return passed.error();

  if (int err = bpf_map_lookup_elem(bpf_map__fd(bss), &zero, &run); err != 0)
    return errno_error(what + ": read what the iterators did", -err);
  const uint32_t destroyed = run.sock_destroy_done;
  const uint32_t failed = run.sock_destroy_failed;
  if (failed != 0)
    return Error{what + ": " + std::to_string(failed) + " of " + std::to_string(failed + destroyed) +
                 " sockets could not be destroyed (bpf_sock_destroy needs kernel 6.5 or later)"};
  return destroyed;
}

Result<Counters> Datapath::read_counters() const {
  Counters c;
  // The counter arrays are indexed by slot: each slot's owner now is the id it counts for.
  const Capacity capacity = this->capacity();
  std::map<uint32_t, Counter> by_slot;
  if (auto s = read_stats(map_fd(objects_->maps, "xlb_service_stats"), capacity.services + 1, by_slot, "service counters");
      !s)
    return s.error();
  for (const auto& [slot, counter] : by_slot)
    if (ServiceId id = objects_->writer->service_at_slot(slot); id != 0) c.services[id] = counter;
  by_slot.clear();
  if (auto s = read_stats(map_fd(objects_->maps, "xlb_backend_stats"), capacity.backends + 1, by_slot, "backend counters");
      !s)
    return s.error();
  for (const auto& [slot, counter] : by_slot)
    if (BackendId id = objects_->writer->backend_at_slot(slot); id != 0) c.backends[id] = counter;
  std::map<uint32_t, Counter> reasons;
  if (auto s = read_stats(map_fd(objects_->maps, "xlb_reason_stats"), XLB_REASON_MAX, reasons, "reason counters"); !s)
    return s.error();
  for (const auto& [code, counter] : reasons) {
    c.reasons[std::string(reason_name(code))] = counter;
    if (is_drop(code)) c.drops[std::string(reason_name(code))] = counter;
  }
  return c;
}

Result<std::unique_ptr<DropLog>> Datapath::open_drop_log() const {
  return DropLog::open(map_fd(objects_->maps, "xlb_events"), map_fd(objects_->maps, "xlb_event_budget"));
}

Result<FlowTables> Datapath::flow_tables() const {
  return FlowTables::open(map_fd(objects_->maps, "xlb_conntrack"), map_fd(objects_->maps, "xlb_affinity"),
                          map_fd(objects_->maps, "xlb_node"));
}

namespace {

// Whether the program with this id is one of ours: xlb's programs are all named xlb_*.
bool is_xlb_program(uint32_t id) {
  UniqueFd fd(bpf_prog_get_fd_by_id(id));
  if (!fd) return false;
  bpf_prog_info info{};
  uint32_t length = sizeof info;
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &length) != 0) return false;
  return std::string_view(info.name).starts_with("xlb_");
}

Status detach_xdp(const std::string& interface, unsigned index) {
  bpf_xdp_query_opts query{};
  query.sz = sizeof query;
  if (int err = bpf_xdp_query(static_cast<int>(index), 0, &query); err != 0)
    return errno_error("query XDP on " + interface, -err);
  for (auto [id, flags] : {std::pair{query.drv_prog_id, XDP_FLAGS_DRV_MODE}, std::pair{query.skb_prog_id, XDP_FLAGS_SKB_MODE}}) {
    if (id == 0 || !is_xlb_program(id)) continue;
    if (int err = bpf_xdp_detach(static_cast<int>(index), flags, nullptr); err != 0)
      return errno_error("detach XDP from " + interface, -err);
  }
  return {};
}

Status detach_tc(const std::string& interface, unsigned index) {
  bpf_tc_hook hook{};
  hook.sz = sizeof hook;
  hook.ifindex = static_cast<int>(index);
  hook.attach_point = BPF_TC_INGRESS;
  bpf_tc_opts opts{};
  opts.sz = sizeof opts;
  opts.handle = kTcHandle;
  opts.priority = kTcPriority;
  int err = bpf_tc_query(&hook, &opts);
  if (err == -ENOENT || err == -EINVAL) return {};  // no clsact, or no filter of ours
  if (err != 0) return errno_error("query tc on " + interface, -err);
  if (!is_xlb_program(opts.prog_id)) return {};
  opts.prog_id = 0;
  opts.prog_fd = 0;
  opts.flags = 0;
  if (err = bpf_tc_detach(&hook, &opts); err != 0) return errno_error("detach the tc program from " + interface, -err);
  return {};
}

}  // namespace

Status Datapath::cleanup(const fs::path& pin_dir, const std::vector<std::string>& interfaces) {
  for (const auto& interface : interfaces) {
    const unsigned index = ::if_nametoindex(interface.c_str());
    if (index == 0) continue;  // gone already
    if (auto s = detach_xdp(interface, index); !s) return s;
    if (auto s = detach_tc(interface, index); !s) return s;
  }
  // The cgroup links are pinned there: removing their pins, the last references, detaches them.
  std::error_code ec;
  fs::remove_all(pin_dir, ec);
  if (ec) return Error{"remove " + pin_dir.string() + ": " + ec.message()};
  // The dsr frontends a backend node made local (only xlb's own addresses go).
  return sync_local_addresses({});
}

}  // namespace xlb::datapath
