// Notices links appearing or changing (rtnetlink RTM_NEWLINK), so that xlbd can put its
// programs back on a configured link that was deleted and made again (a driver reload, a veth
// re-created by a CNI), or from which someone took them off.
#pragma once

#include <memory>
#include <set>
#include <string>

#include <netlink/socket.h>

#include "base/result.h"

namespace xlb::xlbd {

class LinkWatch {
 public:
  static Result<LinkWatch> start();

  int fd() const;  // readable when rtnetlink has news
  // Drains the news; the names of the links that appeared or changed.
  std::set<std::string> changed();

 private:
  struct SocketFree {
    void operator()(nl_sock* s) const { nl_socket_free(s); }
  };
  explicit LinkWatch(std::unique_ptr<nl_sock, SocketFree> sock) : sock_(std::move(sock)) {}

  std::unique_ptr<nl_sock, SocketFree> sock_;
  std::set<std::string> changed_;  // filled by the message callback while draining
};

}  // namespace xlb::xlbd
