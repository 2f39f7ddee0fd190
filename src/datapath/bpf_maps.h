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
};

class BpfMaps final : public MapWriter {
 public:
  // Duplicates the fds: this object stays valid however long the loader keeps its own.
  static Result<BpfMaps> open(const MapFds& fds);

  Result<State> read() const override;
  Status upsert_backend(const BackendEntry& backend) override;
  Status remove_backend(BackendId id) override;
  Status upsert_frontends(const std::vector<FrontendEntry>& frontends) override;
  Status remove_frontends(const std::vector<FrontendKey>& keys) override;

 private:
  BpfMaps(UniqueFd v4, UniqueFd v6, UniqueFd rings, UniqueFd backends)
      : services_v4_(std::move(v4)), services_v6_(std::move(v6)), rings_(std::move(rings)),
        backends_(std::move(backends)) {}

  Status check_backends_exist(const std::vector<BackendId>& ring, std::set<BackendId>& known) const;
  Result<UniqueFd> create_ring(const std::vector<BackendId>& ring) const;
  Status install_rings(const std::vector<uint32_t>& ids, const std::vector<uint32_t>& fds);
  Status remove_rings(std::vector<ServiceId> ids);
  Result<std::vector<BackendId>> read_ring(ServiceId id, uint32_t size) const;
  Status read_frontends(bool v6, State& state) const;

  UniqueFd services_v4_;
  UniqueFd services_v6_;
  UniqueFd rings_;
  UniqueFd backends_;
};

}  // namespace xlb::datapath
