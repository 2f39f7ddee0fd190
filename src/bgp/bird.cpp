// bird2's side: the include file xlbd owns, the control socket, and `show protocols` read back.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "base/unique_fd.h"
#include "bgp/bgp.h"
#include "bgp/bird_control.h"

namespace xlb::bgp {

namespace {

// bird retries a session this soon after it failed or was refused (its defaults, 120 s and 60 s,
// would keep a node out of the ECMP group for minutes after a router restart).
constexpr int kConnectRetrySeconds = 5;
constexpr int kErrorWaitSeconds = 5;
constexpr int kErrorWaitMaxSeconds = 60;

std::string community_term(const std::string& community) {
  std::string parts = community;
  std::replace(parts.begin(), parts.end(), ':', ',');
  const bool large = std::count(community.begin(), community.end(), ':') == 2;
  return std::string(large ? "bgp_large_community" : "bgp_community") + ".add((" + parts + "));";
}

std::string static_protocol(std::string_view name, bool v4, const std::vector<Vip>& vips) {
  std::string out = "protocol static " + std::string(name) + " {\n  " + (v4 ? "ipv4" : "ipv6") + ";\n";
  for (const auto& vip : vips)
    if (vip.announced && vip.address.is_v4() == v4)
      out += "  route " + vip.address.to_string() + (v4 ? "/32" : "/128") + " blackhole;  # " +
             [&] {
               std::string names;
               for (const auto& s : vip.services) names += (names.empty() ? "" : ", ") + s;
               return names;
             }() + "\n";
  return out + "}\n\n";
}

bool is_code(std::string_view line) {
  return line.size() >= 5 && std::isdigit(static_cast<unsigned char>(line[0])) &&
         std::isdigit(static_cast<unsigned char>(line[1])) && std::isdigit(static_cast<unsigned char>(line[2])) &&
         std::isdigit(static_cast<unsigned char>(line[3])) && (line[4] == '-' || line[4] == ' ');
}

std::vector<std::string> words(std::string_view text, size_t max, std::string& rest) {
  std::vector<std::string> out;
  size_t i = 0;
  while (out.size() < max) {
    while (i < text.size() && text[i] == ' ') ++i;
    if (i >= text.size()) break;
    const size_t start = i;
    while (i < text.size() && text[i] != ' ') ++i;
    out.emplace_back(text.substr(start, i - start));
  }
  while (i < text.size() && text[i] == ' ') ++i;
  rest = std::string(text.substr(std::min(i, text.size())));
  while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.back()))) rest.pop_back();
  return out;
}

xlb::Status write_atomically(const std::filesystem::path& path, const std::string& text) {
  const auto tmp = path.string() + ".tmp." + std::to_string(::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return Error{"cannot write " + tmp + ": " + std::strerror(errno) + " (does its directory exist?)"};
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::unlink(tmp.c_str());
      return Error{"cannot write " + tmp + ": " + why};
    }
    done += static_cast<size_t>(n);
  }
  // bird may read it at any moment (its own restart): it sees the old file or the new one, whole.
  if (::fsync(fd.get()) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return Error{"cannot replace " + path.string() + ": " + why};
  }
  return {};
}

}  // namespace

std::string protocol_name(const config::BgpPeer& peer) {
  std::string name = "xlb_" + peer.address.to_string();
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') c = '_';
  return name;
}

std::string bird_config(const config::BgpConfig& config, const std::vector<Vip>& vips) {
  std::string out =
      "# Written by xlbd from the [bgp] section of its config: do not edit, xlbd replaces it.\n"
      "# bird.conf includes it (include \"" + config.bird_include.string() + "\";).\n";
  size_t announced = 0;
  for (const auto& vip : vips) announced += vip.announced;
  out += "# " + std::to_string(announced) + " VIPs announced.\n";
  for (const auto& vip : vips)
    if (!vip.announced) out += "# held back: " + vip.address.to_string() + ": " + vip.reason + "\n";
  out += "\n";
  if (config.router_id) out += "router id " + config.router_id->to_string() + ";\n\n";
  out += static_protocol("xlb_vips4", true, vips);
  out += static_protocol("xlb_vips6", false, vips);
  // Only xlb's own routes leave through xlb's sessions, whatever else bird knows.
  out += "filter xlb_export {\n  if proto = \"xlb_vips4\" || proto = \"xlb_vips6\" then {\n";
  for (const auto& c : config.communities) out += "    " + community_term(c) + "\n";
  out += "    accept;\n  }\n  reject;\n}\n\n";
  if (std::any_of(config.peers.begin(), config.peers.end(), [](const config::BgpPeer& p) { return p.bfd; }))
    out += "protocol bfd xlb_bfd {\n}\n\n";
  for (const auto& peer : config.peers) {
    out += "protocol bgp " + protocol_name(peer) + " {\n";
    out += "  description \"xlb: VIPs to " + peer.address.to_string() + "\";\n";
    out += "  local as " + std::to_string(config.local_asn) + ";\n";
    out += "  neighbor " + peer.address.to_string() + (peer.port != 179 ? " port " + std::to_string(peer.port) : "") +
           " as " + std::to_string(peer.asn) + ";\n";
    if (peer.hold_time_s > 0) {
      out += "  hold time " + std::to_string(peer.hold_time_s) + ";\n";
      out += "  keepalive time " + std::to_string(std::max<uint32_t>(1, peer.hold_time_s / 3)) + ";\n";
    }
    out += "  connect retry time " + std::to_string(kConnectRetrySeconds) + ";\n";
    out += "  error wait time " + std::to_string(kErrorWaitSeconds) + ", " + std::to_string(kErrorWaitMaxSeconds) + ";\n";
    if (peer.bfd) out += "  bfd on;\n";
    out += std::string("  ") + (peer.address.is_v4() ? "ipv4" : "ipv6") +
           " {\n    import none;\n    export filter xlb_export;\n    next hop self;\n  };\n}\n\n";
  }
  return out;
}

std::vector<PeerState> parse_protocols(std::string_view reply) {
  std::vector<PeerState> peers;
  std::istringstream in{std::string(reply)};
  std::string line;
  while (std::getline(in, line)) {
    std::string_view text = line;
    if (is_code(text))
      text.remove_prefix(5);
    else if (text.starts_with(' '))
      text.remove_prefix(1);
    std::string rest;
    auto w = words(text, 5, rest);
    if (w.size() < 5 || w[1] != "BGP" || !w[0].starts_with("xlb_")) continue;
    PeerState p;
    p.name = w[0];
    p.state = w[3];
    p.since = w[4];
    // A date and a time ("2026-11-26 13:20:41") when bird's protocol time format says so.
    if (p.since.size() == 10 && p.since[4] == '-' && rest.size() >= 8 && rest[2] == ':') {
      std::string after;
      auto more = words(rest, 1, after);
      p.since += " " + more[0];
      rest = after;
    }
    p.info = rest;
    peers.push_back(std::move(p));
  }
  return peers;
}

Result<std::string> bird_command(const std::filesystem::path& socket, const std::string& command,
                                 std::chrono::milliseconds timeout) {
  const std::string where = "bird's control socket " + socket.string();
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket.string().size() >= sizeof address.sun_path) return Error{where + ": path too long"};
  std::strcpy(address.sun_path, socket.c_str());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error{std::string("socket: ") + std::strerror(errno)};
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    return Error{where + ": " + std::strerror(errno) + " (is bird running, with -s " + socket.string() +
                 "? [bgp] bird_socket names it)"};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string buffer;
  // Reads until a line whose code is followed by a space (the answer's last line); returns the
  // lines read, and keeps any rest in `buffer`.
  auto read_answer = [&]() -> Result<std::string> {
    std::string answer;
    for (;;) {
      size_t newline;
      while ((newline = buffer.find('\n')) != std::string::npos) {
        std::string line = buffer.substr(0, newline);
        buffer.erase(0, newline + 1);
        answer += line + "\n";
        if (is_code(line) && line[4] == ' ') return answer;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return Error{where + ": no complete answer within " + std::to_string(timeout.count()) + " ms"};
      pollfd p{fd.get(), POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) continue;
      char chunk[4096];
      const ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Error{where + ": bird closed the connection mid-answer"};
      buffer.append(chunk, static_cast<size_t>(n));
    }
  };
  auto hello = read_answer();
  if (!hello) return hello.error();
  const std::string line = command + "\n";
  if (::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size()))
    return Error{where + ": cannot send \"" + command + "\": " + std::strerror(errno)};
  auto answer = read_answer();
  if (!answer) return answer.error();
  // The last line's code: 0xxx done, 8xxx a run-time error, 9xxx a parse error of the command.
  const auto last = answer->find_last_of('\n', answer->size() - 2);
  const std::string final_line = answer->substr(last == std::string::npos ? 0 : last + 1);
  if (final_line[0] == '8' || final_line[0] == '9') {
    std::string words_of_bird = final_line.substr(5);
    while (!words_of_bird.empty() && words_of_bird.back() == '\n') words_of_bird.pop_back();
    return Error{"bird refused \"" + command + "\": " + words_of_bird};
  }
  return answer;
}

xlb::Status configure_bird(const config::BgpConfig& config, const std::vector<Vip>& vips) {
  if (auto s = write_atomically(config.bird_include, bird_config(config, vips)); !s) return s;
  auto answer = bird_command(config.bird_socket, "configure");
  if (!answer) return answer.error();
  return {};
}

}  // namespace xlb::bgp
