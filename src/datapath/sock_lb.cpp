#include "datapath/sock_lb.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>

#include <cerrno>
#include <numeric>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "datapath/errno_error.h"
#include "base/unique_fd.h"
#include "xlb_abi.h"
#include "xlb_sock.skel.h"

namespace xlb::datapath {
namespace {

// A failed load keeps the verifier's log in a buffer this large (the kernel keeps the end of a
// longer log), and the error quotes its last lines: they say what the verifier rejected.
constexpr size_t kVerifierLogSize = 1 << 20;
constexpr size_t kVerifierLogTailLines = 20;

// The last `count` lines of a NUL-terminated log.
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

Error load_error(int err, std::string_view verifier_log) {
  const std::string what = "load BPF programs xlb_sock";
  const std::string tail = tail_lines(verifier_log, kVerifierLogTailLines);
  if (tail.empty()) {
    const bool denied = err == EPERM || err == EACCES;
    return errno_error(what, err, denied ? kPrivilegeHint : std::string_view{});
  }
  return errno_error(what, err,
                     "the kernel's verifier rejected a program; the end of its log:\n" + tail);
}

std::string_view to_string(Protocol protocol) { return protocol == Protocol::tcp ? "tcp" : "udp"; }

std::string to_string(in_addr address) {
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &address, text, sizeof text);
  return text;
}

xlb_service_key_v4 make_key(const FrontendV4& frontend) {
  return {.address = frontend.address.s_addr,
          .port = htons(frontend.port),
          .protocol = static_cast<__u8>(frontend.protocol),
          .pad = 0};
}

// libbpf's low-level calls return -errno; a missing key is ENOENT.
Result<std::optional<xlb_service_value>> lookup_service(int fd, const xlb_service_key_v4& key) {
  xlb_service_value value{};
  const int err = bpf_map_lookup_elem(fd, &key, &value);
  if (err == 0) return std::optional(value);
  if (err == -ENOENT) return std::optional<xlb_service_value>();
  return errno_error("read the services map", -err);
}

Status delete_if_present(int fd, const void* key, std::string_view what) {
  const int err = bpf_map_delete_elem(fd, key);
  if (err == 0 || err == -ENOENT) return {};
  return errno_error(what, -err);
}

Status update(int fd, const void* key, const void* value, std::string_view what) {
  const int err = bpf_map_update_elem(fd, key, value, BPF_ANY);
  if (err == 0) return {};
  return errno_error(what, -err, err == -E2BIG ? "the map is full" : "");
}

}  // namespace

std::string FrontendV4::to_string() const {
  return datapath::to_string(address) + ":" + std::to_string(port) + "/" +
         std::string(datapath::to_string(protocol));
}

void SockLb::SkeletonDeleter::operator()(xlb_sock* skeleton) const { xlb_sock__destroy(skeleton); }
void SockLb::LinkDeleter::operator()(bpf_link* link) const { bpf_link__destroy(link); }

Result<SockLb> SockLb::load() {
  // libbpf loads quietly first; only when the verifier refuses does it load again with
  // the log on, into this buffer, so that the error can say why.
  std::string verifier_log(kVerifierLogSize, '\0');
  bpf_object_open_opts options{};
  options.sz = sizeof options;
  options.kernel_log_buf = verifier_log.data();
  options.kernel_log_size = verifier_log.size();

  Skeleton skeleton(xlb_sock__open_opts(&options));
  if (!skeleton) return errno_error("open BPF object xlb_sock", errno);
  if (const int err = xlb_sock__load(skeleton.get()); err != 0) return load_error(-err, verifier_log);
  return SockLb(std::move(skeleton));
}

Status SockLb::attach(const std::filesystem::path& cgroup) {
  const std::string what = "attach connect4 to cgroup " + cgroup.string();
  const UniqueFd directory(::open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!directory) return errno_error(what, errno, "is cgroup v2 mounted there?");

  bpf_link* link = bpf_program__attach_cgroup(skeleton_->progs.xlb_connect4, directory.get());
  if (link == nullptr) {
    const int err = errno;
    if (err == EPERM || err == EACCES) return errno_error(what, err, kPrivilegeHint);
    if (err == EBADF) return errno_error(what, err, "not a directory of the cgroup v2 hierarchy");
    return errno_error(what, err);
  }
  // The link holds the cgroup itself; the directory may close.
  links_.emplace_back(link);
  return {};
}

Status SockLb::upsert_backend(BackendId id, in_addr address, std::uint16_t port) {
  const std::string what = "upsert backend " + std::to_string(id) + " (" + to_string(address) + ":" +
                           std::to_string(port) + ")";
  if (id == XLB_BACKEND_ID_NONE) return Error{what + ": backend id 0 is reserved for empty ring slots"};
  const xlb_backend backend{.address = {address.s_addr, 0, 0, 0},
                            .port = htons(port),
                            .family = AF_INET,
                            .state = XLB_BACKEND_ACTIVE,
                            .reserved = 0};
  return update(backends_fd(), &id, &backend, what);
}

Status SockLb::remove_backend(BackendId id) {
  return delete_if_present(backends_fd(), &id, "remove backend " + std::to_string(id));
}

Status SockLb::upsert_service_v4(const FrontendV4& frontend, ServiceId id, std::span<const BackendId> ring) {
  const std::string what = "upsert service " + frontend.to_string();
  if (ring.size() > XLB_MAX_RING_SIZE) {
    return Error{what + ": a ring of " + std::to_string(ring.size()) + " slots is larger than the maximum " +
                 std::to_string(XLB_MAX_RING_SIZE)};
  }
  if (Status status = check_backends_exist(ring); !status) return prefixed(what, status.error());

  const xlb_service_key_v4 key = make_key(frontend);
  const Result<std::optional<xlb_service_value>> old = lookup_service(services_v4_fd(), key);
  if (!old) return prefixed(what, old.error());
  const xlb_service_value value{
      .service_id = id, .ring_size = static_cast<__u32>(ring.size()), .flags = 0, .affinity_timeout_s = 0};
  const std::string write_entry = what + ": write the service entry";

  // The programs pick a slot below the entry's ring_size in the ring under its service_id,
  // so an entry must never claim more slots than its installed ring has: a ring that grows
  // goes in before the entry, a ring that shrinks after the entry has shrunk.
  const bool shrinks = old->has_value() && (*old)->service_id == id && value.ring_size < (*old)->ring_size;
  if (shrinks) {
    if (Status s = update(services_v4_fd(), &key, &value, write_entry); !s) return s;
    if (Status s = install_ring(id, ring); !s) return prefixed(what, s.error());
  } else {
    if (Status s = install_ring(id, ring); !s) return prefixed(what, s.error());
    if (Status s = update(services_v4_fd(), &key, &value, write_entry); !s) return s;
  }

  // A frontend that moved to another service id leaves its old ring unused.
  if (old->has_value() && (*old)->service_id != id) {
    if (Status s = remove_ring((*old)->service_id); !s) return prefixed(what, s.error());
  }
  return {};
}

Status SockLb::remove_service_v4(const FrontendV4& frontend) {
  const std::string what = "remove service " + frontend.to_string();
  const xlb_service_key_v4 key = make_key(frontend);
  const Result<std::optional<xlb_service_value>> old = lookup_service(services_v4_fd(), key);
  if (!old) return prefixed(what, old.error());
  if (!old->has_value()) return {};

  // The entry first: once it is gone, nothing reaches the ring.
  if (Status s = delete_if_present(services_v4_fd(), &key, what); !s) return s;
  if (Status s = remove_ring((*old)->service_id); !s) return prefixed(what, s.error());
  return {};
}

Status SockLb::check_backends_exist(std::span<const BackendId> ring) const {
  const std::set<BackendId> ids(ring.begin(), ring.end());
  for (BackendId id : ids) {
    if (id == XLB_BACKEND_ID_NONE) return Error{"the ring holds backend id 0, which is reserved for empty slots"};
    xlb_backend backend{};
    const int err = bpf_map_lookup_elem(backends_fd(), &id, &backend);
    if (err == -ENOENT) {
      return Error{"the ring holds backend " + std::to_string(id) +
                   ", which is not in the backends map (write backends before the services that use them)"};
    }
    if (err != 0) return errno_error("read backend " + std::to_string(id), -err);
  }
  return {};
}

// A ring is a new array map, filled, then swapped in with one update of the outer map, so a
// program sees either the whole old ring or the whole new one.
Status SockLb::install_ring(ServiceId id, std::span<const BackendId> ring) {
  if (ring.empty()) return remove_ring(id);
  const std::string what = "install a ring of " + std::to_string(ring.size()) + " slots";

  // BPF_F_INNER_MAP must match the template in bpf/lib/maps.h; it allows any max_entries.
  bpf_map_create_opts options{};
  options.sz = sizeof options;
  options.map_flags = BPF_F_INNER_MAP;
  const auto slots = static_cast<__u32>(ring.size());
  const UniqueFd inner(bpf_map_create(BPF_MAP_TYPE_ARRAY, "xlb_ring", sizeof(__u32), sizeof(BackendId),
                                      slots, &options));
  if (!inner) return errno_error(what + ": create the array map", errno);

  std::vector<__u32> keys(ring.size());
  std::iota(keys.begin(), keys.end(), 0U);
  __u32 count = slots;
  if (const int err = bpf_map_update_batch(inner.get(), keys.data(), ring.data(), &count, nullptr); err != 0) {
    return errno_error(what + ": fill the slots", -err);
  }

  // The outer map keeps its own reference to the ring; ours closes on return.
  const int inner_fd = inner.get();
  return update(rings_fd(), &id, &inner_fd, what + ": swap it in");
}

Status SockLb::remove_ring(ServiceId id) {
  return delete_if_present(rings_fd(), &id, "remove the ring of service id " + std::to_string(id));
}

int SockLb::services_v4_fd() const { return bpf_map__fd(skeleton_->maps.xlb_services_v4); }
int SockLb::rings_fd() const { return bpf_map__fd(skeleton_->maps.xlb_rings); }
int SockLb::backends_fd() const { return bpf_map__fd(skeleton_->maps.xlb_backends); }

}  // namespace xlb::datapath
