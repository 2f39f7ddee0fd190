#include "datapath/local_addresses.h"

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "base/unique_fd.h"
#include "datapath/errno_error.h"

// Older uapi headers lack the address protocol attribute (Linux 6.1).
#ifndef IFA_PROTO
#define IFA_PROTO 11
#endif

namespace xlb::datapath {
namespace {

constexpr const char* kLink = "lo";

// One rtnetlink request: a header, an ifaddrmsg and attributes, built in place.
class Request {
 public:
  Request(uint16_t type, uint16_t flags) : buffer_(NLMSG_SPACE(sizeof(ifaddrmsg)), 0) {
    header()->nlmsg_len = static_cast<uint32_t>(NLMSG_LENGTH(sizeof(ifaddrmsg)));
    header()->nlmsg_type = type;
    header()->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
    header()->nlmsg_seq = 1;
  }

  ifaddrmsg* message() { return static_cast<ifaddrmsg*>(NLMSG_DATA(header())); }

  void attribute(uint16_t type, const void* data, size_t length) {
    const size_t at = NLMSG_ALIGN(buffer_.size());
    buffer_.resize(at + RTA_SPACE(length), 0);
    auto* rta = reinterpret_cast<rtattr*>(buffer_.data() + at);
    rta->rta_type = type;
    rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(length));
    std::memcpy(RTA_DATA(rta), data, length);
    header()->nlmsg_len = static_cast<uint32_t>(buffer_.size());
  }

  const std::vector<uint8_t>& bytes() const { return buffer_; }

 private:
  nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buffer_.data()); }
  std::vector<uint8_t> buffer_;
};

Result<UniqueFd> open_rtnetlink() {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) return errno_error("open an rtnetlink socket", errno);
  return fd;
}

// Sends the request and reads the answers up to its end (NLMSG_DONE, or the ack), handing each
// message to `each`. Returns the kernel's error for the request, if any, as a negative errno.
template <class Each>
Result<int> exchange(int fd, const Request& request, Each each) {
  if (::send(fd, request.bytes().data(), request.bytes().size(), 0) < 0) return errno_error("send to rtnetlink", errno);
  std::vector<uint8_t> buffer(1 << 16);
  for (;;) {
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("read from rtnetlink", errno);
    }
    auto length = static_cast<uint32_t>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(h, length); h = NLMSG_NEXT(h, length)) {
      if (h->nlmsg_type == NLMSG_DONE) return 0;
      if (h->nlmsg_type == NLMSG_ERROR) return static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
      each(h);
    }
  }
}

int loopback_index() { return static_cast<int>(::if_nametoindex(kLink)); }

struct Found {
  model::IpAddress address;
  uint8_t proto = 0;
};

// Every address on lo with its protocol mark.
Result<std::vector<Found>> addresses_on_lo(int fd, int index) {
  Request request(RTM_GETADDR, NLM_F_DUMP);
  request.message()->ifa_family = AF_UNSPEC;
  std::vector<Found> found;
  auto err = exchange(fd, request, [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWADDR) return;
    const auto* msg = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
    if (static_cast<int>(msg->ifa_index) != index) return;
    Found f;
    bool has_address = false;
    int left = static_cast<int>(IFA_PAYLOAD(h));
    for (const auto* rta = IFA_RTA(msg); RTA_OK(rta, left); rta = RTA_NEXT(rta, left)) {
      if (rta->rta_type == IFA_PROTO && RTA_PAYLOAD(rta) >= 1) f.proto = *static_cast<const uint8_t*>(RTA_DATA(rta));
      if (rta->rta_type == IFA_LOCAL || (rta->rta_type == IFA_ADDRESS && !has_address)) {
        char text[INET6_ADDRSTRLEN] = {};
        if (!::inet_ntop(msg->ifa_family, RTA_DATA(rta), text, sizeof text)) continue;
        auto parsed = model::IpAddress::parse(text);
        if (!parsed) continue;
        f.address = *parsed;
        has_address = true;
      }
    }
    if (has_address) found.push_back(f);
  });
  if (!err) return err.error();
  if (*err != 0) return errno_error("list the addresses of lo", -*err);
  return found;
}

Status change(int fd, int index, const model::IpAddress& address, bool add) {
  Request request(add ? RTM_NEWADDR : RTM_DELADDR, static_cast<uint16_t>(NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0)));
  ifaddrmsg* msg = request.message();
  msg->ifa_family = address.is_v4() ? AF_INET : AF_INET6;
  msg->ifa_prefixlen = address.is_v4() ? 32 : 128;
  msg->ifa_scope = RT_SCOPE_UNIVERSE;
  msg->ifa_index = static_cast<uint32_t>(index);
  // No duplicate address detection: the address is meant to be on every backend at once.
  msg->ifa_flags = address.is_v4() ? 0 : IFA_F_NODAD;
  const size_t length = address.is_v4() ? 4 : 16;
  request.attribute(IFA_LOCAL, address.bytes().data(), length);
  request.attribute(IFA_ADDRESS, address.bytes().data(), length);
  const uint8_t proto = kLocalAddressProto;
  if (add) request.attribute(IFA_PROTO, &proto, sizeof proto);
  auto err = exchange(fd, request, [](const nlmsghdr*) {});
  if (!err) return err.error();
  // An operator's own address there already: theirs, and it serves as well as ours would.
  if (*err == 0 || (add && *err == -EEXIST) || (!add && *err == -EADDRNOTAVAIL)) return {};
  return errno_error(std::string(add ? "add " : "remove ") + address.to_string() + (add ? " to lo" : " from lo"), -*err);
}

}  // namespace

Result<std::set<model::IpAddress>> local_addresses() {
  auto fd = open_rtnetlink();
  if (!fd) return fd.error();
  const int index = loopback_index();
  if (index == 0) return errno_error("find the link lo", errno);
  auto found = addresses_on_lo(fd->get(), index);
  if (!found) return found.error();
  std::set<model::IpAddress> ours;
  for (const auto& f : *found)
    if (f.proto == kLocalAddressProto) ours.insert(f.address);
  return ours;
}

Status sync_local_addresses(const std::set<model::IpAddress>& wanted) {
  auto have = local_addresses();
  if (!have) return have.error();
  auto fd = open_rtnetlink();
  if (!fd) return fd.error();
  const int index = loopback_index();
  for (const auto& address : wanted)
    if (!have->count(address))
      if (Status s = change(fd->get(), index, address, true); !s) return s;
  for (const auto& address : *have)
    if (!wanted.count(address))
      if (Status s = change(fd->get(), index, address, false); !s) return s;
  return {};
}

}  // namespace xlb::datapath
