// The in-memory model every source produces and every output consumes: services, their
// frontends (where clients connect) and backends (where traffic goes). Knows nothing of
// TOML, Kubernetes, BPF or SQLite.
#pragma once

#include <array>
#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace xlb::model {

class IpAddress {
 public:
  enum class Family : uint8_t { v4 = 4, v6 = 6 };

  IpAddress() = default;
  static Result<IpAddress> parse(std::string_view text);
  static IpAddress v4(uint32_t host_order);

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::v4; }
  // Network byte order; an IPv4 address uses the first 4 bytes.
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  bool is_unspecified() const;
  bool is_multicast() const;
  std::string to_string() const;

  auto operator<=>(const IpAddress&) const = default;

 private:
  Family family_ = Family::v4;
  std::array<uint8_t, 16> bytes_{};
};

enum class Protocol : uint8_t { tcp, udp };
enum class FrontendKind : uint8_t { vip, cluster_ip, node_port, load_balancer, external_ip };
enum class ForwardingMode : uint8_t { nat, snat, dsr };
enum class BackendState : uint8_t { active, draining, down, maintenance };
enum class HealthCheckType : uint8_t { none, tcp, http, https, udp };

std::string_view to_string(Protocol);
std::string_view to_string(FrontendKind);
std::string_view to_string(ForwardingMode);
std::string_view to_string(BackendState);
std::string_view to_string(HealthCheckType);

std::optional<Protocol> parse_protocol(std::string_view);
std::optional<FrontendKind> parse_frontend_kind(std::string_view);
std::optional<ForwardingMode> parse_forwarding_mode(std::string_view);
std::optional<BackendState> parse_backend_state(std::string_view);
std::optional<HealthCheckType> parse_health_check_type(std::string_view);

struct Frontend {
  IpAddress address;
  uint16_t port = 0;
  Protocol protocol = Protocol::tcp;
  FrontendKind kind = FrontendKind::vip;

  // "198.18.0.10:80/tcp", "[2001:db8::1]:80/udp"
  std::string to_string() const;
  bool operator==(const Frontend&) const = default;
};

struct Backend {
  IpAddress address;
  uint16_t port = 0;
  uint32_t weight = 1;  // 0 = drained: no new flows, established ones continue
  BackendState state = BackendState::active;
  std::string node;
  std::string zone;

  // The stable identity of a backend within a service: "10.0.1.2:8080".
  std::string key() const;
  bool operator==(const Backend&) const = default;
};

struct HealthCheck {
  HealthCheckType type = HealthCheckType::none;
  std::chrono::milliseconds interval{2000};
  std::chrono::milliseconds timeout{1000};
  uint32_t rise = 2;  // probes in a row that must pass before a backend counts as up
  uint32_t fall = 3;  // probes in a row that must fail before it counts as down
  std::string http_path = "/";
  uint16_t expect_status = 0;  // http(s): the status a healthy backend answers; 0: any 2xx or 3xx
  uint16_t port = 0;  // where probes go; 0: the backend's own port
  // Latency awareness: a backend whose probes take more than slow_factor times its peers'
  // median gets a quarter of its share of new flows (never none) until it is back under half
  // of that. 0: off.
  uint32_t slow_factor = 0;
  bool operator==(const HealthCheck&) const = default;
};

// ClientIP session affinity, as Kubernetes' sessionAffinity: a client address keeps its backend
// while it keeps talking, and may move after `timeout` of silence.
struct Affinity {
  bool client_ip = false;
  std::chrono::seconds timeout{10800};
  bool operator==(const Affinity&) const = default;
};

struct Service {
  std::string name;
  std::string source;  // who declared it: "" for the config file, "kubernetes"
  ForwardingMode mode = ForwardingMode::nat;
  Affinity affinity;
  std::vector<Frontend> frontends;
  std::vector<Backend> backends;
  HealthCheck health;
  std::optional<uint32_t> maglev_table_size;  // pinned ring size; otherwise chosen per service
  bool operator==(const Service&) const = default;
};

struct Catalog {
  std::vector<Service> services;

  const Service* find(std::string_view name) const;
  size_t frontend_count() const;
  size_t backend_count() const;
  bool operator==(const Catalog&) const = default;
};

// A change to a catalog by service name: the whole new value of each service added or changed,
// the name of each one removed. Sources that know what changed (Kubernetes) hand these over
// instead of whole catalogs, so that a change costs what changed, not the catalog's size.
struct CatalogChanges {
  std::vector<Service> upserted;
  std::vector<std::string> removed;

  bool empty() const { return upserted.empty() && removed.empty(); }
  bool operator==(const CatalogChanges&) const = default;
};

// Where in a catalog a problem is, so that a source can map it back to its own input
// (a TOML line, a Kubernetes object).
struct Location {
  enum class Part : uint8_t { service, frontend, backend, health };
  size_t service = 0;
  Part part = Part::service;
  size_t index = 0;       // frontend or backend index within the service
  std::string key;        // the field at fault, e.g. "port"; empty for the whole item

  // "service \"web\" backend 2" style, for messages that have no better location.
  std::string describe(const Catalog&) const;
};

struct Problem {
  Location location;
  std::string message;
};

// Every problem of the catalog, not just the first: an operator fixes them in one pass.
std::vector<Problem> validate(const Catalog&);

}  // namespace xlb::model
