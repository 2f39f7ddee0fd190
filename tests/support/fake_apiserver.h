// A Kubernetes API server for tests (tests/support/fake_apiserver.py) with its own CA, server
// and client certificates, and a C++ handle to drive it: apply and delete objects, cut
// streams, compact history, rotate tokens, throttle.
#pragma once

#include <curl/curl.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "support/command.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace xlb::test {

class FakeApiServer {
 public:
  // Certificates are made with the openssl command; the server accepts `token` as a bearer
  // token and any client certificate its CA signed.
  explicit FakeApiServer(const std::string& token = "token-1", double bookmark_interval_s = 1.0) : dir_("xlb-apiserver") {
    if (auto s = make_certificates(); !s) {
      error_ = s.error().message;
      return;
    }
    process_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        "/usr/bin/python3", std::string(XLB_SOURCE_DIR) + "/tests/support/fake_apiserver.py", "--cert",
        (dir_ / "server.crt").string(), "--key", (dir_ / "server.key").string(), "--client-ca",
        (dir_ / "ca.crt").string(), "--token", token, "--bookmark-interval", std::to_string(bookmark_interval_s)});
    auto line = process_->wait_for_line("\"port\"");
    if (!line) {
      error_ = "fake API server did not start: " + process_->seen();
      return;
    }
    port_ = nlohmann::json::parse(*line)["port"].get<int>();
  }

  // Empty when the server runs; otherwise why not.
  const std::string& error() const { return error_; }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  std::filesystem::path ca_file() const { return dir_ / "ca.crt"; }
  std::filesystem::path client_cert_file() const { return dir_ / "client.crt"; }
  std::filesystem::path client_key_file() const { return dir_ / "client.key"; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  pid_t pid() const { return process_ ? process_->pid() : -1; }

  Result<nlohmann::json> control(const std::string& what, const nlohmann::json& body = nlohmann::json::object()) {
    return request("POST", "/_test/" + what, body.dump());
  }
  Result<nlohmann::json> apply(const std::string& resource, const nlohmann::json& object) {
    return control("apply", {{"resource", resource}, {"object", object}});
  }
  Result<nlohmann::json> remove(const std::string& resource, const std::string& ns, const std::string& name) {
    return control("delete", {{"resource", resource}, {"namespace", ns}, {"name", name}});
  }
  Result<nlohmann::json> stats() { return request("GET", "/_test/stats", ""); }

 private:
  Status make_certificates() {
    const std::string d = dir_.path().string();
    auto openssl = [](std::vector<std::string> args) {
      args.insert(args.begin(), "/usr/bin/openssl");
      return run_command(args, std::chrono::seconds(30));
    };
    auto ext = dir_ / "san.ext";
    std::ofstream(ext) << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    for (auto& step : std::vector<std::vector<std::string>>{
             {"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", d + "/ca.key",
              "-out", d + "/ca.crt", "-days", "2", "-subj", "/CN=xlb-test-ca"},
             {"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", d + "/server.key", "-out",
              d + "/server.csr", "-subj", "/CN=kube-apiserver"},
             {"x509", "-req", "-in", d + "/server.csr", "-CA", d + "/ca.crt", "-CAkey", d + "/ca.key", "-CAcreateserial",
              "-out", d + "/server.crt", "-days", "2", "-extfile", ext.string()},
             {"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", d + "/client.key", "-out",
              d + "/client.csr", "-subj", "/O=system:nodes/CN=system:node:node-a"},
             {"x509", "-req", "-in", d + "/client.csr", "-CA", d + "/ca.crt", "-CAkey", d + "/ca.key", "-CAcreateserial",
              "-out", d + "/client.crt", "-days", "2"}})
      if (auto s = openssl(step); !s) return s;
    return {};
  }

  static size_t collect(char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
  }

  Result<nlohmann::json> request(const std::string& method, const std::string& path, const std::string& body) {
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
    std::string out;
    const std::string url = this->url() + path;
    const std::string ca = ca_file().string();
    curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_CAINFO, ca.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
    if (method == "POST") curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &out);
    if (CURLcode c = curl_easy_perform(curl.get()); c != CURLE_OK)
      return Error{method + " " + path + ": " + curl_easy_strerror(c)};
    try {
      return nlohmann::json::parse(out);
    } catch (const nlohmann::json::exception& e) {
      return Error{method + " " + path + ": " + e.what() + ": " + out};
    }
  }

  TempDir dir_;
  std::unique_ptr<ChildProcess> process_;
  std::string error_;
  int port_ = 0;
};

}  // namespace xlb::test
