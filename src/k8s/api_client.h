// HTTPS to the Kubernetes API server over libcurl: plain GETs for lists, and long-lived
// streamed GETs for watches. Credentials are read at each request, so rotated tokens and
// certificates take effect at the next one.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "k8s/kubeconfig.h"

namespace xlb::k8s {

struct Response {
  long status = 0;
  std::string body;
  std::optional<std::chrono::seconds> retry_after;  // from a 429 or 503
};

// How a watch stream ended when the transport itself did not fail.
struct StreamEnd {
  long status = 0;       // HTTP status; a non-200 status comes with its body
  std::string body;
  std::optional<std::chrono::seconds> retry_after;
  bool silent = false;   // nothing arrived for the silence timeout: the stream was dropped
  bool stopped = false;  // stop() or the line callback ended it
};

class ApiClient {
 public:
  explicit ApiClient(Credentials credentials);

  // `path` includes the query: "/api/v1/services?limit=500".
  Result<Response> get(const std::string& path, std::chrono::seconds timeout) const;

  // Streams `path`, calling `on_line` with each newline-terminated line of a 200 response;
  // `on_line` returns false to end the stream.
  using LineHandler = std::function<bool(std::string_view line)>;
  Result<StreamEnd> stream(const std::string& path, std::chrono::seconds silence, const LineHandler& on_line) const;

  // Ends any transfer in progress, from any thread; later calls fail at once.
  void stop() { stopped_ = true; }
  bool stopped() const { return stopped_; }

  const Credentials& credentials() const { return credentials_; }

 private:
  Credentials credentials_;
  mutable std::atomic<bool> stopped_{false};
};

}  // namespace xlb::k8s
