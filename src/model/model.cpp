#include "model/model.h"

#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

namespace xlb::model {

Result<IpAddress> IpAddress::parse(std::string_view text) {
  const std::string s(text);
  IpAddress a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes_.data()) == 1) {
    a.family_ = Family::v4;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes_.data()) == 1) {
    a.family_ = Family::v6;
    return a;
  }
  return Error{"\"" + s + "\" is not an IPv4 or IPv6 address"};
}

IpAddress IpAddress::v4(uint32_t host_order) {
  IpAddress a;
  a.family_ = Family::v4;
  a.bytes_[0] = static_cast<uint8_t>(host_order >> 24);
  a.bytes_[1] = static_cast<uint8_t>(host_order >> 16);
  a.bytes_[2] = static_cast<uint8_t>(host_order >> 8);
  a.bytes_[3] = static_cast<uint8_t>(host_order);
  return a;
}

bool IpAddress::is_unspecified() const {
  const size_t n = is_v4() ? 4 : 16;
  return std::all_of(bytes_.begin(), bytes_.begin() + static_cast<long>(n),
                     [](uint8_t b) { return b == 0; });
}

bool IpAddress::is_multicast() const {
  return is_v4() ? (bytes_[0] & 0xf0) == 0xe0 : bytes_[0] == 0xff;
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
  return buf;
}

namespace {

template <class E, size_t N>
using Names = std::array<std::pair<E, std::string_view>, N>;

constexpr Names<Protocol, 2> kProtocols{{{Protocol::tcp, "tcp"}, {Protocol::udp, "udp"}}};
constexpr Names<FrontendKind, 5> kFrontendKinds{{{FrontendKind::vip, "vip"},
                                                 {FrontendKind::cluster_ip, "cluster-ip"},
                                                 {FrontendKind::node_port, "node-port"},
                                                 {FrontendKind::load_balancer, "load-balancer"},
                                                 {FrontendKind::external_ip, "external-ip"}}};
constexpr Names<ForwardingMode, 3> kModes{
    {{ForwardingMode::nat, "nat"}, {ForwardingMode::snat, "snat"}, {ForwardingMode::dsr, "dsr"}}};
constexpr Names<BackendState, 4> kStates{{{BackendState::active, "active"},
                                          {BackendState::draining, "draining"},
                                          {BackendState::down, "down"},
                                          {BackendState::maintenance, "maintenance"}}};
constexpr Names<HealthCheckType, 5> kHealthTypes{{{HealthCheckType::none, "none"},
                                                  {HealthCheckType::tcp, "tcp"},
                                                  {HealthCheckType::http, "http"},
                                                  {HealthCheckType::https, "https"},
                                                  {HealthCheckType::udp, "udp"}}};

template <class E, size_t N>
std::string_view name_of(const Names<E, N>& names, E value) {
  for (const auto& [e, name] : names)
    if (e == value) return name;
  return "?";
}

template <class E, size_t N>
std::optional<E> value_of(const Names<E, N>& names, std::string_view text) {
  for (const auto& [e, name] : names)
    if (name == text) return e;
  return std::nullopt;
}

std::string host_port(const IpAddress& address, uint16_t port) {
  const std::string host = address.is_v4() ? address.to_string() : "[" + address.to_string() + "]";
  return host + ":" + std::to_string(port);
}

}  // namespace

std::string_view to_string(Protocol v) { return name_of(kProtocols, v); }
std::string_view to_string(FrontendKind v) { return name_of(kFrontendKinds, v); }
std::string_view to_string(ForwardingMode v) { return name_of(kModes, v); }
std::string_view to_string(BackendState v) { return name_of(kStates, v); }
std::string_view to_string(HealthCheckType v) { return name_of(kHealthTypes, v); }

std::optional<Protocol> parse_protocol(std::string_view s) { return value_of(kProtocols, s); }
std::optional<FrontendKind> parse_frontend_kind(std::string_view s) {
  return value_of(kFrontendKinds, s);
}
std::optional<ForwardingMode> parse_forwarding_mode(std::string_view s) {
  return value_of(kModes, s);
}
std::optional<BackendState> parse_backend_state(std::string_view s) {
  return value_of(kStates, s);
}
std::optional<HealthCheckType> parse_health_check_type(std::string_view s) {
  return value_of(kHealthTypes, s);
}

std::string Frontend::to_string() const {
  return host_port(address, port) + "/" + std::string(model::to_string(protocol));
}

std::string Backend::key() const { return host_port(address, port); }

const Service* Catalog::find(std::string_view name) const {
  for (const auto& s : services)
    if (s.name == name) return &s;
  return nullptr;
}

size_t Catalog::frontend_count() const {
  size_t n = 0;
  for (const auto& s : services) n += s.frontends.size();
  return n;
}

size_t Catalog::backend_count() const {
  size_t n = 0;
  for (const auto& s : services) n += s.backends.size();
  return n;
}

std::string Location::describe(const Catalog& catalog) const {
  std::string out = "service";
  if (service < catalog.services.size() && !catalog.services[service].name.empty())
    out += " \"" + catalog.services[service].name + "\"";
  else
    out += " #" + std::to_string(service + 1);
  switch (part) {
    case Part::frontend: out += " frontend " + std::to_string(index + 1); break;
    case Part::backend: out += " backend " + std::to_string(index + 1); break;
    case Part::health: out += " health"; break;
    case Part::service: break;
  }
  return out;
}

namespace {

constexpr size_t kMaxNameLength = 253;  // a Kubernetes DNS subdomain name
constexpr uint32_t kMaxWeight = 65535;

class Validator {
 public:
  explicit Validator(const Catalog& catalog) : catalog_(catalog) {}

  std::vector<Problem> run() {
    std::map<std::string, size_t> names;
    for (size_t i = 0; i < catalog_.services.size(); ++i) {
      const Service& s = catalog_.services[i];
      check_name(i, s, names);
      for (size_t f = 0; f < s.frontends.size(); ++f) check_frontend(i, f, s);
      std::set<std::string> backend_keys;
      for (size_t b = 0; b < s.backends.size(); ++b) check_backend(i, b, s, backend_keys);
      check_families(i, s);
      check_health(i, s.health);
      if (s.affinity.client_ip && (s.affinity.timeout.count() < 1 || s.affinity.timeout.count() > 86400))
        add(i, Location::Part::service, 0, "affinity_timeout", "affinity timeout must be between 1s and 24h");
    }
    return std::move(problems_);
  }

 private:
  void add(size_t service, Location::Part part, size_t index, std::string key, std::string message) {
    problems_.push_back({{service, part, index, std::move(key)}, std::move(message)});
  }

  void check_name(size_t i, const Service& s, std::map<std::string, size_t>& names) {
    if (s.name.empty()) {
      add(i, Location::Part::service, 0, "name", "a service needs a name");
      return;
    }
    if (s.name.size() > kMaxNameLength)
      add(i, Location::Part::service, 0, "name",
          "name is longer than " + std::to_string(kMaxNameLength) + " characters");
    if (std::any_of(s.name.begin(), s.name.end(),
                    [](unsigned char c) { return c <= ' ' || c == 0x7f; }))
      add(i, Location::Part::service, 0, "name", "name must not contain spaces or control characters");
    auto [it, inserted] = names.emplace(s.name, i);
    if (!inserted)
      add(i, Location::Part::service, 0, "name",
          "duplicate service name \"" + s.name + "\" (also service #" + std::to_string(it->second + 1) +
              ")");
  }

  void check_frontend(size_t i, size_t f, const Service& s) {
    const Frontend& fe = s.frontends[f];
    if (fe.port == 0) add(i, Location::Part::frontend, f, "port", "port must be between 1 and 65535");
    if (fe.address.is_unspecified() || fe.address.is_multicast())
      add(i, Location::Part::frontend, f, "address",
          "address " + fe.address.to_string() + " cannot be a frontend (unspecified or multicast)");
    auto [it, inserted] = frontends_.emplace(std::tuple(fe.address, fe.port, fe.protocol),
                                             std::pair(i, f));
    if (!inserted) {
      const auto [other_service, other_index] = it->second;
      add(i, Location::Part::frontend, f, "",
          "duplicate frontend " + fe.to_string() + ": already " +
              Location{other_service, Location::Part::frontend, other_index, ""}.describe(catalog_));
    }
    if (s.mode == ForwardingMode::dsr) {
      for (size_t b = 0; b < s.backends.size(); ++b)
        if (s.backends[b].port != 0 && s.backends[b].port != fe.port)
          add(i, Location::Part::backend, b, "port",
              "port " + std::to_string(s.backends[b].port) + " differs from frontend port " +
                  std::to_string(fe.port) +
                  "; in dsr mode the packet reaches the backend unchanged, so it must listen on the "
                  "frontend's port");
    }
  }

  void check_backend(size_t i, size_t b, const Service& s, std::set<std::string>& keys) {
    const Backend& be = s.backends[b];
    if (be.port == 0) add(i, Location::Part::backend, b, "port", "port must be between 1 and 65535");
    if (be.address.is_unspecified() || be.address.is_multicast())
      add(i, Location::Part::backend, b, "address",
          "address " + be.address.to_string() + " cannot be a backend (unspecified or multicast)");
    if (be.weight > kMaxWeight)
      add(i, Location::Part::backend, b, "weight",
          "weight " + std::to_string(be.weight) + " is above the maximum " +
              std::to_string(kMaxWeight));
    if (!keys.insert(be.key()).second)
      add(i, Location::Part::backend, b, "", "duplicate backend " + be.key());
  }

  // A frontend can only be served by backends of its own address family: xlb does no NAT46/64.
  void check_families(size_t i, const Service& s) {
    if (s.backends.empty()) return;
    for (size_t f = 0; f < s.frontends.size(); ++f) {
      const auto family = s.frontends[f].address.family();
      const bool served = std::any_of(s.backends.begin(), s.backends.end(),
                                      [&](const Backend& be) { return be.address.family() == family; });
      if (!served)
        add(i, Location::Part::frontend, f, "address",
            std::string("no backend is ") + (family == IpAddress::Family::v4 ? "IPv4" : "IPv6") +
                " like frontend " + s.frontends[f].to_string() +
                "; xlb does not translate between IPv4 and IPv6");
    }
  }

  void check_health(size_t i, const HealthCheck& h) {
    if (h.type == HealthCheckType::none) return;
    if (h.http_path.empty() || h.http_path.front() != '/' ||
        std::any_of(h.http_path.begin(), h.http_path.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; }))
      add(i, Location::Part::health, 0, "path", "path must start with / and hold no spaces or control characters");
    if (h.expect_status != 0 && (h.expect_status < 100 || h.expect_status > 599))
      add(i, Location::Part::health, 0, "expect_status", "expect_status must be an HTTP status, 100-599");
    if (h.slow_factor == 1 || h.slow_factor > 100)
      add(i, Location::Part::health, 0, "slow_factor", "slow_factor must be 0 (off) or between 2 and 100");
    if (h.interval.count() <= 0)
      add(i, Location::Part::health, 0, "interval", "interval must be positive");
    if (h.timeout.count() <= 0)
      add(i, Location::Part::health, 0, "timeout", "timeout must be positive");
    else if (h.timeout > h.interval)
      add(i, Location::Part::health, 0, "timeout", "timeout must not be longer than interval");
  }

  const Catalog& catalog_;
  std::vector<Problem> problems_;
  std::map<std::tuple<IpAddress, uint16_t, Protocol>, std::pair<size_t, size_t>> frontends_;
};

}  // namespace

std::vector<Problem> validate(const Catalog& catalog) { return Validator(catalog).run(); }

}  // namespace xlb::model
