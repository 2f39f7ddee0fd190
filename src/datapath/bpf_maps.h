// MapWriter over the kernel's load-balancing maps (services v4/v6, rings, backends), given by
// their fds. Every write keeps the maps consistent for a program reading them at that moment.
#pragma once

#include <set>
#include <vector>

#include "base/unique_fd.h"
#include "datapath/state.h"

namespace xlb::datapath {

struct MapFds {
  int services_v4 = -1;
  int services_v6 = -1;
  int rings = -1;
  int backends = -1;
  int frontend_addrs = -1;
  int backend_cache = -1;
  int service_stats = -1;
  int backend_stats = -1;
};

class BpfMaps final : public MapWriter {
 public:
  // Duplicates the fds: this object stays valid however long the loader keeps its own.
  static Result<BpfMaps> open(const MapFds& fds);

  Result<State> read() const override;
  // How many frontends (service ids) and backends the maps hold: their max_entries.
  uint32_t service_capacity() const { return service_capacity_; }
  uint32_t backend_capacity() const { return backend_capacity_; }

  Status upsert_backend(const BackendEntry& backend) override;
  Status remove_backend(BackendId id) override;
  Status upsert_frontends(const std::vector<FrontendEntry>& frontends) override;
  Status remove_frontends(const std::vector<FrontendKey>& keys) override;

  // On a backend node of dsr services (decap on): every change of the frontends also makes the
  // dsr frontends' addresses local (local_addresses.h), and only those. Off: xlb has none.
  // Syncs at once either way, so a restart finds lo as the maps say.
  Status set_local_dsr_frontends(bool on);

 private:
  BpfMaps() = default;

  Status check_backends_exist(const std::vector<BackendId>& ring, std::set<BackendId>& known) const;
  Result<UniqueFd> create_ring(const std::vector<BackendId>& ring) const;
  Status install_rings(const std::vector<uint32_t>& ids, const std::vector<uint32_t>& fds);
  Status remove_rings(std::vector<ServiceId> ids);
  // How many frontends an address has: the programs tell malformed packets to a frontend
  // address (dropped, counted) from others (passed). Counted up before a frontend is written,
  // down after it is gone, so a crash leaves a count too high (harmless), never too low.
  Status count_frontend_address(const model::IpAddress& address, int delta);
  Status forget_cached_backend(BackendId id);
  // A zeroed counter entry for a new service or backend id (bpf/lib/counters.h: the programs
  // count only ids that have one), and its removal.
  Status create_counters(int fd, uint32_t id, std::string_view what);
  Status delete_counters(int fd, uint32_t id, std::string_view what);
  Status adopt_counters();
  // A write refused because a map is full, said in terms of the node's capacity.
  Error full(std::string_view what, bool backends) const;
  Result<std::vector<BackendId>> read_ring(ServiceId id, uint32_t size) const;
  Status read_frontends(bool v6, State& state) const;
  Result<std::set<model::IpAddress>> dsr_frontend_addresses() const;
  Status sync_local_addresses() const;

  UniqueFd services_v4_;
  UniqueFd services_v6_;
  UniqueFd rings_;
  UniqueFd backends_;
  UniqueFd frontend_addrs_;
  UniqueFd backend_cache_;
  UniqueFd service_stats_;
  UniqueFd backend_stats_;
  uint32_t service_capacity_ = 0;
  uint32_t backend_capacity_ = 0;
  bool local_dsr_frontends_ = false;
};

}  // namespace xlb::datapath
