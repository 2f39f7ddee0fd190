#include "xlbctl/http.h"

#include <curl/curl.h>

#include <memory>

namespace xlb::ctl {

namespace {

constexpr long kConnectTimeoutS = 3;

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;
using HeaderList = std::unique_ptr<curl_slist, SlistDeleter>;

size_t append_body(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

// Performs a prepared request; an Error holds curl's reason when nothing was answered.
Result<Reply> perform(CURL* curl, const std::string& url, long timeout_s) {
  Reply reply;
  char reason[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, reason);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, kConnectTimeoutS);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_s);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");  // xlbd is local; an http_proxy must not intercept
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  const CURLcode code = curl_easy_perform(curl);
  if (code != CURLE_OK) return Error{reason[0] ? reason : curl_easy_strerror(code)};
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

}  // namespace

Result<Reply> ApiClient::get(const std::string& path, long timeout_s) const {
  CurlHandle curl(curl_easy_init());
  if (!curl) return Error{"cannot initialise libcurl"};
  return perform(curl.get(), base_url_ + path, timeout_s);
}

Result<Reply> ApiClient::post(const std::string& path, const std::string& json_body, const std::string& token) const {
  CurlHandle curl(curl_easy_init());
  if (!curl) return Error{"cannot initialise libcurl"};
  curl_slist* list = curl_slist_append(nullptr, "Content-Type: application/json");
  list = curl_slist_append(list, ("Authorization: Bearer " + token).c_str());
  HeaderList headers(list);
  curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, json_body.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(json_body.size()));
  return perform(curl.get(), base_url_ + path, 10);
}

std::string escape_segment(std::string_view segment) {
  char* escaped = curl_easy_escape(nullptr, segment.data(), static_cast<int>(segment.size()));
  if (!escaped) return std::string(segment);
  std::string out(escaped);
  curl_free(escaped);
  return out;
}

CurlGlobal::CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
CurlGlobal::~CurlGlobal() { curl_global_cleanup(); }

}  // namespace xlb::ctl
