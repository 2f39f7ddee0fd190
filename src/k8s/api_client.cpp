#include "k8s/api_client.h"

#include <memory>
#include <mutex>

#include <curl/curl.h>

#include "k8s/watch.h"

namespace xlb::k8s {
namespace {

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;
using HeaderList = std::unique_ptr<curl_slist, SlistDeleter>;

// libcurl wants its global init once per process, before any thread uses it.
void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// What one transfer accumulates; the callbacks get a pointer to it.
struct Transfer {
  const std::atomic<bool>* stopped = nullptr;
  const ApiClient::LineHandler* on_line = nullptr;  // null: collect the body
  long status = 0;
  std::string body;     // whole body (get, or a failed stream), or a partial line (stream)
  std::optional<std::chrono::seconds> retry_after;
  bool handler_ended = false;
  CURL* curl = nullptr;
};

long status_of(Transfer& t) {
  if (t.status == 0) curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &t.status);
  return t.status;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * count);
  constexpr std::string_view kRetryAfter = "retry-after:";
  if (line.size() > kRetryAfter.size()) {
    std::string lower(line.substr(0, kRetryAfter.size()));
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == kRetryAfter) {
      try {
        t->retry_after = std::chrono::seconds(std::stol(std::string(line.substr(kRetryAfter.size()))));
      } catch (...) {  // an HTTP date instead of seconds: fall back to our own backoff
      }
    }
  }
  return size * count;
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  t->body.append(data, n);
  if (!t->on_line || status_of(*t) != 200) return n;
  if (!take_lines(t->body, *t->on_line)) {
    t->handler_ended = true;
    return 0;  // makes curl end the transfer
  }
  return n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<Transfer*>(user)->stopped->load() ? 1 : 0;
}

Status set_tls(CURL* c, const Credentials& creds) {
  auto blob = [&](CURLoption option, const std::string& data) {
    curl_blob b{const_cast<char*>(data.data()), data.size(), CURL_BLOB_COPY};
    curl_easy_setopt(c, option, &b);
  };
  if (creds.insecure_skip_tls_verify) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  } else if (!creds.certificate_authority.empty()) {
    auto ca = creds.certificate_authority.read();
    if (!ca) return ca.error();
    blob(CURLOPT_CAINFO_BLOB, *ca);
  }
  if (!creds.client_certificate.empty()) {
    auto cert = creds.client_certificate.read();
    if (!cert) return cert.error();
    auto key = creds.client_key.read();
    if (!key) return key.error();
    blob(CURLOPT_SSLCERT_BLOB, *cert);
    curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
    blob(CURLOPT_SSLKEY_BLOB, *key);
    curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
  }
  return {};
}

Result<HeaderList> headers_for(const Credentials& creds) {
  HeaderList list(curl_slist_append(nullptr, "Accept: application/json"));
  if (!creds.token.empty()) {
    auto token = creds.token.read();
    if (!token) return token.error();
    std::string t = *token;
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
    list.reset(curl_slist_append(list.release(), ("Authorization: Bearer " + t).c_str()));
  }
  return list;
}

}  // namespace

ApiClient::ApiClient(Credentials credentials) : credentials_(std::move(credentials)) { init_curl_once(); }

// One transfer, set up for either a plain GET (`on_line` null) or a stream.
static Result<Transfer> perform(const Credentials& creds, const std::atomic<bool>& stopped, const std::string& path,
                                const ApiClient::LineHandler* on_line, long timeout_s, long silence_s) {
  if (stopped) return Error{"stopped"};
  CurlHandle curl(curl_easy_init());
  if (!curl) return Error{"curl_easy_init failed"};
  CURL* c = curl.get();
  auto headers = headers_for(creds);
  if (!headers) return headers.error();
  if (auto s = set_tls(c, creds); !s) return s.error();
  Transfer t;
  t.stopped = &stopped;
  t.on_line = on_line;
  t.curl = c;
  const std::string url = creds.server + path;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers->get());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  if (timeout_s > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
  if (silence_s > 0) {
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, silence_s);
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  const CURLcode code = curl_easy_perform(c);
  status_of(t);
  t.curl = nullptr;
  if (code == CURLE_OK || t.handler_ended || stopped) return t;
  if (code == CURLE_OPERATION_TIMEDOUT && silence_s > 0 && t.status == 200) {
    t.status = -1;  // marks "silent" for stream()
    return t;
  }
  return Error{creds.server + ": " + curl_easy_strerror(code)};
}

Result<Response> ApiClient::get(const std::string& path, std::chrono::seconds timeout) const {
  auto t = perform(credentials_, stopped_, path, nullptr, static_cast<long>(timeout.count()), 0);
  if (!t) return t.error();
  return Response{t->status, std::move(t->body), t->retry_after};
}

Result<StreamEnd> ApiClient::stream(const std::string& path, std::chrono::seconds silence,
                                    const LineHandler& on_line) const {
  auto t = perform(credentials_, stopped_, path, &on_line, 0, static_cast<long>(silence.count()));
  if (!t) return t.error();
  StreamEnd end;
  end.silent = t->status == -1;
  end.status = end.silent ? 200 : t->status;
  end.stopped = t->handler_ended || stopped_;
  end.retry_after = t->retry_after;
  if (end.status != 200) end.body = std::move(t->body);
  return end;
}

}  // namespace xlb::k8s
