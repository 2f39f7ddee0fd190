// What the load-balancing maps hold, in model terms, and the interface that writes them. The
// engine plans against this interface; BpfMaps implements it over the kernel's maps, and tests
// implement it in memory. Nothing here needs libbpf or root.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "model/model.h"

namespace xlb::datapath {

// Chosen by the engine; 0 is reserved (it is what an unwritten ring slot holds). Below
// XLB_MAX_BACKENDS / XLB_MAX_SERVICES, since they index the counter arrays.
using BackendId = uint32_t;
using ServiceId = uint32_t;

struct BackendEntry {
  BackendId id = 0;
  model::IpAddress address;
  uint16_t port = 0;
  bool draining = false;  // keeps its established flows, gets no new ones

  bool operator==(const BackendEntry&) const = default;
};

struct FrontendKey {
  model::IpAddress address;
  uint16_t port = 0;
  model::Protocol protocol = model::Protocol::tcp;

  std::string to_string() const;  // "198.18.0.10:80/tcp"
  auto operator<=>(const FrontendKey&) const = default;
};

struct FrontendEntry {
  FrontendKey key;
  ServiceId service_id = 0;
  std::vector<BackendId> ring;  // a backend id per Maglev slot; empty = no backend
  bool snat = false;
  bool dsr = false;  // encapsulated to the backend, which answers the client itself
  bool affinity = false;
  uint32_t affinity_timeout_s = 0;

  bool operator==(const FrontendEntry&) const = default;
};

struct State {
  std::map<BackendId, BackendEntry> backends;
  std::map<FrontendKey, FrontendEntry> frontends;

  bool operator==(const State&) const = default;
};

// Each call leaves the maps consistent on its own: a frontend's ring is installed before the
// entry that uses it. Keeping frontends off missing backends is the caller's order (backends
// first, removals last), which Plan follows. Backends and frontends are written in batches: one
// call for many (a full sync of 10,000 services is 50,000 entries; one system call each took
// most of its time).
class MapWriter {
 public:
  virtual ~MapWriter() = default;

  // What the maps hold now: after a restart, or a crash in the middle of a plan, this is the
  // truth to plan from, not what the last run meant to write.
  virtual Result<State> read() const = 0;

  // A batch may stop half-way on an error: the backends before the failing one are written.
  virtual Status upsert_backends(const std::vector<BackendEntry>& backends) = 0;
  Status upsert_backend(const BackendEntry& backend) { return upsert_backends({backend}); }
  virtual Status remove_backend(BackendId id) = 0;
  virtual Status upsert_frontends(const std::vector<FrontendEntry>& frontends) = 0;
  virtual Status remove_frontends(const std::vector<FrontendKey>& keys) = 0;
};

}  // namespace xlb::datapath
