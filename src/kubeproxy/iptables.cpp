// kube-proxy's iptables mode, as `iptables-save -t nat` prints it (pkg/proxy/iptables):
//   KUBE-SERVICES  -d VIP -p P --dport N -j KUBE-SVC-<hash>   (cluster IP)
//                  -d IP  ... -j KUBE-EXT-<hash> | KUBE-FW-<hash>  (external / load-balancer IP)
//   KUBE-NODEPORTS -p P --dport N -j KUBE-EXT-<hash>
//   KUBE-EXT-*     masquerade, then KUBE-SVC-* (policy Cluster) or KUBE-SVL-* (policy Local, with
//                  short circuits for pod and node-local sources that we leave out)
//   KUBE-SVC-*/SVL-* -m statistic --mode random --probability P -j KUBE-SEP-<hash>, and with
//                  ClientIP affinity -m recent --rcheck --seconds T first
//   KUBE-SEP-*     -j DNAT --to-destination IP:PORT
#include <charconv>
#include <optional>
#include <sstream>

#include "kubeproxy/graph.h"

namespace xlb::kubeproxy {
namespace {

using detail::Chain;
using detail::FrontendRule;
using detail::Graph;

// One "-A CHAIN ..." line, the options kube-proxy uses.
struct Rule {
  std::string chain;
  std::string target;  // -j or -g
  std::string destination;
  bool source_match = false;  // -s, ! -s, --src-type: a short circuit for some sources only
  std::string protocol;
  std::string dport;
  std::string to_destination;
  std::string comment;
  std::string probability;
  std::string rcheck_seconds;  // -m recent --rcheck --seconds T
  bool rcheck = false;
};

// Splits a line as iptables-save quotes it: "double quoted" words may hold spaces.
std::vector<std::string> words(std::string_view line) {
  std::vector<std::string> out;
  std::string word;
  bool quoted = false, in_word = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '\\' && quoted && i + 1 < line.size()) {
      word += line[++i];
    } else if (c == '"') {
      quoted = !quoted;
      in_word = true;
    } else if (!quoted && (c == ' ' || c == '\t')) {
      if (in_word) out.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) out.push_back(std::move(word));
  return out;
}

Rule parse_rule(const std::vector<std::string>& w) {
  Rule r;
  r.chain = w.size() > 1 ? w[1] : "";
  for (size_t i = 2; i < w.size(); ++i) {
    const std::string& o = w[i];
    const bool has_value = i + 1 < w.size();
    const std::string value = has_value ? w[i + 1] : "";
    if ((o == "-j" || o == "-g") && has_value) r.target = value;
    else if (o == "-d" && has_value) r.destination = value;
    else if (o == "-s" || o == "--src-type") r.source_match = true;
    else if (o == "-p" && has_value) r.protocol = value;
    else if (o == "--dport" && has_value) r.dport = value;
    else if (o == "--to-destination" && has_value) r.to_destination = value;
    else if (o == "--comment" && has_value) r.comment = value;
    else if (o == "--probability" && has_value) r.probability = value;
    else if (o == "--rcheck") r.rcheck = true;
    else if (o == "--seconds" && has_value) r.rcheck_seconds = value;
  }
  return r;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

template <class T>
std::optional<T> number(const std::string& text) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Targets that only mark, masquerade or drop: no endpoint lies behind them.
bool is_terminal_mark(const std::string& target) {
  return target == "KUBE-MARK-MASQ" || target == "KUBE-MARK-DROP" || target == "RETURN" || target == "MARK" ||
         target == "MASQUERADE" || target == "ACCEPT" || target == "DROP" || target == "REJECT";
}

class Reader {
 public:
  Result<Rules> run(std::string_view text) {
    std::istringstream in{std::string(text)};
    std::string line;
    bool in_nat = false;
    size_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (line.starts_with("*")) {
        in_nat = line == "*nat";
        table_ += in_nat;
      }
      if (!in_nat || !line.starts_with("-A ")) continue;
      if (auto s = add(parse_rule(words(line)), number); !s) return s.error();
    }
    if (!seen_services_) return Error{"no KUBE-SERVICES rules in the nat table: this is not kube-proxy's iptables layout"};
    check_shares();
    return detail::resolve(graph_, Layout::iptables, std::move(warnings_));
  }

 private:
  Status add(const Rule& r, size_t line) {
    if (r.chain == "KUBE-SERVICES") return add_service_rule(r, line);
    if (r.chain == "KUBE-NODEPORTS") return add_node_port_rule(r, line);
    if (!starts_with(r.chain, "KUBE-")) return {};
    Chain& chain = graph_.chains[key(r.chain)];
    chain.local = starts_with(r.chain, "KUBE-SVL-");
    if (r.target == "DNAT") return add_dnat(chain, r, line);
    if (is_terminal_mark(r.target) || !starts_with(r.target, "KUBE-")) return {};
    if (r.rcheck) {
      // The affinity lookup names the endpoint that the statistic rules below name again.
      auto seconds = number<long>(r.rcheck_seconds);
      if (!seconds) return Error{"line " + std::to_string(line) + ": -m recent --seconds \"" + r.rcheck_seconds + "\""};
      chain.affinity = std::chrono::seconds(*seconds);
      return {};
    }
    // KUBE-FW-* lets through the loadBalancerSourceRanges by source: that is its main path.
    if (r.source_match && !starts_with(r.chain, "KUBE-FW-")) return {};
    chain.jumps.push_back(key(r.target));
    if (!starts_with(r.target, "KUBE-SEP-")) return {};
    auto probability = r.probability.empty() ? std::optional<double>(1.0) : number<double>(r.probability);
    if (!probability) return Error{"line " + std::to_string(line) + ": --probability \"" + r.probability + "\""};
    probabilities_[key(r.chain)].push_back(*probability);
    return {};
  }

  Status add_dnat(Chain& chain, const Rule& r, size_t line) {
    auto backend = detail::parse_endpoint(r.to_destination);
    if (!backend) return Error{"line " + std::to_string(line) + ": DNAT --to-destination " + backend.error().message};
    chain.dnat = *backend;
    return {};
  }

  Status add_service_rule(const Rule& r, size_t line) {
    seen_services_ = true;
    if (r.destination.empty() || !starts_with(r.target, "KUBE-")) return {};  // the jump to KUBE-NODEPORTS
    static const std::pair<std::string_view, model::FrontendKind> kinds[] = {
        {" cluster IP", model::FrontendKind::cluster_ip},
        {" external IP", model::FrontendKind::external_ip},
        {" loadbalancer IP", model::FrontendKind::load_balancer}};
    std::string name = r.comment;
    model::FrontendKind kind = model::FrontendKind::cluster_ip;
    for (const auto& [suffix, k] : kinds)
      if (name.ends_with(suffix)) {
        name.resize(name.size() - suffix.size());
        kind = k;
      }
    std::string address = r.destination.substr(0, r.destination.find('/'));
    auto parsed = model::IpAddress::parse(address);
    if (!parsed) return Error{"line " + std::to_string(line) + ": -d " + r.destination + ": " + parsed.error().message};
    return add_frontend(name, *parsed, kind, r, line);
  }

  Status add_node_port_rule(const Rule& r, size_t line) {
    if (!starts_with(r.target, "KUBE-")) return {};
    return add_frontend(r.comment, model::IpAddress{}, model::FrontendKind::node_port, r, line);
  }

  Status add_frontend(const std::string& name, const model::IpAddress& address, model::FrontendKind kind, const Rule& r,
                      size_t line) {
    auto protocol = model::parse_protocol(r.protocol);
    if (!protocol) {
      warnings_.push_back("line " + std::to_string(line) + ": " + name + ": protocol \"" + r.protocol +
                          "\" is not tcp or udp; left out");
      return {};
    }
    const auto port = number<uint16_t>(r.dport);
    if (!port || *port == 0) return Error{"line " + std::to_string(line) + ": " + name + ": --dport \"" + r.dport + "\""};
    graph_.frontends.push_back({name, {address, *port, *protocol, kind}, key(r.target)});
    return {};
  }

  // kube-proxy gives the i-th of n endpoints probability 1/(n-i), so that each gets 1/n. Other
  // shares mean someone else wrote these rules; xlb would give each endpoint the same share.
  void check_shares() {
    for (const auto& [chain, probabilities] : probabilities_) {
      double rest = 1.0, low = 1.0, high = 0.0;
      for (double p : probabilities) {
        const double share = rest * p;
        low = std::min(low, share);
        high = std::max(high, share);
        rest -= share;
      }
      if (high > low * 1.01)
        warnings_.push_back("chain " + chain.substr(chain.find(' ') + 1) +
                            " gives its endpoints unequal shares; xlb gives each the same");
    }
  }

  // iptables-save and ip6tables-save text may come one after the other: each nat table has chains
  // of the same names (the hash is of the service port), so a chain is known by its table too.
  std::string key(const std::string& chain) const { return std::to_string(table_) + " " + chain; }

  Graph graph_;
  int table_ = 0;  // which nat table of the text the rules are in
  std::map<std::string, std::vector<double>> probabilities_;
  std::vector<std::string> warnings_;
  bool seen_services_ = false;
};

}  // namespace

Result<Rules> parse_iptables_save(std::string_view text) { return Reader().run(text); }

}  // namespace xlb::kubeproxy
