// What the API reads from and writes through. The API knows only this interface: xlbd implements it
// over its engine and store (src/xlbd/api_provider.h), the tests with a fake.
//
// Thread safety: the server calls a Provider from civetweb's worker threads, several at once, while
// the program that owns it goes on with its own work. Every method must be safe to call
// concurrently with every other and with whatever else changes the state it reads.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "model/diff.h"
#include "model/model.h"

namespace xlb::api {

// Cumulative since the datapath was loaded. Rates are for the reader to compute (Prometheus'
// rate(), the UI from two samples), from these and Snapshot::sampled_at_ms.
struct Counters {
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t new_flows = 0;
};

// How many slots of one Maglev ring a backend owns.
struct RingShare {
  std::string backend;  // the backend's key, "10.0.1.2:8080"
  uint32_t slots = 0;
};

// A service's ring for one address family.
struct RingView {
  model::IpAddress::Family family = model::IpAddress::Family::v4;
  uint32_t size = 0;               // 0: no ring (no backend takes new flows)
  std::vector<RingShare> shares;   // every backend of that family, weight 0 included
};

struct ServiceView {
  model::Service service;  // as applied: a drained backend has state draining
  std::string source;      // where it came from: "toml" or "kubernetes"
  std::vector<RingView> rings;
  double last_disruption = 0;  // share of new flows its last change sent elsewhere, in [0, 1]
  Counters counters;
  std::map<std::string, Counters> backend_counters;  // by backend key; a missing one counts zero
};

// A BPF program attached to a link.
struct Attachment {
  std::string interface;
  std::string program;  // "xlb_xdp", "xlb_tc", ...
  std::string mode;     // "native", "generic", "tcx", ...
};

// One check xlbd made of the kernel before loading the datapath.
struct PreflightCheck {
  std::string name;
  bool ok = false;
  std::string detail;  // what was found, or what to do about it
};

struct NodeView {
  std::string hostname;
  std::string kernel;   // uname release
  std::string version;  // xlbd's
  std::string datapath_mode;
  std::vector<Attachment> attachments;
  std::vector<PreflightCheck> preflight;
};

// Where services come from, and whether what it gave is current.
struct SourceView {
  std::string name;    // "toml", "kubernetes"
  std::string state;   // "ok", "stale" (keeps the last known good state), "syncing"
  std::string detail;  // where from, and the last error while stale
  size_t services = 0;
  std::vector<std::string> problems;  // objects skipped and frontends claimed twice, with reasons
};

// The VIPs this node announces over BGP (src/bgp) and its sessions with the routers.
struct BgpVipView {
  std::string address;
  std::vector<std::string> services;
  bool announced = false;
  std::string reason;  // why not, when not
};
struct BgpPeerView {
  std::string name;  // bird's protocol
  std::string address;
  uint32_t asn = 0;
  std::string state;  // bird's: "up", "start", ...; "unknown" while bird does not answer
  std::string since;
  std::string info;   // "Established", "Active  Socket: Connection refused", ...
  bool established = false;
};
struct BgpView {
  bool enabled = false;  // [bgp] enabled
  bool configured = false;  // bird accepted the current plan
  std::string error;        // the last failure to drive bird; empty when fine
  std::string include_file;
  std::string bird_socket;
  std::vector<BgpVipView> vips;
  std::vector<BgpPeerView> peers;
};

struct Snapshot {
  NodeView node;
  std::vector<SourceView> sources;
  int64_t revision = 0;  // the revision in force
  int64_t sampled_at_ms = 0;  // Unix time of the counters, for rates
  std::vector<ServiceView> services;
  std::map<std::string, uint64_t> drops;  // packets dropped, by reason in words
  BgpView bgp;
};

struct RevisionView {
  int64_t id = 0;
  std::string created_at;  // UTC, ISO 8601
  std::string source;
  std::string summary;
  std::vector<model::ServiceChange> changes;  // against the revision before it
};

struct EventView {
  int64_t id = 0;
  std::string created_at;
  std::string kind;     // "config", "drain", "health", ...
  std::string subject;  // what it is about
  std::string message;
};

// A packet the datapath dropped, as its program reported it (rate-limited: see DropsView).
struct DropView {
  int64_t id = 0;
  int64_t unix_ms = 0;
  std::string reason;     // in words: "no backend", "truncated header", ...
  std::string interface;  // the link it arrived on (its index when it has no name here)
  std::string protocol;   // "tcp", "udp", or the IP protocol number
  std::string source;     // "10.0.0.1:40000", "[2001:db8::1]:40000"; no port when unread
  std::string destination;
};

struct DropsView {
  std::vector<DropView> drops;  // oldest first
  int64_t last_id = 0;          // of the newest drop xlbd has read, shown or not
  // Drops the programs counted but did not report one by one (over their rate limit, or their
  // ring full), since the maps were made. The per-reason totals are in Snapshot::drops.
  uint64_t unreported = 0;
};

// A flow as a client sends it: xlbctl trace's question.
struct FlowQuery {
  model::IpAddress client;
  uint16_t client_port = 0;
  model::IpAddress frontend;
  uint16_t frontend_port = 0;
  model::Protocol protocol = model::Protocol::tcp;
};

// Which backend the flow gets, and why.
struct TraceView {
  std::string verdict;   // "conntrack", "affinity", "ring", "no_backend", "not_a_frontend"
  std::string service;   // the frontend's service; empty when not a frontend
  std::string backend;   // its key "10.0.1.2:8080"; empty when none
  std::string why;       // one sentence
  uint32_t hash = 0;     // ring picks: the flow hash (with affinity, of the client address)
  uint32_t slot = 0;     //   and the slot it names
  uint32_t ring_size = 0;
  bool conntrack = false;           // conntrack has an entry for the flow (used or not)
  std::string conntrack_backend;    //   its backend's key
  uint64_t conntrack_idle_ms = 0;
};

// Who asked for a write, for the event it leaves.
struct Actor {
  std::string who;     // "alice (127.0.0.1)", "api client 127.0.0.1"
  std::string reason;  // optional, the person's own words
};

// What a write did, or why it did nothing.
struct Outcome {
  enum class Code { done, not_found, rejected, failed };
  Code code = Code::done;
  std::string message;   // one line a person can act on
  int64_t revision = 0;  // the revision in force afterwards
};

class Provider {
 public:
  virtual ~Provider() = default;

  virtual Snapshot snapshot() = 0;
  // Newest first, at most `limit`.
  virtual Result<std::vector<RevisionView>> revisions(size_t limit) = 0;
  // Events with an id above `after_id`, oldest first; at most `limit`, the newest ones when more.
  virtual Result<std::vector<EventView>> events(size_t limit, int64_t after_id) = 0;

  // Drops with an id above `after_id`, oldest first; at most `limit`, the newest ones when more.
  virtual Result<DropsView> drops(size_t limit, int64_t after_id) = 0;
  // Answers as the datapath would for that flow now. An error when there is nothing to ask (the
  // flow tables unreadable).
  virtual Result<TraceView> trace(const FlowQuery& flow) = 0;

  // Drains (no new flows; established ones go on) or undrains one backend of a service, given
  // by its key "10.0.1.2:8080". A drain outlives reloads and restarts until it is undrained.
  // Asking for the state a backend is already in is done, not an error.
  virtual Outcome set_drained(std::string_view service, std::string_view backend, bool drained,
                              const Actor& actor) = 0;
  // Reads the config again, like SIGHUP. A config with errors is rejected; the running one stays.
  virtual Outcome reload(const Actor& actor) = 0;
};

}  // namespace xlb::api
