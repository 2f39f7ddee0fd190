// kube-proxy's nftables mode, as `nft list table ip kube-proxy` prints it (pkg/proxy/nftables):
//   map service-ips       { ADDR . PROTO . PORT : goto service-<hash>-NS/NAME/PROTO/PORT
//                                              | goto external-<hash>-... }
//   map service-nodeports { PROTO . PORT : goto external-<hash>-... }
//   chain external-*  masquerade, then goto service-* (policy Cluster) or local-* (policy Local,
//                     after short circuits for pod and node-local sources that we leave out)
//   chain service-*   numgen random mod N vmap { 0 : goto endpoint-..., ... }, and with ClientIP
//                     affinity "ip saddr @affinity-... goto endpoint-..." first
//   chain endpoint-*  dnat to IP:PORT
// An `ip6 kube-proxy` table in the same text is read too.
#include <algorithm>
#include <charconv>
#include <set>

#include "kubeproxy/graph.h"

namespace xlb::kubeproxy {
namespace {

using detail::Chain;
using detail::Graph;
using Tokens = std::vector<std::string>;

// Words, with "{", "}", ",", ";" on their own and line ends kept as "\n": a chain's rules are
// its lines. A quoted string (a comment) is one word.
Tokens tokenize(std::string_view text) {
  Tokens out;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) out.push_back(std::move(word));
    word.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      flush();
      const size_t end = text.find('"', i + 1);
      out.emplace_back(text.substr(i + 1, end == std::string_view::npos ? std::string_view::npos : end - i - 1));
      if (end == std::string_view::npos) break;
      i = end;
    } else if (c == '{' || c == '}' || c == ',' || c == ';' || c == '\n') {
      flush();
      out.emplace_back(1, c);
    } else if (c == ' ' || c == '\t') {
      flush();
    } else {
      word += c;
    }
  }
  flush();
  return out;
}

// "3h", "10800s", "1h30m" as nft prints a set's timeout.
std::optional<std::chrono::seconds> duration(std::string_view text) {
  long total = 0;
  while (!text.empty()) {
    long n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || end == text.data() + text.size()) return std::nullopt;
    text.remove_prefix(static_cast<size_t>(end - text.data()));
    const size_t unit_len = text.starts_with("ms") ? 2 : 1;
    const std::string_view unit = text.substr(0, unit_len);
    text.remove_prefix(unit_len);
    if (unit == "d") total += n * 86400;
    else if (unit == "h") total += n * 3600;
    else if (unit == "m") total += n * 60;
    else if (unit == "s") total += n;
    else if (unit != "ms") return std::nullopt;
  }
  return std::chrono::seconds(total);
}

// The service port a chain serves: "service-ULMVA6XW-ns1/svc1/tcp/p80" -> "ns1/svc1:p80"; an
// unnamed port ("ns1/svc1/tcp/") -> "ns1/svc1", as kube-proxy names it.
std::string service_name(const std::string& chain) {
  const size_t first = chain.find('-');
  const size_t second = first == std::string::npos ? first : chain.find('-', first + 1);
  if (second == std::string::npos) return chain;
  const std::string rest = chain.substr(second + 1);
  const size_t port_slash = rest.rfind('/');
  const size_t proto_slash = port_slash == std::string::npos || port_slash == 0 ? std::string::npos : rest.rfind('/', port_slash - 1);
  if (proto_slash == std::string::npos) return rest;
  const std::string port = rest.substr(port_slash + 1);
  return rest.substr(0, proto_slash) + (port.empty() ? "" : ":" + port);
}

struct Set {
  std::vector<Tokens> elements;
  std::optional<std::chrono::seconds> timeout;
};

class Reader {
 public:
  Result<Rules> run(std::string_view text) {
    tokens_ = tokenize(text);
    while (pos_ < tokens_.size()) {
      if (word() == "table" && pos_ + 3 < tokens_.size() && tokens_[pos_ + 3] == "{") {
        const std::string family = tokens_[pos_ + 1], name = tokens_[pos_ + 2];
        pos_ += 4;
        if (name == "kube-proxy") {
          if (auto s = table(family); !s) return s.error();
          continue;
        }
        skip_block();
        continue;
      }
      ++pos_;
    }
    if (tables_ == 0) return Error{"no table \"kube-proxy\": this is not kube-proxy's nftables layout"};
    return detail::resolve(graph_, Layout::nftables, std::move(warnings_));
  }

 private:
  const std::string& word() const { return tokens_[pos_]; }

  // Past the "}" that closes the block whose "{" was just read.
  void skip_block() {
    for (int depth = 1; pos_ < tokens_.size() && depth > 0; ++pos_) {
      if (word() == "{") ++depth;
      if (word() == "}") --depth;
    }
  }

  Status table(const std::string& family) {
    ++tables_;
    std::map<std::string, Set> sets;
    while (pos_ < tokens_.size() && word() != "}") {
      const std::string& w = word();
      if ((w == "set" || w == "map" || w == "chain") && pos_ + 2 < tokens_.size() && tokens_[pos_ + 2] == "{") {
        const std::string name = tokens_[pos_ + 1];
        pos_ += 3;
        if (w == "chain")
          chain(family + " " + name, name, sets);
        else
          sets[name] = set_body();
        continue;
      }
      ++pos_;
    }
    ++pos_;
    return add_frontends(family, sets);
  }

  Set set_body() {
    Set set;
    while (pos_ < tokens_.size() && word() != "}") {
      if (word() == "elements" && pos_ + 2 < tokens_.size() && tokens_[pos_ + 2] == "{") {
        pos_ += 3;
        set.elements = list_until_close();
        continue;
      }
      if (word() == "timeout" && pos_ + 1 < tokens_.size())
        if (auto d = duration(tokens_[pos_ + 1])) set.timeout = d;
      ++pos_;
    }
    ++pos_;
    return set;
  }

  // The comma-separated items up to the "}" that closes an open "{", line ends ignored.
  std::vector<Tokens> list_until_close() {
    std::vector<Tokens> items(1);
    while (pos_ < tokens_.size() && word() != "}") {
      if (word() == ",")
        items.emplace_back();
      else if (word() != "\n")
        items.back().push_back(word());
      ++pos_;
    }
    ++pos_;
    if (items.back().empty()) items.pop_back();
    return items;
  }

  void chain(const std::string& key, const std::string& name, const std::map<std::string, Set>& sets) {
    Chain& c = graph_.chains[key];
    c.local = name.starts_with("local-");
    Tokens rule;
    while (pos_ < tokens_.size() && word() != "}") {
      if (word() == "\n") {
        add_rule(c, key, name, rule, sets);
        rule.clear();
      } else if (word() == "{") {
        ++pos_;
        for (const Tokens& item : list_until_close()) {
          rule.insert(rule.end(), item.begin(), item.end());
          rule.push_back(",");
        }
        continue;
      } else {
        rule.push_back(word());
      }
      ++pos_;
    }
    add_rule(c, key, name, rule, sets);
    ++pos_;
  }

  void add_rule(Chain& c, const std::string& key, const std::string& name, const Tokens& rule,
                const std::map<std::string, Set>& sets) {
    if (rule.empty()) return;
    const std::string family = key.substr(0, key.find(' '));
    // "dnat to IP:PORT", or "dnat ip to IP:PORT" as an inet table would print it.
    for (size_t i = 0; i + 2 < rule.size(); ++i)
      if (rule[i] == "dnat" && (rule[i + 1] == "to" || (rule[i + 2] == "to" && i + 3 < rule.size()))) {
        const std::string& target = rule[i + 1] == "to" ? rule[i + 2] : rule[i + 3];
        auto backend = detail::parse_endpoint(target);
        if (!backend) warnings_.push_back("chain " + name + ": dnat to " + backend.error().message);
        else c.dnat = *backend;
        return;
      }
    const bool numgen = std::find(rule.begin(), rule.end(), "numgen") != rule.end();
    for (size_t i = 0; i + 1 < rule.size(); ++i) {
      if (rule[i] != "goto" && rule[i] != "jump") continue;
      const std::string& target = rule[i + 1];
      if (target == "mark-for-masquerade") continue;
      if (numgen || i == 0 || name.starts_with("firewall-")) {
        c.jumps.push_back(family + " " + target);
        continue;
      }
      if (auto set = affinity_set(rule, sets)) {
        // The affinity lookup names the endpoint that the numgen map names again.
        c.affinity = set->timeout.value_or(std::chrono::seconds(10800));
        continue;
      }
      // Otherwise a short circuit for pod or node-local sources only.
    }
  }

  static const Set* affinity_set(const Tokens& rule, const std::map<std::string, Set>& sets) {
    for (const std::string& w : rule)
      if (w.starts_with("@affinity-")) {
        auto it = sets.find(w.substr(1));
        return it == sets.end() ? nullptr : &it->second;
      }
    return nullptr;
  }

  Status add_frontends(const std::string& family, const std::map<std::string, Set>& sets) {
    std::set<std::string> cluster_ips;
    if (auto it = sets.find("cluster-ips"); it != sets.end())
      for (const Tokens& e : it->second.elements)
        if (!e.empty()) cluster_ips.insert(e.front());
    if (auto it = sets.find("service-ips"); it != sets.end())
      for (const Tokens& e : it->second.elements)
        if (auto s = add_frontend(family, e, cluster_ips); !s) return s;
    if (auto it = sets.find("service-nodeports"); it != sets.end())
      for (const Tokens& e : it->second.elements)
        if (auto s = add_frontend(family, e, cluster_ips); !s) return s;
    return {};
  }

  // "ADDR . PROTO . PORT : goto CHAIN" (service-ips) or "PROTO . PORT : goto CHAIN" (service-nodeports).
  Status add_frontend(const std::string& family, const Tokens& e, const std::set<std::string>& cluster_ips) {
    const bool node_port = e.size() == 6;
    if (e.size() != 6 && e.size() != 8) return Error{"map element \"" + join(e) + "\" is not kube-proxy's shape"};
    const size_t p = node_port ? 0 : 2;
    auto protocol = model::parse_protocol(e[p]);
    uint16_t port = 0;
    auto [end, ec] = std::from_chars(e[p + 2].data(), e[p + 2].data() + e[p + 2].size(), port);
    if (ec != std::errc{} || port == 0) return Error{"map element \"" + join(e) + "\": bad port"};
    if (!protocol) {
      warnings_.push_back("map element \"" + join(e) + "\": protocol is not tcp or udp; left out");
      return {};
    }
    model::Frontend f{model::IpAddress{}, port, *protocol, model::FrontendKind::node_port};
    if (!node_port) {
      auto address = model::IpAddress::parse(e[0]);
      if (!address) return Error{"map element \"" + join(e) + "\": " + address.error().message};
      f.address = *address;
      f.kind = cluster_ips.count(e[0]) ? model::FrontendKind::cluster_ip : model::FrontendKind::external_ip;
    }
    const std::string& chain = e.back();
    graph_.frontends.push_back({service_name(chain), f, family + " " + chain});
    return {};
  }

  static std::string join(const Tokens& t) {
    std::string out;
    for (const auto& w : t) out += (out.empty() ? "" : " ") + w;
    return out;
  }

  Tokens tokens_;
  size_t pos_ = 0;
  int tables_ = 0;
  Graph graph_;
  std::vector<std::string> warnings_;
};

}  // namespace

Result<Rules> parse_nft(std::string_view text) { return Reader().run(text); }

Result<Rules> parse(std::string_view text) {
  if (text.find("KUBE-SERVICES") != std::string_view::npos) return parse_iptables_save(text);
  if (text.find("table ip") != std::string_view::npos) return parse_nft(text);
  return Error{"neither kube-proxy's iptables layout (no KUBE-SERVICES chain) nor its nftables layout (no table "
               "\"kube-proxy\")"};
}

std::string_view to_string(Layout layout) { return layout == Layout::iptables ? "iptables" : "nftables"; }

}  // namespace xlb::kubeproxy
