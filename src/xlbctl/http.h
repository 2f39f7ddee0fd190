// The HTTP side of xlbctl: requests to xlbd's REST API through libcurl.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"

namespace xlb::ctl {

// What xlbd answered: the HTTP status and the body as received.
struct Reply {
  long status = 0;
  std::string body;
};

// A client of one xlbd API, e.g. "http://127.0.0.1:9180". Each request uses its own curl handle.
// An Error means no answer at all (connection refused, timeout, ...), with curl's reason.
class ApiClient {
 public:
  explicit ApiClient(std::string base_url) : base_url_(std::move(base_url)) {}

  const std::string& base_url() const { return base_url_; }

  // `timeout_s` bounds the whole request; long polls pass their wait plus a margin.
  Result<Reply> get(const std::string& path, long timeout_s = 10) const;
  // A POST with a JSON body and "Authorization: Bearer <token>".
  Result<Reply> post(const std::string& path, const std::string& json_body, const std::string& token) const;

 private:
  std::string base_url_;
};

// One path segment, percent-encoded ("my svc" -> "my%20svc").
std::string escape_segment(std::string_view segment);

// Initialises libcurl for the life of main(); it must outlive every request.
class CurlGlobal {
 public:
  CurlGlobal();
  ~CurlGlobal();
  CurlGlobal(const CurlGlobal&) = delete;
  CurlGlobal& operator=(const CurlGlobal&) = delete;
};

}  // namespace xlb::ctl
