// What every xlbctl command gets: the API client, the options that apply to all commands, where to
// print, and the exit codes a script can rely on.
#pragma once

#include <nlohmann/json.hpp>

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>
#include <utility>
#include <variant>

#include "xlbctl/http.h"

namespace xlb::ctl {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;       // the answer is "no": not found, rejected, invalid
constexpr int kExitUsage = 2;        // the command line itself is wrong
constexpr int kExitUnreachable = 3;  // xlbd did not answer

enum class Output { table, json };

struct Context {
  const ApiClient& api;
  std::string state_dir;  // where api.token is
  std::string config;     // xlbd's config: the links and cgroup preflight checks
  Output output = Output::table;
  std::ostream& out;
  std::ostream& err;
};

// Options of single commands; each command reads the ones it documents.
struct CommandOptions {
  bool follow = false;
  std::optional<long> count;  // events: stop after this many
  long limit = 20;            // history, events: how many to list
  std::string reason;         // drain, undrain: recorded with the event
  std::string rules;          // diff, takeover: kube-proxy's rules from this file, not from the node
  long wait_s = 120;          // takeover, rollback: how long to wait for xlbd to serve or stop
  std::string pin_dir;        // rollback: xlbd's pinned maps and links, removed to detach them
  std::optional<long> nodes;  // advise: the cluster's node count
  std::vector<std::string> needs;  // advise: l7, observability, mesh
  bool measure = false;            // advise: measure the crossover on this node
  std::string sizes;               // advise --measure: catalog sizes, "10,100,1000" (default: this node's)
  double run_seconds = 1.0;        // advise --measure: seconds of one run
};

// Why a command could not do its work: what to tell the person, and the exit code.
struct Failure {
  int exit_code = kExitFailed;
  std::string message;
};

// A value or the Failure that prevented it.
template <class T>
class Answer {
 public:
  Answer(T value) : state_(std::move(value)) {}
  Answer(Failure failure) : state_(std::move(failure)) {}

  bool ok() const { return std::holds_alternative<T>(state_); }
  const T& operator*() const { return std::get<T>(state_); }
  const T* operator->() const { return &std::get<T>(state_); }
  const Failure& failure() const { return std::get<Failure>(state_); }

 private:
  std::variant<T, Failure> state_;
};

using nlohmann::json;

// The JSON body of a GET that xlbd answered with 2xx; otherwise a Failure: exit 3 when xlbd did not
// answer, 1 with xlbd's own error message when it said no.
Answer<json> get_json(const Context& ctx, const std::string& path, long timeout_s = 10);

// Turns a reply into its JSON body, or a Failure with xlbd's "error" message.
Answer<json> json_of(const Reply& reply);

// The one-line message for a request that got no answer.
Failure unreachable(const Context& ctx, const std::string& reason);

// Prints "xlbctl: MESSAGE" and returns the exit code.
int report(const Context& ctx, const Failure& failure);

// Prints `body` as indented JSON.
void print_json(const Context& ctx, const json& body);

}  // namespace xlb::ctl
