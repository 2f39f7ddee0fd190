// A Flow as the programs key it (struct xlb_flow_key): inside the datapath part only, since
// xlb_abi.h is not part of its public headers.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "datapath/flows.h"
#include "xlb_abi.h"

namespace xlb::datapath {

inline xlb_flow_key flow_key_of(const Flow& flow) {
  xlb_flow_key key{};
  const size_t length = flow.client.is_v4() ? 4 : 16;
  std::memcpy(key.src, flow.client.bytes().data(), length);
  std::memcpy(key.dst, flow.frontend.bytes().data(), length);
  key.sport = htons(flow.client_port);
  key.dport = htons(flow.frontend_port);
  key.protocol = flow.protocol == model::Protocol::tcp ? IPPROTO_TCP : IPPROTO_UDP;
  key.family = flow.client.is_v4() ? XLB_AF_INET : XLB_AF_INET6;
  return key;
}

}  // namespace xlb::datapath
