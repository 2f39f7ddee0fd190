// The frontend addresses of dsr services, made local on a backend node, so that its servers
// take the decapsulated packets (to the VIP) as their own and answer from the VIP. They live on
// the loopback link, each /32 or /128, marked with xlb's own address protocol (IFA_PROTO, Linux
// 6.1+), so that xlb adds and removes its own addresses and never touches an operator's: one
// that an operator put there already stays theirs (and stays when xlb no longer wants it).
#pragma once

#include <set>

#include "base/result.h"
#include "model/model.h"

namespace xlb::datapath {

// The IFA_PROTO value that marks xlb's addresses ('x'); the kernel's own values are 0 to 3.
inline constexpr uint8_t kLocalAddressProto = 0x78;

// xlb's addresses on lo in this network namespace.
Result<std::set<model::IpAddress>> local_addresses();

// Makes xlb's addresses on lo exactly `wanted`: adds the missing ones, removes the others.
Status sync_local_addresses(const std::set<model::IpAddress>& wanted);

}  // namespace xlb::datapath
