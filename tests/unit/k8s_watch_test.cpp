// The Kubernetes source against an API server that speaks the real protocol over HTTPS:
// paged lists, chunked watch streams, bookmarks, 410 Gone, cut connections, silent streams,
// 429, token rotation, client certificates; then the source's debounce, skips and staleness.
#include <gtest/gtest.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

#include "k8s/k8s.h"
#include "support/fake_apiserver.h"
#include "support/k8s_objects.h"

namespace xlb::k8s {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::endpoint;
using test::http_port;
using test::service_json;
using test::slice_json;

// Waits (bounded) until `done` holds; the condition is re-checked whenever anything is recorded.
class Recorder {
 public:
  template <class F>
  bool wait(F done, std::chrono::milliseconds timeout = 15s) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return done(); });
  }
  template <class F>
  void record(F change) {
    {
      std::lock_guard lock(mutex_);
      change();
    }
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
};

// For conditions nothing notifies about (counters): polls, bounded.
template <class F>
bool eventually(F done, std::chrono::milliseconds timeout = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// What a reflector reported: the current objects by name, and every event in order.
struct Seen {
  Recorder recorder;
  std::map<std::string, json> objects;
  std::vector<std::string> events;  // "ADDED web"
  int lists = 0;
  bool healthy = false;
  std::string error;

  ReflectorHandler handler() {
    return {[this](std::vector<json> items) {
              recorder.record([&] {
                objects.clear();
                for (auto& i : items) objects[i["metadata"]["name"].get<std::string>()] = i;
                ++lists;
              });
            },
            [this](std::string_view type, const json& o) {
              recorder.record([&] {
                const std::string name = o["metadata"]["name"].get<std::string>();
                events.push_back(std::string(type) + " " + name);
                if (type == "DELETED")
                  objects.erase(name);
                else
                  objects[name] = o;
              });
            },
            [this](bool ok, const std::string& e) {
              recorder.record([&] {
                healthy = ok;
                if (!ok) error = e;
              });
            }};
  }
  bool has_event(const std::string& e) const { return std::find(events.begin(), events.end(), e) != events.end(); }
};

json web_service(const std::string& name, const std::string& ip = "10.96.0.10") {
  return service_json(name, {{"clusterIP", ip}, {"ports", {http_port()}}});
}

class WatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server.error().empty()) << server.error();
    token_file = server.dir() / "token";
    std::ofstream(token_file) << "token-1\n";
    credentials.server = server.url();
    credentials.certificate_authority.file = server.ca_file();
    credentials.token.file = token_file;
  }
  void TearDown() override { stop(); }

  void start(ReflectorHandler handler, const std::string& resource = "/api/v1/services") {
    client = std::make_unique<ApiClient>(credentials);
    reflector = std::make_unique<Reflector>(*client, resource, settings, std::move(handler), log);
    thread = std::jthread([this](std::stop_token st) { reflector->run(st); });
  }
  void stop() {
    if (client) client->stop();
    thread.request_stop();
    if (thread.joinable()) thread.join();
  }
  int64_t server_stat(const std::string& name) {
    auto s = server.stats();
    return s ? (*s)[name].get<int64_t>() : -1;
  }

  test::FakeApiServer server{"token-1", 0.2};
  std::unique_ptr<test::FakeApiServer> quiet;
  Seen seen;  // before the reflector: it outlives the thread that reports into it
  std::filesystem::path token_file;
  Credentials credentials;
  ReflectorSettings settings{.page_size = 3, .silence_timeout = 5s, .watch_timeout = 300s, .backoff_min = 50ms,
                             .backoff_max = 500ms, .request_timeout = 10s};
  Logger log{LogLevel::error};
  std::unique_ptr<ApiClient> client;
  std::unique_ptr<Reflector> reflector;
  std::jthread thread;
};

TEST_F(WatchTest, ListsInPagesThenWatchesAddModifyDelete) {
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(server.apply("services", web_service("svc-" + std::to_string(i))).ok());
  start(seen.handler());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.lists == 1; }));
  EXPECT_EQ(seen.objects.size(), 7u);
  EXPECT_EQ(server_stat("lists"), 3);  // 3 + 3 + 1

  ASSERT_TRUE(server.apply("services", web_service("new")).ok());
  ASSERT_TRUE(server.apply("services", web_service("svc-0", "10.96.0.99")).ok());
  ASSERT_TRUE(server.remove("services", "default", "svc-1").ok());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.events.size() == 3; }));
  EXPECT_EQ(seen.events, (std::vector<std::string>{"ADDED new", "MODIFIED svc-0", "DELETED svc-1"}));
  EXPECT_EQ(seen.objects["svc-0"]["spec"]["clusterIP"], "10.96.0.99");
  EXPECT_EQ(seen.objects.count("svc-1"), 0u);
  EXPECT_EQ(seen.lists, 1);
}

TEST_F(WatchTest, BookmarksAdvanceTheVersionSoACutResumesWithoutRelist) {
  start(seen.handler());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.lists == 1; }));
  // Changes elsewhere move the server's version on; bookmarks carry it to this watch.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(server.apply("endpointslices", slice_json("s" + std::to_string(i), "x", json::array())).ok());
  ASSERT_TRUE(eventually([&] { return reflector->stats().bookmarks >= 2; }));
  // History up to now is compacted: only a watch that resumes from a bookmark's version
  // (not the list's) goes on without a relist.
  ASSERT_TRUE(server.control("compact").ok());
  ASSERT_TRUE(server.apply("services", web_service("after")).ok());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.has_event("ADDED after"); }));
  EXPECT_EQ(seen.lists, 1);
  EXPECT_EQ(server_stat("gone"), 0);
}

TEST_F(WatchTest, GoneRelistsAndReplacesEverything) {
  settings.silence_timeout = 30s;
  quiet = std::make_unique<test::FakeApiServer>("token-1", 3600);  // no bookmarks: the watch's version stays old
  auto& quiet_server = *quiet;
  ASSERT_TRUE(quiet_server.error().empty());
  credentials.server = quiet_server.url();
  credentials.certificate_authority.file = quiet_server.ca_file();
  ASSERT_TRUE(quiet_server.apply("services", web_service("a")).ok());
  start(seen.handler());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.lists == 1; }));
  ASSERT_TRUE(quiet_server.remove("services", "default", "a").ok());
  ASSERT_TRUE(quiet_server.apply("services", web_service("b")).ok());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.has_event("ADDED b"); }));
  // History is compacted past the watch's version (another kind moved the server on) and the
  // watch is cut: its resume gets 410 Gone, and the reflector lists again.
  ASSERT_TRUE(quiet_server.apply("endpointslices", slice_json("s", "x", json::array())).ok());
  ASSERT_TRUE(quiet_server.control("compact").ok());
  ASSERT_TRUE(quiet_server.apply("services", web_service("c")).ok());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.lists == 2 && seen.objects.count("c"); }));
  EXPECT_GE(quiet_server.stats().value()["gone"].get<int>(), 1);
  std::vector<std::string> names;
  for (auto& [n, o] : seen.objects) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"b", "c"}));
}

TEST_F(WatchTest, CutMidStreamResumesFromLastVersionWithoutLossOrDuplicates) {
  start(seen.handler());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.lists == 1; }));
  ASSERT_TRUE(server.apply("services", web_service("one")).ok());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.events.size() == 1; }));
  const auto watches = reflector->stats().watches;
  ASSERT_TRUE(server.control("cut").ok());
  ASSERT_TRUE(server.apply("services", web_service("two")).ok());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.events.size() >= 2; }));
  EXPECT_EQ(seen.events, (std::vector<std::string>{"ADDED one", "ADDED two"}));
  EXPECT_GT(reflector->stats().watches, watches);
  EXPECT_EQ(seen.lists, 1);
}

TEST_F(WatchTest, MalformedLineSkippedAndTheStreamGoesOn) {
  start(seen.handler());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.lists == 1; }));
  ASSERT_TRUE(server.control("raw", {{"resource", "services"}, {"line", "{\"type\": \"ADDED\", \"object\": {tru"}}).ok());
  ASSERT_TRUE(server.control("raw", {{"resource", "services"}, {"line", "{\"type\": \"WHATEVER\", \"object\": {}}"}}).ok());
  ASSERT_TRUE(server.apply("services", web_service("fine")).ok());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.has_event("ADDED fine"); }));
  EXPECT_EQ(reflector->stats().malformed, 2u);
  EXPECT_EQ(seen.events.size(), 1u);
}

TEST_F(WatchTest, RotatedTokenIsReadAgain) {
  start(seen.handler());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.lists == 1 && seen.healthy; }));
  ASSERT_TRUE(server.control("tokens", {{"tokens", {"token-2"}}}).ok());
  ASSERT_TRUE(server.control("cut").ok());
  ASSERT_TRUE(seen.recorder.wait([&] { return !seen.healthy && seen.error.find("401") != std::string::npos; }))
      << seen.error;
  std::ofstream(token_file) << "token-2\n";
  ASSERT_TRUE(server.apply("services", web_service("after-rotation")).ok());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.has_event("ADDED after-rotation") && seen.healthy; }));
}

TEST_F(WatchTest, ThrottledRequestWaitsAndRecovers) {
  start(seen.handler());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.lists == 1; }));
  ASSERT_TRUE(server.control("throttle", {{"count", 2}, {"retry_after", 1}}).ok());
  ASSERT_TRUE(server.control("cut").ok());
  ASSERT_TRUE(server.apply("services", web_service("later")).ok());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.has_event("ADDED later"); }));
  EXPECT_EQ(server_stat("throttled"), 2);
  EXPECT_NE(seen.error.find("429"), std::string::npos) << seen.error;
}

TEST_F(WatchTest, SilentStreamIsDroppedAndResumed) {
  settings.silence_timeout = 1s;
  start(seen.handler());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.lists == 1; }));
  const auto watches = reflector->stats().watches;
  ASSERT_TRUE(server.control("silence", {{"seconds", 3}}).ok());
  // Silence is a server gone without a word: stale, with the reason, until a stream speaks again.
  ASSERT_TRUE(seen.recorder.wait([&] { return !seen.healthy && seen.error.find("nothing for 1 s") != std::string::npos; }))
      << seen.error;
  ASSERT_TRUE(server.apply("services", web_service("after-silence")).ok());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.has_event("ADDED after-silence") && seen.healthy; }));
  EXPECT_GT(reflector->stats().watches, watches);  // the silent stream was given up, not waited out
  EXPECT_EQ(seen.lists, 1);
}

TEST_F(WatchTest, ClientCertificateFromKubeconfig) {
  const auto kubeconfig = server.dir() / "kubelet.conf";
  std::ofstream(kubeconfig) << "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority: ca.crt\n"
                               "    server: " << server.url() << "\n  name: kubernetes\ncontexts:\n- context:\n"
                               "    cluster: kubernetes\n    user: system:node:node-a\n  name: system:node:node-a@kubernetes\n"
                               "current-context: system:node:node-a@kubernetes\npreferences: {}\nusers:\n"
                               "- name: system:node:node-a\n  user:\n    client-certificate: client.crt\n"
                               "    client-key: client.key\n";
  auto loaded = load_kubeconfig(kubeconfig);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  credentials = *loaded;
  ASSERT_TRUE(server.apply("services", web_service("x")).ok());
  start(seen.handler());
  ASSERT_TRUE(seen.recorder.wait([&] { return seen.lists == 1; }));
  EXPECT_EQ(seen.objects.size(), 1u);
  EXPECT_EQ(server_stat("unauthorized"), 0);
}

TEST_F(WatchTest, UntrustedServerIsRefused) {
  credentials.certificate_authority = {};  // the system's CAs do not know the test CA
  start(seen.handler());
  ASSERT_TRUE(seen.recorder.wait([&] { return !seen.error.empty(); }));
  EXPECT_EQ(seen.lists, 0);
  EXPECT_NE(seen.error.find("certificate"), std::string::npos) << seen.error;
}

// The whole source: both kinds, translated, debounced, with skips and staleness.
class SourceTest : public WatchTest {
 protected:
  void start_source() {
    SourceSettings s;
    s.reflector = settings;
    s.translate.node_name = "node-a";
    source = std::make_unique<Source>(credentials, s, [this](Publication p) {
      published.record([&] {
        fold(p);
        publications.push_back(std::move(p));
      });
    }, log);
  }
  void TearDown() override { source.reset(); }

  // The catalog the publications so far add up to, as a consumer keeps it.
  void fold(const Publication& p) {
    if (p.whole) {
      current.clear();
      for (const auto& s : p.catalog.services) current.insert_or_assign(s.name, s);
      return;
    }
    for (const auto& s : p.changes.upserted) current.insert_or_assign(s.name, s);
    for (const auto& name : p.changes.removed) current.erase(name);
  }
  model::Catalog catalog() {
    model::Catalog c;
    published.record([&] {
      for (const auto& [name, s] : current) c.services.push_back(s);
    });
    return c;
  }

  Recorder published;
  std::vector<Publication> publications;
  std::map<std::string, model::Service> current;
  std::unique_ptr<Source> source;
};

TEST_F(SourceTest, PublishesTheTranslatedCatalogOnceBothKindsAreListed) {
  ASSERT_TRUE(server.apply("services", web_service("web")).ok());
  ASSERT_TRUE(server.apply("endpointslices", slice_json("web-1", "web", {endpoint("10.244.1.5")})).ok());
  start_source();
  ASSERT_TRUE(published.wait([&] { return !publications.empty(); }));
  EXPECT_TRUE(publications.back().whole);
  const auto catalog = this->catalog();
  ASSERT_EQ(catalog.services.size(), 1u);
  EXPECT_EQ(catalog.services[0].name, "default/web:http");
  ASSERT_EQ(catalog.services[0].backends.size(), 1u);
  EXPECT_EQ(catalog.services[0].backends[0].key(), "10.244.1.5:8080");
  EXPECT_FALSE(source->status().stale());

  // An endpoint leaves: the next publication is that one service, without it.
  ASSERT_TRUE(server.apply("endpointslices", slice_json("web-1", "web", {endpoint("10.244.1.6")})).ok());
  ASSERT_TRUE(published.wait([&] {
    const auto& s = current.at("default/web:http");
    return !s.backends.empty() && s.backends[0].key() == "10.244.1.6:8080";
  }));
  published.record([&] {
    EXPECT_FALSE(publications.back().whole);
    ASSERT_EQ(publications.back().changes.upserted.size(), 1u);
    EXPECT_EQ(publications.back().changes.upserted[0].name, "default/web:http");
    EXPECT_TRUE(publications.back().changes.removed.empty());
  });
}

TEST_F(SourceTest, AChangeIsPublishedAsTheServicesItTouched) {
  ASSERT_TRUE(server.apply("services", web_service("web")).ok());
  ASSERT_TRUE(server.apply("services", web_service("api", "10.96.0.20")).ok());
  ASSERT_TRUE(server.apply("endpointslices", slice_json("web-1", "web", {endpoint("10.244.1.5")})).ok());
  start_source();
  ASSERT_TRUE(published.wait([&] { return current.size() == 2; }));
  const size_t before = publications.size();

  // The slice now names api: web loses its endpoint, api gets it; nothing else is published.
  ASSERT_TRUE(server.apply("endpointslices", slice_json("web-1", "api", {endpoint("10.244.1.5")})).ok());
  ASSERT_TRUE(published.wait([&] { return !current.at("default/api:http").backends.empty(); }));
  published.record([&] {
    size_t upserted = 0;
    for (size_t i = before; i < publications.size(); ++i) {
      EXPECT_FALSE(publications[i].whole);
      upserted += publications[i].changes.upserted.size();
    }
    EXPECT_LE(upserted, 2u);
    EXPECT_TRUE(current.at("default/web:http").backends.empty());
  });

  // A Service deleted: its model services are removed by name.
  ASSERT_TRUE(server.remove("services", "default", "api").ok());
  ASSERT_TRUE(published.wait([&] { return !current.count("default/api:http"); }));
  published.record([&] { EXPECT_EQ(publications.back().changes.removed, std::vector<std::string>{"default/api:http"}); });
  TranslateOptions options;
  options.node_name = "node-a";
  EXPECT_EQ(catalog(), translate({parse_service(web_service("web")).value()}, {}, options).catalog);
}

TEST_F(SourceTest, ABurstBecomesFewPublications) {
  start_source();
  ASSERT_TRUE(published.wait([&] { return !publications.empty(); }));
  const size_t before = publications.size();
  json burst = json::array();
  for (int i = 0; i < 40; ++i) burst.push_back(web_service("s" + std::to_string(i), "10.96.1." + std::to_string(i + 1)));
  ASSERT_TRUE(server.control("apply", {{"resource", "services"}, {"objects", burst}}).ok());
  ASSERT_TRUE(published.wait([&] { return current.size() == 40; }));
  EXPECT_LT(publications.size() - before, 40u / 2);
}

TEST_F(SourceTest, MalformedObjectSkippedWithReasonRestApplied) {
  json bad = web_service("bad");
  bad["spec"]["ports"][0]["port"] = "eighty";
  ASSERT_TRUE(server.apply("services", bad).ok());
  ASSERT_TRUE(server.apply("services", web_service("good", "10.96.0.20")).ok());
  start_source();
  ASSERT_TRUE(published.wait([&] { return !publications.empty(); }));
  ASSERT_EQ(catalog().services.size(), 1u);
  EXPECT_EQ(catalog().services[0].name, "default/good:http");
  auto status = source->status();
  ASSERT_TRUE(eventually([&] { return source->status().publications >= 1; }));
  status = source->status();
  ASSERT_EQ(status.skipped.size(), 1u);
  EXPECT_EQ(status.skipped[0].object, "Service default/bad");
  EXPECT_NE(status.skipped[0].reason.find("spec.ports[0].port must be an integer"), std::string::npos);
}

TEST_F(SourceTest, UnreachableServerKeepsTheLastCatalogAndSaysStale) {
  ASSERT_TRUE(server.apply("services", web_service("web")).ok());
  start_source();
  ASSERT_TRUE(published.wait([&] { return !publications.empty(); }));
  const size_t count = publications.size();
  ASSERT_TRUE(server.control("tokens", {{"tokens", json::array()}}).ok());
  ASSERT_TRUE(server.control("cut").ok());
  ASSERT_TRUE(eventually([&] { return source->status().stale() && source->status().error.find("401") != std::string::npos; }))
      << source->status().error;
  EXPECT_EQ(publications.size(), count);  // nothing withdrawn while the server is away
  ASSERT_TRUE(server.control("tokens", {{"tokens", {"token-1"}}}).ok());
  ASSERT_TRUE(eventually([&] { return !source->status().stale(); }));
}

}  // namespace
}  // namespace xlb::k8s
