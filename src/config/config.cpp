#include "config/config.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include <toml++/toml.h>

#include "maglev/maglev.h"

namespace xlb::config {

std::string_view to_string(XdpMode m) {
  switch (m) {
    case XdpMode::native: return "native";
    case XdpMode::generic: return "generic";
    case XdpMode::off: return "off";
    case XdpMode::tc: return "tc";
  }
  return "?";
}

std::string Prefix::to_string() const { return address.to_string() + "/" + std::to_string(length); }

namespace {

constexpr size_t kMaxConfigBytes = 16 << 20;
constexpr size_t kMaxInterfaceName = 15;  // IFNAMSIZ - 1

struct Diagnostic {
  toml::source_position position;
  std::string message;
};

// Messages quote the input (keys, values, toml++'s "saw 't<LF>'"): control characters in it
// are escaped, so that each problem stays one line, as the Error promises and logs need.
std::string printable(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += {'\\', 'x', kHex[u >> 4], kHex[u & 0xf]};
    } else {
      out += c;
    }
  }
  return out;
}

class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  void add(const toml::source_position& at, std::string message) {
    items_.push_back({at, printable(message)});
  }
  bool empty() const { return items_.empty(); }

  Error to_error() {
    std::stable_sort(items_.begin(), items_.end(), [](const Diagnostic& a, const Diagnostic& b) {
      return a.position.line != b.position.line ? a.position.line < b.position.line
                                                : a.position.column < b.position.column;
    });
    std::string out;
    for (const auto& d : items_) {
      if (!out.empty()) out += "\n";
      out += file_ + ":" + std::to_string(d.position.line) + ":" + std::to_string(d.position.column) +
             ": " + d.message;
    }
    return Error{out};
  }

 private:
  std::string file_;
  std::vector<Diagnostic> items_;
};

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substitution = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      diagonal = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitution});
    }
  }
  return row[b.size()];
}

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number with a fraction";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
  }
}

// Reads one TOML table: typed getters that report missing keys and wrong types, and a finish()
// that reports every key nobody asked for, so a typo never passes silently.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string context, Diagnostics& diagnostics)
      : table_(table), context_(std::move(context)), diagnostics_(diagnostics) {}

  const std::string& context() const { return context_; }
  toml::source_position position() const { return table_.source().begin; }

  std::optional<std::string> string(std::string_view key, bool required) {
    const toml::node* n = get(key, required);
    if (!n) return std::nullopt;
    if (auto v = n->value<std::string>()) return *v;
    wrong_type(*n, key, "a string");
    return std::nullopt;
  }

  std::optional<bool> boolean(std::string_view key, bool required) {
    const toml::node* n = get(key, required);
    if (!n) return std::nullopt;
    if (auto v = n->value<bool>()) return *v;
    wrong_type(*n, key, "a boolean");
    return std::nullopt;
  }

  std::optional<int64_t> integer(std::string_view key, bool required) {
    const toml::node* n = get(key, required);
    if (!n) return std::nullopt;
    if (n->is_integer()) return n->as_integer()->get();
    wrong_type(*n, key, "an integer");
    return std::nullopt;
  }

  std::optional<int64_t> integer_in(std::string_view key, bool required, int64_t lo, int64_t hi) {
    auto v = integer(key, required);
    if (v && (*v < lo || *v > hi)) {
      error_at(*table_.get(key), key,
               std::to_string(*v) + " is out of range " + std::to_string(lo) + ".." + std::to_string(hi));
      return std::nullopt;
    }
    return v;
  }

  const toml::array* array(std::string_view key, bool required) {
    const toml::node* n = get(key, required);
    if (!n) return nullptr;
    if (auto a = n->as_array()) return a;
    wrong_type(*n, key, "an array");
    return nullptr;
  }

  const toml::table* table(std::string_view key) {
    const toml::node* n = get(key, false);
    if (!n) return nullptr;
    if (auto t = n->as_table()) return t;
    wrong_type(*n, key, "a table");
    return nullptr;
  }

  // For keys whose value is one of a few words; `parse` returns nullopt for an unknown word.
  template <class E>
  std::optional<E> choice(std::string_view key, std::optional<E> (*parse)(std::string_view),
                          std::string_view allowed) {
    auto text = string(key, false);
    if (!text) return std::nullopt;
    if (auto v = parse(*text)) return v;
    error_at(*table_.get(key), key, "\"" + *text + "\" is not one of " + std::string(allowed));
    return std::nullopt;
  }

  void error_at(const toml::node& n, std::string_view key, const std::string& message) {
    diagnostics_.add(n.source().begin, prefix() + "key \"" + std::string(key) + "\": " + message);
  }

  void error(const std::string& message) { diagnostics_.add(position(), prefix() + message); }

  void finish(std::initializer_list<std::string_view> known) {
    for (const auto& [key, node] : table_) {
      if (asked_.count(std::string(key.str()))) continue;
      std::string message = prefix() + "unknown key \"" + std::string(key.str()) + "\"";
      std::string_view best;
      size_t best_distance = 3;  // suggest only close matches
      for (auto k : known) {
        const size_t d = edit_distance(key.str(), k);
        if (d < best_distance) best_distance = d, best = k;
      }
      if (!best.empty()) {
        message += "; did you mean \"" + std::string(best) + "\"?";
      } else {
        message += " (known keys:";
        for (auto k : known) message += " " + std::string(k);
        message += ")";
      }
      diagnostics_.add(key.source().begin.line ? key.source().begin : node.source().begin, message);
    }
  }

 private:
  std::string prefix() const { return context_.empty() ? "" : context_ + ": "; }

  const toml::node* get(std::string_view key, bool required) {
    asked_.insert(std::string(key));
    const toml::node* n = table_.get(key);
    if (!n && required) error("missing required key \"" + std::string(key) + "\"");
    return n;
  }

  void wrong_type(const toml::node& n, std::string_view key, std::string_view expected) {
    error_at(n, key, "must be " + std::string(expected) + ", not " + type_name(n));
  }

  const toml::table& table_;
  std::string context_;
  Diagnostics& diagnostics_;
  std::set<std::string> asked_;
};

// Where each catalog item came from, so model-level problems point at the right line.
struct ServiceOrigin {
  const toml::table* table = nullptr;
  std::vector<const toml::table*> frontends;
  std::vector<const toml::table*> backends;
  const toml::table* health = nullptr;
};

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  static const std::pair<std::string_view, int64_t> units[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}};
  for (const auto& [suffix, factor] : units) {
    if (text.size() <= suffix.size() || !text.ends_with(suffix)) continue;
    const auto digits = text.substr(0, text.size() - suffix.size());
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    if (digits.size() > 9) return std::nullopt;
    return std::chrono::milliseconds(std::stoll(std::string(digits)) * factor);
  }
  return std::nullopt;
}

class ConfigReader {
 public:
  explicit ConfigReader(Diagnostics& diagnostics) : diagnostics_(diagnostics) {}

  Config read(const toml::table& root) {
    TableReader top(root, "", diagnostics_);
    if (auto t = top.table("node")) read_node(*t);
    if (auto t = top.table("api")) read_api(*t);
    if (auto t = top.table("maglev")) read_maglev(*t);
    if (auto t = top.table("defaults")) read_defaults(*t);
    if (auto t = top.table("kubernetes")) read_kubernetes(*t);
    if (auto t = top.table("bgp")) read_bgp(*t);
    if (auto services = top.array("service", false)) read_services(*services);
    top.finish({"node", "api", "maglev", "defaults", "kubernetes", "bgp", "service"});
    return config_;
  }

  const std::vector<ServiceOrigin>& origins() const { return origins_; }

 private:
  void read_node(const toml::table& t) {
    TableReader r(t, "node", diagnostics_);
    if (auto m = r.choice<NodeMode>("mode", parse_node_mode, "serve, shadow")) config_.node.mode = *m;
    if (auto list = r.array("interfaces", false)) {
      for (const auto& item : *list) {
        auto name = item.value<std::string>();
        if (!name || name->empty() || name->size() > kMaxInterfaceName)
          r.error_at(item, "interfaces", "each interface must be a name of 1 to 15 characters");
        else
          config_.node.interfaces.push_back(*name);
      }
    }
    if (auto m = r.choice<XdpMode>("xdp_mode", parse_xdp_mode, "native, generic, off, tc"))
      config_.node.xdp_mode = *m;
    if (auto c = r.string("cgroup", false)) {
      if (*c != "auto" && *c != "off" && !c->starts_with("/"))
        r.error_at(*t.get("cgroup"), "cgroup", "must be \"auto\", \"off\" or an absolute path");
      else
        config_.node.cgroup = *c;
    }
    read_snat(r, t);
    read_dsr(r, t);
    // Below the ABI's id space (bpf/include/xlb_abi.h: 1 << 22).
    if (auto v = r.integer_in("max_services", false, 1, (1 << 22) - 1)) config_.node.max_services = static_cast<uint32_t>(*v);
    if (auto v = r.integer_in("max_backends", false, 1, (1 << 22) - 1)) config_.node.max_backends = static_cast<uint32_t>(*v);
    // At least one ring of the largest size; at most 4 GiB of slots (datapath.h: kMaxRingSlotsBound).
    if (auto v = r.integer_in("max_ring_slots", false, 131071, 1 << 30)) config_.node.max_ring_slots = static_cast<uint32_t>(*v);
    r.finish({"mode", "interfaces", "xdp_mode", "cgroup", "snat_ipv4", "snat_ipv6", "snat_port_min", "snat_port_max",
              "dsr_source_ipv4", "dsr_source_ipv6", "decap", "max_services", "max_backends",
              "max_ring_slots"});
  }

  void read_dsr(TableReader& r, const toml::table& t) {
    for (auto [key, field, v4] : {std::tuple{"dsr_source_ipv4", &config_.node.dsr_source_ipv4, true},
                                  std::tuple{"dsr_source_ipv6", &config_.node.dsr_source_ipv6, false}}) {
      auto text = r.string(key, false);
      if (!text) continue;
      auto prefix = parse_prefix(*text, v4);
      if (!prefix)
        r.error_at(*t.get(key), key, prefix.error().message);
      else
        *field = *prefix;
    }
    if (auto b = r.boolean("decap", false)) config_.node.decap = *b;
    // Decapsulation happens in tc on the configured links: without one it would silently not.
    if (config_.node.decap && config_.node.interfaces.empty())
      r.error_at(*t.get("decap"), "decap", "needs [node] interfaces: the links where the load balancers' packets arrive");
  }

  // "ADDRESS/LENGTH" of the family; the host bits must be 0, so that what is written is what
  // is meant.
  static Result<Prefix> parse_prefix(std::string_view text, bool v4) {
    const std::string family = v4 ? "IPv4" : "IPv6";
    const unsigned max = v4 ? 32 : 128;
    const std::string usage = "must be an " + family + " prefix such as " + (v4 ? "\"10.99.0.0/16\"" : "\"fd00:99::/64\"");
    const auto slash = text.find('/');
    if (slash == std::string_view::npos) return Error{usage};
    auto address = model::IpAddress::parse(text.substr(0, slash));
    if (!address || address->is_v4() != v4) return Error{usage};
    const auto digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return Error{usage};
    const unsigned length = static_cast<unsigned>(std::stoul(std::string(digits)));
    if (length < 1 || length > max) return Error{"prefix length " + std::to_string(length) + " is out of range 1.." + std::to_string(max)};
    const auto& bytes = address->bytes();
    for (unsigned bit = length; bit < max; ++bit)
      if (bytes[bit / 8] & (0x80 >> (bit % 8)))
        return Error{"has host bits set after /" + std::to_string(length) + "; did you mean " +
                     Prefix{*address, static_cast<uint8_t>(length)}.to_string() + "?"};
    return Prefix{*address, static_cast<uint8_t>(length)};
  }

  void read_defaults(const toml::table& t) {
    TableReader r(t, "defaults", diagnostics_);
    if (auto m = r.choice<model::ForwardingMode>("mode", model::parse_forwarding_mode, "nat, snat, dsr"))
      config_.defaults.mode = *m;
    r.finish({"mode"});
  }

  void read_snat(TableReader& r, const toml::table& t) {
    for (auto [key, field, v4] : {std::tuple{"snat_ipv4", &config_.node.snat_ipv4, true},
                                  std::tuple{"snat_ipv6", &config_.node.snat_ipv6, false}}) {
      auto text = r.string(key, false);
      if (!text) continue;
      auto a = model::IpAddress::parse(*text);
      if (!a)
        r.error_at(*t.get(key), key, a.error().message);
      else if (a->is_v4() != v4)
        r.error_at(*t.get(key), key, std::string("must be an ") + (v4 ? "IPv4" : "IPv6") + " address");
      else
        *field = *a;
    }
    if (auto v = r.integer_in("snat_port_min", false, 1, 65535)) config_.node.snat_port_min = static_cast<uint16_t>(*v);
    if (auto v = r.integer_in("snat_port_max", false, 1, 65535)) config_.node.snat_port_max = static_cast<uint16_t>(*v);
    if (config_.node.snat_port_min > config_.node.snat_port_max)
      r.error("snat_port_min " + std::to_string(config_.node.snat_port_min) + " is larger than snat_port_max " +
              std::to_string(config_.node.snat_port_max));
  }

  static std::optional<NodeMode> parse_node_mode(std::string_view s) {
    if (s == "serve") return NodeMode::serve;
    if (s == "shadow") return NodeMode::shadow;
    return std::nullopt;
  }

  static std::optional<XdpMode> parse_xdp_mode(std::string_view s) {
    for (auto m : {XdpMode::native, XdpMode::generic, XdpMode::off, XdpMode::tc})
      if (to_string(m) == s) return m;
    return std::nullopt;
  }

  void read_api(const toml::table& t) {
    TableReader r(t, "api", diagnostics_);
    if (auto listen = r.string("listen", false)) {
      if (*listen == "off" || valid_listen(*listen))
        config_.api.listen = *listen;
      else
        r.error_at(*t.get("listen"), "listen",
                   "\"" + *listen + "\" is not ADDRESS:PORT (e.g. 127.0.0.1:9180 or [::1]:9180) or \"off\"");
    }
    r.finish({"listen"});
  }

  static bool valid_listen(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon + 1 == text.size()) return false;
    std::string host = text.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const std::string port = text.substr(colon + 1);
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit)) return false;
    const int p = std::stoi(port);
    return p >= 1 && p <= 65535 && model::IpAddress::parse(host).ok();
  }

  void read_kubernetes(const toml::table& t) {
    TableReader r(t, "kubernetes", diagnostics_);
    KubernetesConfig& k = config_.kubernetes;
    if (auto b = r.boolean("enabled", false)) k.enabled = *b;
    if (auto v = r.string("kubeconfig", false)) k.kubeconfig = *v;
    if (auto v = r.string("node_name", false)) k.node_name = *v;
    if (auto v = r.string("zone", false)) k.zone = *v;
    if (auto v = r.string("service_proxy_name", false)) k.service_proxy_name = *v;
    if (auto list = r.array("node_addresses", false)) {
      for (const auto& item : *list) {
        auto text = item.value<std::string>();
        auto address = text ? model::IpAddress::parse(*text) : Result<model::IpAddress>(Error{"must be a string"});
        if (!address)
          r.error_at(item, "node_addresses", address.error().message);
        else
          k.node_addresses.push_back(*address);
      }
    }
    if (auto m = r.choice<model::ForwardingMode>("forwarding_mode", model::parse_forwarding_mode, "nat, snat, dsr"))
      k.forwarding_mode = *m;
    if (auto v = r.integer_in("watch_silence_timeout", false, 5, 3600)) k.silence_timeout_s = static_cast<uint32_t>(*v);
    r.finish({"enabled", "kubeconfig", "node_name", "node_addresses", "zone", "service_proxy_name", "forwarding_mode",
              "watch_silence_timeout"});
  }

  void read_bgp(const toml::table& t) {
    TableReader r(t, "bgp", diagnostics_);
    BgpConfig& b = config_.bgp;
    if (auto v = r.boolean("enabled", false)) b.enabled = *v;
    if (auto v = r.integer_in("local_asn", b.enabled, 1, 4294967294)) b.local_asn = static_cast<uint32_t>(*v);
    if (auto text = r.string("router_id", false)) {
      auto a = model::IpAddress::parse(*text);
      if (!a || !a->is_v4() || a->is_unspecified())
        r.error_at(*t.get("router_id"), "router_id", "\"" + *text + "\" is not an IPv4 address other than 0.0.0.0 (BGP router ids are written as one)");
      else
        b.router_id = *a;
    }
    if (auto list = r.array("peer", false)) {
      for_each_table(r, *list, "peer", [&](const toml::table& pt, size_t i) {
        if (auto peer = read_bgp_peer(pt, "bgp peer " + std::to_string(i + 1))) {
          const bool twice = std::any_of(b.peers.begin(), b.peers.end(), [&](const BgpPeer& p) { return p.address == peer->address; });
          if (twice)
            diagnostics_.add(pt.source().begin, "bgp peer " + std::to_string(i + 1) + ": address " + peer->address.to_string() + " is listed twice");
          else
            b.peers.push_back(*peer);
        }
      }, "bgp.peer");
    }
    if (b.enabled && b.peers.empty()) r.error("enabled = true needs at least one [[bgp.peer]]: the router(s) to announce the VIPs to");
    if (auto list = r.array("communities", false)) {
      for (const auto& item : *list) {
        auto text = item.value<std::string>();
        if (!text || !valid_community(*text))
          r.error_at(item, "communities", "each community must be \"ASN:VALUE\" (0..65535 each) or a large community \"A:B:C\" (0..4294967295 each)");
        else
          b.communities.push_back(*text);
      }
    }
    for (auto [key, field] : {std::pair{"bird_socket", &b.bird_socket}, std::pair{"bird_include", &b.bird_include}}) {
      auto text = r.string(key, false);
      if (!text) continue;
      if (!text->starts_with("/") || text->find('"') != std::string::npos)
        r.error_at(*t.get(key), key, "must be an absolute path (without a double quote)");
      else
        *field = *text;
    }
    if (auto text = r.string("drain_time", false)) {
      auto d = parse_duration(*text);
      if (*text == "0") d = std::chrono::milliseconds(0);
      if (!d || *d > std::chrono::minutes(10))
        r.error_at(*t.get("drain_time"), "drain_time", "\"" + *text + "\" is not a duration from \"0\" to \"10m\", like \"500ms\" or \"5s\"");
      else
        b.drain_time = *d;
    }
    r.finish({"enabled", "local_asn", "router_id", "peer", "communities", "bird_socket", "bird_include", "drain_time"});
  }

  std::optional<BgpPeer> read_bgp_peer(const toml::table& t, std::string context) {
    TableReader r(t, std::move(context), diagnostics_);
    BgpPeer p;
    const auto a = address(r, t);
    const auto asn = r.integer_in("asn", true, 1, 4294967294);
    if (auto hold = r.integer_in("hold_time", false, 0, 65535)) {
      // RFC 4271: a hold time is 0 (no keepalives) or at least 3 seconds.
      if (*hold > 0 && *hold < 3)
        r.error_at(*t.get("hold_time"), "hold_time", std::to_string(*hold) + " is below 3: a BGP hold time is 0 or at least 3 seconds");
      else
        p.hold_time_s = static_cast<uint32_t>(*hold);
    }
    if (auto v = r.boolean("bfd", false)) p.bfd = *v;
    if (auto v = r.integer_in("port", false, 1, 65535)) p.port = static_cast<uint16_t>(*v);
    r.finish({"address", "asn", "hold_time", "bfd", "port"});
    if (!a || !asn) return std::nullopt;
    p.address = *a;
    p.asn = static_cast<uint32_t>(*asn);
    return p;
  }

  static bool valid_community(std::string_view text) {
    std::vector<std::string_view> parts;
    size_t start = 0;
    for (size_t colon; (colon = text.find(':', start)) != std::string_view::npos; start = colon + 1)
      parts.push_back(text.substr(start, colon - start));
    parts.push_back(text.substr(start));
    if (parts.size() != 2 && parts.size() != 3) return false;
    const uint64_t max = parts.size() == 2 ? 65535 : 4294967295;
    for (auto part : parts) {
      if (part.empty() || part.size() > 10 || !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return false;
      if (std::stoull(std::string(part)) > max) return false;
    }
    return true;
  }

  void read_maglev(const toml::table& t) {
    TableReader r(t, "maglev", diagnostics_);
    if (auto seed = r.string("seed", false)) {
      if (seed->empty())
        r.error_at(*t.get("seed"), "seed", "must not be empty");
      else
        config_.maglev.seed = *seed;
    }
    if (auto v = table_size(r, t, "min_table_size")) config_.maglev.min_table_size = *v;
    if (auto v = table_size(r, t, "max_table_size")) config_.maglev.max_table_size = *v;
    if (config_.maglev.min_table_size > config_.maglev.max_table_size)
      r.error("min_table_size " + std::to_string(config_.maglev.min_table_size) +
              " is larger than max_table_size " + std::to_string(config_.maglev.max_table_size));
    r.finish({"seed", "min_table_size", "max_table_size"});
  }

  static std::optional<uint32_t> table_size(TableReader& r, const toml::table& t, std::string_view key) {
    auto v = r.integer(key, false);
    if (!v) return std::nullopt;
    const auto& sizes = maglev::kTableSizes;
    if (std::find(sizes.begin(), sizes.end(), *v) == sizes.end()) {
      std::string list;
      for (auto s : sizes) list += (list.empty() ? "" : ", ") + std::to_string(s);
      r.error_at(*t.get(key), key, std::to_string(*v) + " is not one of the ring sizes " + list);
      return std::nullopt;
    }
    return static_cast<uint32_t>(*v);
  }

  void read_services(const toml::array& services) {
    for (size_t i = 0; i < services.size(); ++i) {
      const auto* t = services[i].as_table();
      if (!t) {
        diagnostics_.add(services[i].source().begin,
                         "service " + std::to_string(i + 1) + ": must be a table ([[service]])");
        continue;
      }
      read_service(*t, i);
    }
  }

  void read_service(const toml::table& t, size_t index) {
    ServiceOrigin origin{&t, {}, {}, nullptr};
    model::Service s;
    const auto* name_node = t.get("name");
    const auto name = name_node ? name_node->value<std::string>() : std::nullopt;
    const std::string context = name ? "service \"" + *name + "\"" : "service " + std::to_string(index + 1);
    TableReader r(t, context, diagnostics_);
    if (auto n = r.string("name", true)) s.name = *n;
    s.mode = config_.defaults.mode;
    if (auto m = r.choice<model::ForwardingMode>("mode", model::parse_forwarding_mode, "nat, snat, dsr"))
      s.mode = *m;
    if (auto size = table_size(r, t, "maglev_table_size")) s.maglev_table_size = *size;
    if (auto list = r.array("frontend", true)) {
      for_each_table(r, *list, "frontend", [&](const toml::table& ft, size_t fi) {
        origin.frontends.push_back(&ft);
        if (auto fe = read_frontend(ft, context + " frontend " + std::to_string(fi + 1))) s.frontends.push_back(*fe);
      });
      if (list->empty()) r.error("needs at least one [[service.frontend]]");
    }
    if (auto list = r.array("backend", false)) {
      for_each_table(r, *list, "backend", [&](const toml::table& bt, size_t bi) {
        origin.backends.push_back(&bt);
        if (auto be = read_backend(bt, context + " backend " + std::to_string(bi + 1))) s.backends.push_back(*be);
      });
    }
    read_affinity(r, t, s);
    if (auto h = r.table("health")) {
      origin.health = h;
      s.health = read_health(*h, context + " health");
    }
    r.finish({"name", "mode", "frontend", "backend", "health", "maglev_table_size", "affinity", "affinity_timeout"});
    config_.catalog.services.push_back(std::move(s));
    origins_.push_back(std::move(origin));
  }

  void read_affinity(TableReader& r, const toml::table& t, model::Service& s) {
    if (auto a = r.string("affinity", false)) {
      if (*a == "client-ip")
        s.affinity.client_ip = true;
      else if (*a != "none")
        r.error_at(*t.get("affinity"), "affinity", "\"" + *a + "\" is not one of none, client-ip");
    }
    if (auto text = r.string("affinity_timeout", false)) {
      if (auto d = parse_duration(*text))
        s.affinity.timeout = std::chrono::duration_cast<std::chrono::seconds>(*d);
      else
        r.error_at(*t.get("affinity_timeout"), "affinity_timeout",
                   "\"" + *text + "\" is not a duration like \"30s\", \"10m\" or \"3h\"");
    }
  }

  template <class F>
  void for_each_table(TableReader& r, const toml::array& list, std::string_view what, F&& f,
                      std::string_view table = "") {
    const std::string name = table.empty() ? "service." + std::string(what) : std::string(table);
    for (size_t i = 0; i < list.size(); ++i) {
      if (const auto* t = list[i].as_table())
        f(*t, i);
      else
        r.error_at(list[i], what, "each " + std::string(what) + " must be a table ([[" + name + "]])");
    }
  }

  std::optional<model::IpAddress> address(TableReader& r, const toml::table& t) {
    auto text = r.string("address", true);
    if (!text) return std::nullopt;
    auto a = model::IpAddress::parse(*text);
    if (!a) {
      r.error_at(*t.get("address"), "address", a.error().message);
      return std::nullopt;
    }
    return *a;
  }

  std::optional<model::Frontend> read_frontend(const toml::table& t, std::string context) {
    TableReader r(t, std::move(context), diagnostics_);
    model::Frontend f;
    const auto a = address(r, t);
    const auto port = r.integer_in("port", true, 1, 65535);
    if (auto p = r.choice<model::Protocol>("protocol", model::parse_protocol, "tcp, udp")) f.protocol = *p;
    if (auto k = r.choice<model::FrontendKind>("kind", model::parse_frontend_kind,
                                               "vip, cluster-ip, node-port, load-balancer, external-ip"))
      f.kind = *k;
    r.finish({"address", "port", "protocol", "kind"});
    if (!a || !port) return std::nullopt;
    f.address = *a;
    f.port = static_cast<uint16_t>(*port);
    return f;
  }

  std::optional<model::Backend> read_backend(const toml::table& t, std::string context) {
    TableReader r(t, std::move(context), diagnostics_);
    model::Backend b;
    const auto a = address(r, t);
    const auto port = r.integer_in("port", true, 1, 65535);
    if (auto w = r.integer_in("weight", false, 0, 65535)) b.weight = static_cast<uint32_t>(*w);
    if (auto n = r.string("node", false)) b.node = *n;
    if (auto z = r.string("zone", false)) b.zone = *z;
    r.finish({"address", "port", "weight", "node", "zone"});
    if (!a || !port) return std::nullopt;
    b.address = *a;
    b.port = static_cast<uint16_t>(*port);
    if (b.weight == 0) b.state = model::BackendState::draining;
    return b;
  }

  model::HealthCheck read_health(const toml::table& t, std::string context) {
    TableReader r(t, std::move(context), diagnostics_);
    model::HealthCheck h;
    if (auto type = r.choice<model::HealthCheckType>("type", model::parse_health_check_type, "tcp, http, https, udp, none"))
      h.type = *type;
    for (auto [key, field] : {std::pair{"interval", &h.interval}, std::pair{"timeout", &h.timeout}}) {
      auto text = r.string(key, false);
      if (!text) continue;
      if (auto d = parse_duration(*text))
        *field = *d;
      else
        r.error_at(*t.get(key), key, "\"" + *text + "\" is not a duration like \"500ms\", \"2s\" or \"1m\"");
    }
    if (auto v = r.integer_in("rise", false, 1, 100)) h.rise = static_cast<uint32_t>(*v);
    if (auto v = r.integer_in("fall", false, 1, 100)) h.fall = static_cast<uint32_t>(*v);
    if (auto v = r.string("path", false)) h.http_path = *v;
    if (auto v = r.integer_in("port", false, 1, 65535)) h.port = static_cast<uint16_t>(*v);
    if (auto v = r.integer_in("expect_status", false, 100, 599)) h.expect_status = static_cast<uint16_t>(*v);
    if (auto v = r.integer_in("slow_factor", false, 0, 100)) h.slow_factor = static_cast<uint32_t>(*v);
    r.finish({"type", "interval", "timeout", "rise", "fall", "path", "port", "expect_status", "slow_factor"});
    return h;
  }

  Diagnostics& diagnostics_;
  Config config_;
  std::vector<ServiceOrigin> origins_;
};

toml::source_position position_of(const model::Location& at, const std::vector<ServiceOrigin>& origins) {
  const ServiceOrigin& o = origins.at(at.service);
  const toml::table* item = o.table;
  if (at.part == model::Location::Part::frontend) item = o.frontends.at(at.index);
  if (at.part == model::Location::Part::backend) item = o.backends.at(at.index);
  if (at.part == model::Location::Part::health && o.health) item = o.health;
  if (!at.key.empty())
    if (const auto* n = item->get(at.key)) return n->source().begin;
  return item->source().begin;
}

// A snat service sends from this node's address: one must be configured for each family it serves.
void check_snat_addresses(const Config& config, const std::vector<ServiceOrigin>& origins, Diagnostics& diagnostics) {
  for (size_t i = 0; i < config.catalog.services.size(); ++i) {
    const auto& s = config.catalog.services[i];
    if (s.mode != model::ForwardingMode::snat) continue;
    for (size_t f = 0; f < s.frontends.size(); ++f) {
      const bool v4 = s.frontends[f].address.is_v4();
      if ((v4 ? config.node.snat_ipv4 : config.node.snat_ipv6).has_value()) continue;
      const model::Location at{i, model::Location::Part::frontend, f, ""};
      diagnostics.add(position_of(at, origins), at.describe(config.catalog) + ": mode snat needs [node] " +
                                                    (v4 ? "snat_ipv4" : "snat_ipv6") +
                                                    ", the address this node sends from toward the backends");
    }
  }
}

// A node that balances dsr services encapsulates from a configured prefix of each family it
// serves. A node that only decapsulates (decap on, no XDP) sends nothing and needs none.
void check_dsr_sources(const Config& config, const std::vector<ServiceOrigin>& origins, Diagnostics& diagnostics) {
  if (config.node.decap && config.node.xdp_mode == XdpMode::off) return;
  for (size_t i = 0; i < config.catalog.services.size(); ++i) {
    const auto& s = config.catalog.services[i];
    if (s.mode != model::ForwardingMode::dsr) continue;
    for (size_t f = 0; f < s.frontends.size(); ++f) {
      const bool v4 = s.frontends[f].address.is_v4();
      if ((v4 ? config.node.dsr_source_ipv4 : config.node.dsr_source_ipv6).has_value()) continue;
      const model::Location at{i, model::Location::Part::frontend, f, ""};
      diagnostics.add(position_of(at, origins),
                      at.describe(config.catalog) + ": mode dsr needs [node] " +
                          (v4 ? "dsr_source_ipv4" : "dsr_source_ipv6") +
                          ", the prefix of the outer source addresses toward the backends (a node that only "
                          "decapsulates sets decap = true and xdp_mode = \"off\")");
    }
  }
}

}  // namespace

Result<Config> parse(std::string_view text, std::string_view file_name) {
  Diagnostics diagnostics{std::string(file_name)};
  if (text.size() > kMaxConfigBytes)
    return Error{std::string(file_name) + ": larger than " + std::to_string(kMaxConfigBytes >> 20) +
                 " MiB; refusing to read it"};
  toml::table root;
  try {
    root = toml::parse(text, file_name);
  } catch (const toml::parse_error& e) {
    diagnostics.add(e.source().begin, "syntax error: " + std::string(e.description()));
    return diagnostics.to_error();
  }
  ConfigReader reader(diagnostics);
  Config config = reader.read(root);
  if (!diagnostics.empty()) return diagnostics.to_error();

  // Model rules (duplicates across services, families, ...) only make sense on a fully read
  // catalog: run them once every item was read without error.
  for (const auto& problem : model::validate(config.catalog)) {
    std::string message = problem.location.describe(config.catalog) + ": ";
    if (!problem.location.key.empty()) message += "key \"" + problem.location.key + "\": ";
    diagnostics.add(position_of(problem.location, reader.origins()), message + problem.message);
  }
  check_snat_addresses(config, reader.origins(), diagnostics);
  check_dsr_sources(config, reader.origins(), diagnostics);
  if (!diagnostics.empty()) return diagnostics.to_error();
  return config;
}

Result<Config> load(const std::filesystem::path& path) {
  // Read at most one byte past the limit: enough to refuse a huge file without holding it,
  // and it works for pipes and /dev/stdin, whose size is not known in advance.
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{path.string() + ": cannot open: " + std::strerror(errno)};
  std::string text(kMaxConfigBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return Error{path.string() + ": read failed: " + std::strerror(errno)};
  text.resize(static_cast<size_t>(in.gcount()));
  return parse(text, path.string());
}

}  // namespace xlb::config
