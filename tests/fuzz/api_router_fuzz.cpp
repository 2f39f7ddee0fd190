// The HTTP API's request handling without the socket: api::Router::handle on requests built from
// the input, against the API tests' fake provider. The input reads like a request:
//
//   METHOD TARGET            TARGET is PATH or PATH?QUERY, both as sent (not decoded)
//   Host: VALUE              optional header lines (Host, Authorization), then an empty line
//   BODY
//
// No crash, no exception, and every answer is one a client can read: a status from 200 to 599
// and, for JSON, a body that parses. Paths that split at all split into segments that cannot
// climb (no empty, "." or ".." segment), as uri.h promises.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/fake_provider.h"
#include "api/router.h"
#include "api/uri.h"

namespace {

using namespace xlb;

constexpr const char* kToken = "fuzz-token";

[[noreturn]] void fail(const char* what, const api::Request& request, const std::string& detail) {
  std::fprintf(stderr, "api_router_fuzz: %s\n%s %s?%s\n%s\n", what, request.method.c_str(), request.path.c_str(),
               request.query.c_str(), detail.c_str());
  std::abort();
}

// The next line of `text` (without its "\n"), consumed.
std::string_view take_line(std::string_view& text) {
  const size_t end = text.find('\n');
  const std::string_view line = text.substr(0, end);
  text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  return line;
}

api::Request request_of(std::string_view text) {
  api::Request r;
  r.remote_address = "192.0.2.1";
  const std::string_view first = take_line(text);
  const size_t space = first.find(' ');
  r.method = first.substr(0, space);
  const std::string_view target = space == std::string_view::npos ? "" : first.substr(space + 1);
  const size_t question = target.find('?');
  r.path = target.substr(0, question);
  if (question != std::string_view::npos) r.query = target.substr(question + 1);
  for (std::string_view line; !text.empty() && !(line = take_line(text)).empty();) {
    if (line.starts_with("Host: ")) r.host = line.substr(6);
    if (line.starts_with("Authorization: ")) r.authorization = line.substr(15);
  }
  r.body = text;
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const api::Request request = request_of(std::string_view(reinterpret_cast<const char*>(data), size));

  if (auto segments = api::split_path(request.path))
    for (const auto& s : *segments)
      if (s.empty() || s == "." || s == "..") fail("a path segment that climbs or is empty", request, s);

  static const Logger log(LogLevel::error);
  api::ServerConfig config;
  config.max_wait = std::chrono::seconds(0);  // a long poll would only make the fuzzer wait
  // The fake provider records every write: a fresh one per input keeps memory flat over long runs.
  test::FakeProvider provider;
  api::Router router(provider, kToken, config, log);
  const api::Response response = router.handle(request);
  if (response.status < 200 || response.status > 599) fail("a status outside 200..599", request, response.body);
  if (response.content_type == "application/json" && !nlohmann::json::accept(response.body))
    fail("a JSON response that does not parse", request, response.body);
  return 0;
}
