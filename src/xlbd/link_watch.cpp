#include "xlbd/link_watch.h"

#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

namespace xlb::xlbd {
namespace {

int on_message(nl_msg* msg, void* arg) {
  nlmsghdr* header = nlmsg_hdr(msg);
  if (header->nlmsg_type != RTM_NEWLINK) return NL_OK;
  if (nlattr* name = nlmsg_find_attr(header, sizeof(ifinfomsg), IFLA_IFNAME))
    static_cast<std::set<std::string>*>(arg)->insert(nla_get_string(name));
  return NL_OK;
}

}  // namespace

Result<LinkWatch> LinkWatch::start() {
  std::unique_ptr<nl_sock, SocketFree> sock(nl_socket_alloc());
  if (!sock) return Error{"link watch: nl_socket_alloc failed"};
  nl_socket_disable_seq_check(sock.get());  // notifications carry no sequence of ours
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0)
    return Error{std::string("link watch: connecting to rtnetlink: ") + nl_geterror(err)};
  if (int err = nl_socket_add_membership(sock.get(), RTNLGRP_LINK); err < 0)
    return Error{std::string("link watch: joining the link group: ") + nl_geterror(err)};
  if (int err = nl_socket_set_nonblocking(sock.get()); err < 0)
    return Error{std::string("link watch: ") + nl_geterror(err)};
  return LinkWatch(std::move(sock));
}

int LinkWatch::fd() const { return nl_socket_get_fd(sock_.get()); }

std::set<std::string> LinkWatch::changed() {
  changed_.clear();
  // The callback's argument is this object's set: set here, not at start, since a LinkWatch moves.
  nl_socket_modify_cb(sock_.get(), NL_CB_VALID, NL_CB_CUSTOM, on_message, &changed_);
  while (nl_recvmsgs_default(sock_.get()) >= 0) {
  }
  return std::move(changed_);
}

}  // namespace xlb::xlbd
