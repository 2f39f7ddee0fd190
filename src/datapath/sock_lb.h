// Socket-LB: translates connect() to a service address into a connect() to one of its
// backends, for processes in a cgroup v2 subtree (the programs are in bpf/xlb_sock.bpf.c).
//
// Map writes are ordered so that a live frontend never points at a missing ring or backend:
// write backends first, then services (each upsert installs its ring before the entry that
// uses it); remove services first, then the backends no service uses any more.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"

// libbpf's types, declared only: libbpf itself stays inside src/datapath.
struct xlb_sock;
struct bpf_link;

namespace xlb::datapath {

// One service id per frontend: the id names the frontend's ring.
using ServiceId = std::uint32_t;
// Chosen by the caller; 0 is reserved (it is what an unwritten ring slot holds).
using BackendId = std::uint32_t;

enum class Protocol : std::uint8_t { tcp = IPPROTO_TCP, udp = IPPROTO_UDP };

struct FrontendV4 {
  in_addr address{};
  std::uint16_t port = 0;  // host byte order
  Protocol protocol = Protocol::tcp;

  std::string to_string() const;  // "198.18.0.10:80/tcp"
};

class SockLb {
 public:
  // Loads the programs and creates their maps: the kernel's verifier checks them here.
  static Result<SockLb> load();

  // Translates connects of every process in `cgroup` and below, until this object is gone.
  Status attach(const std::filesystem::path& cgroup);

  // Creates or replaces a backend.
  Status upsert_backend(BackendId id, in_addr address, std::uint16_t port);
  // Removes a backend; removing one that is not there succeeds.
  Status remove_backend(BackendId id);

  // Creates or replaces the service at `frontend`. `ring` lists a backend id per slot (the
  // Maglev table); each connect picks a slot at random. Every backend in it must have been
  // written. An empty ring leaves connects to the frontend untranslated.
  Status upsert_service_v4(const FrontendV4& frontend, ServiceId id, std::span<const BackendId> ring);
  // Removes the service and its ring; removing one that is not there succeeds.
  Status remove_service_v4(const FrontendV4& frontend);

 private:
  struct SkeletonDeleter {
    void operator()(xlb_sock* skeleton) const;
  };
  struct LinkDeleter {
    void operator()(bpf_link* link) const;  // detaches
  };
  using Skeleton = std::unique_ptr<xlb_sock, SkeletonDeleter>;
  using Link = std::unique_ptr<bpf_link, LinkDeleter>;

  explicit SockLb(Skeleton skeleton) : skeleton_(std::move(skeleton)) {}

  Status check_backends_exist(std::span<const BackendId> ring) const;
  Status install_ring(ServiceId id, std::span<const BackendId> ring);
  Status remove_ring(ServiceId id);

  int services_v4_fd() const;
  int rings_fd() const;
  int backends_fd() const;

  Skeleton skeleton_;
  std::vector<Link> links_;  // declared after skeleton_: detached before the programs go
};

}  // namespace xlb::datapath
