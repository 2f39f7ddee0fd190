// The API over real HTTP against a fake Provider: every endpoint's status and JSON shape, then
// hostile input, after which the server must still answer.
#include "api/server.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "advise/measured.h"
#include "api/metrics.h"
#include "fake_provider.h"
#include "http_client.h"
#include "support/temp_dir.h"

namespace xlb::api {
namespace {

namespace fs = std::filesystem;
using test::FakeProvider;
using test::HttpClient;
using test::HttpResponse;

const std::string kXss = "<script>alert(1)</script>";
const std::string kXssPath = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    start();
  }
  void TearDown() override {
    server_.reset();
  }

  void start(ServerConfig config = {}) {
    server_.reset();
    config.listen = "127.0.0.1:0";
    auto server = Server::start(config, provider_, dir_, log_);
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(*server);
    http_.emplace(server_->port());
  }

  std::string token() const {
    std::ifstream in(dir_ / "api.token");
    std::string t;
    std::getline(in, t);
    return t;
  }
  std::string bearer() const { return "Authorization: Bearer " + token(); }

  HttpResponse get(const std::string& path) const { return http_->get(path); }

  test::TempDir dir_{"xlb-api"};
  Logger log_{LogLevel::error};
  FakeProvider provider_;
  std::unique_ptr<Server> server_;
  std::optional<HttpClient> http_;
};

void expect_json_error(const HttpResponse& r, long status, const std::string& words) {
  EXPECT_EQ(r.status, status) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/json");
  const auto body = r.json();
  ASSERT_TRUE(body.is_object() && body.contains("error")) << r.body;
  EXPECT_NE(body["error"].get<std::string>().find(words), std::string::npos) << r.body;
}

// --- reading ---

TEST_F(ServerTest, HealthzSaysOk) {
  const auto r = get("/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  EXPECT_EQ(r.header("content-type"), "text/plain; charset=utf-8");
}

TEST_F(ServerTest, NodeHasItsFieldsAndTotals) {
  const auto r = get("/api/v1/node");
  ASSERT_EQ(r.status, 200);
  const auto j = r.json();
  EXPECT_EQ(j["hostname"], "node-1");
  EXPECT_EQ(j["kernel"], "6.18.0");
  EXPECT_EQ(j["version"], "0.1.0");
  EXPECT_EQ(j["datapath_mode"], "native");
  EXPECT_TRUE(j["attachments"].is_array());
  EXPECT_TRUE(j["preflight"].is_array());
  EXPECT_EQ(j["revision"], 2);
  EXPECT_EQ(j["sampled_at_ms"], 1'700'000'000'000);
  EXPECT_EQ(j["totals"]["services"], 2);
  EXPECT_EQ(j["totals"]["frontends"], 2);
  EXPECT_EQ(j["totals"]["backends"], 5);
  EXPECT_EQ(j["totals"]["packets"], 60);
  EXPECT_EQ(j["totals"]["bytes"], 6000);
  EXPECT_EQ(j["totals"]["new_flows"], 6);
  EXPECT_EQ(j["drops"]["no backend"], 4);
}

TEST_F(ServerTest, AdviceIsTheRuleOnThisNodeAndTheLastMeasurement) {
  // Never measured: the rule of thumb on what xlbd knows (2 services, kernel 6.18.0, preflight).
  auto r = get("/api/v1/advice");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = r.json();
  EXPECT_EQ(j["verdict_code"], "keep_kube_proxy") << r.body;
  EXPECT_EQ(j["verdict"], "keep kube-proxy");
  EXPECT_TRUE(j["measured"].is_null());
  std::map<std::string, std::string> inputs;
  for (const auto& i : j["inputs"]) inputs[i["input"]] = i["value"];
  EXPECT_EQ(inputs["kernel"], "6.18.0");
  EXPECT_EQ(inputs["services"], "2");
  EXPECT_EQ(inputs["crossover"], "not measured");

  // xlbctl advise --measure found socket-LB ahead from 2 services here, on a 3-node cluster.
  advise::Saved saved;
  saved.measured.points = {{1, 20, 20}, {2, 20, 30}};
  saved.measured.measured_at = "2026-11-26T12:00:00Z";
  saved.measured.kernel = "6.18.0";
  saved.nodes = 3;
  saved.kube_proxy_mode = "iptables";
  saved.kube_proxy_services = 2;
  ASSERT_TRUE(advise::save(dir_ / advise::kSavedFile, saved).ok());
  r = get("/api/v1/advice");
  ASSERT_EQ(r.status, 200) << r.body;
  j = r.json();
  EXPECT_EQ(j["verdict_code"], "replace") << r.body;
  EXPECT_NE(j["reason"].get<std::string>().find("measured crossover of 2"), std::string::npos) << r.body;
  EXPECT_EQ(j["measured"]["crossover"], 2);
  ASSERT_EQ(j["measured"]["points"].size(), 2u);
  EXPECT_EQ(j["measured"]["points"][1]["iptables_p50_us"], 30.0);
  inputs.clear();
  for (const auto& i : j["inputs"]) inputs[i["input"]] = i["value"];
  EXPECT_EQ(inputs["nodes"], "3");
  EXPECT_EQ(inputs["kube-proxy"], "iptables mode, 2 services");
  EXPECT_EQ(inputs["crossover"], "2 services");

  // A file that is not a measurement: the rule without it, and a note that says so.
  std::ofstream(dir_ / advise::kSavedFile) << "{\"measured\": 1}";
  r = get("/api/v1/advice");
  ASSERT_EQ(r.status, 200) << r.body;
  j = r.json();
  EXPECT_TRUE(j["measured"].is_null());
  EXPECT_NE(j["notes"].dump().find("unreadable"), std::string::npos) << r.body;
}

TEST_F(ServerTest, ServicesListEveryServiceWithRingsAndCounters) {
  const auto r = get("/api/v1/services");
  ASSERT_EQ(r.status, 200);
  const auto j = r.json();
  EXPECT_EQ(j["revision"], 2);
  ASSERT_EQ(j["services"].size(), 2u);
  const auto& web = j["services"][0];
  EXPECT_EQ(web["name"], "web");
  EXPECT_EQ(web["mode"], "nat");
  EXPECT_EQ(web["source"], "toml");
  EXPECT_EQ(web["last_disruption"], 0.25);
  EXPECT_EQ(web["frontends"][0]["address"], "198.18.0.10");
  EXPECT_EQ(web["frontends"][0]["port"], 80);
  EXPECT_EQ(web["frontends"][0]["protocol"], "tcp");
  ASSERT_EQ(web["backends"].size(), 3u);
  EXPECT_EQ(web["backends"][0]["key"], "10.0.0.2:8080");
  EXPECT_EQ(web["backends"][0]["state"], "active");
  EXPECT_EQ(web["backends"][0]["weight"], 1);
  EXPECT_EQ(web["backends"][1]["counters"]["packets"], 20);
  EXPECT_EQ(web["counters"]["new_flows"], 3);
  ASSERT_EQ(web["rings"].size(), 1u);
  EXPECT_EQ(web["rings"][0]["family"], "ipv4");
  EXPECT_EQ(web["rings"][0]["size"], 251);
  ASSERT_EQ(web["rings"][0]["shares"].size(), 3u);
  EXPECT_EQ(web["rings"][0]["shares"][0]["backend"], "10.0.0.2:8080");
  EXPECT_EQ(web["rings"][0]["shares"][0]["slots"], 85);
  EXPECT_NEAR(web["rings"][0]["shares"][0]["share"].get<double>(), 85.0 / 251, 1e-9);
}

TEST_F(ServerTest, OneServiceByItsEncodedName) {
  auto r = get("/api/v1/services/web");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["service"]["name"], "web");
  EXPECT_EQ(r.json()["revision"], 2);

  // A "/" in a name is %2F: decoded per segment, it stays inside the name.
  r = get("/api/v1/services/" + kXssPath);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["service"]["name"], kXss);
}

TEST_F(ServerTest, UnknownServiceIs404WithAnErrorToActOn) {
  expect_json_error(get("/api/v1/services/nope"), 404, "no service named \"nope\"; GET /api/v1/services lists them");
}

TEST_F(ServerTest, RevisionsNewestFirstWithTheirChanges) {
  auto r = get("/api/v1/revisions");
  ASSERT_EQ(r.status, 200);
  auto j = r.json();
  ASSERT_EQ(j["revisions"].size(), 2u);
  EXPECT_EQ(j["revisions"][0]["id"], 2);
  EXPECT_EQ(j["revisions"][0]["source"], "toml:/etc/xlb/xlb.toml");
  EXPECT_EQ(j["revisions"][0]["summary"], "~web (+backend 10.0.0.4:8080)");
  EXPECT_EQ(j["revisions"][0]["created_at"], "2026-01-01T00:00:01.000Z");
  EXPECT_EQ(j["revisions"][0]["changes"][0]["kind"], "changed");
  EXPECT_EQ(j["revisions"][0]["changes"][0]["service"], "web");
  EXPECT_EQ(j["revisions"][0]["changes"][0]["details"][0], "+backend 10.0.0.4:8080");

  r = get("/api/v1/revisions?limit=1");
  EXPECT_EQ(r.json()["revisions"].size(), 1u);
  for (const auto* bad : {"limit=0", "limit=501", "limit=abc", "limit=1x", "limit=-1"})
    expect_json_error(get(std::string("/api/v1/revisions?") + bad), 400, "limit must be a whole number from 1 to 500");
}

TEST_F(ServerTest, EventsAfterAnIdOldestFirst) {
  provider_.add_event("drain", "web 10.0.0.2:8080", "drained by alice");
  auto r = get("/api/v1/events");
  ASSERT_EQ(r.status, 200);
  auto j = r.json();
  ASSERT_EQ(j["events"].size(), 2u);
  EXPECT_EQ(j["events"][0]["id"], 1);
  EXPECT_EQ(j["events"][1]["kind"], "drain");
  EXPECT_EQ(j["events"][1]["subject"], "web 10.0.0.2:8080");
  EXPECT_EQ(j["events"][1]["message"], "drained by alice");
  EXPECT_EQ(j["last_id"], 2);

  r = get("/api/v1/events?after=1");
  ASSERT_EQ(r.json()["events"].size(), 1u);
  EXPECT_EQ(r.json()["events"][0]["id"], 2);
  r = get("/api/v1/events?after=2");
  EXPECT_TRUE(r.json()["events"].empty());
  EXPECT_EQ(r.json()["last_id"], 2);
  expect_json_error(get("/api/v1/events?wait=26"), 400, "wait must be a whole number from 0 to 25");
  expect_json_error(get("/api/v1/events?after=x"), 400, "after must be");
}

TEST_F(ServerTest, EventsLongPollReturnsWhenOneArrives) {
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    provider_.add_event("drain", "web 10.0.0.2:8080", "drained");
  });
  const auto r = get("/api/v1/events?after=1&wait=20");
  later.join();
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.json()["events"].size(), 1u);
  EXPECT_EQ(r.json()["events"][0]["id"], 2);

  // Nothing new: an empty list once the wait is over.
  const auto empty = get("/api/v1/events?after=2&wait=1");
  ASSERT_EQ(empty.status, 200);
  EXPECT_TRUE(empty.json()["events"].empty());
}

TEST_F(ServerTest, DropsAfterAnIdWithTheUnreportedCount) {
  provider_.add_drop("no backend");
  provider_.add_drop("truncated header");
  auto r = get("/api/v1/drops");
  ASSERT_EQ(r.status, 200);
  auto j = r.json();
  ASSERT_EQ(j["drops"].size(), 2u);
  EXPECT_EQ(j["drops"][0]["reason"], "no backend");
  EXPECT_EQ(j["drops"][0]["source"], "10.1.0.1:40000");
  EXPECT_EQ(j["drops"][0]["destination"], "198.18.0.10:80");
  EXPECT_EQ(j["drops"][0]["protocol"], "tcp");
  EXPECT_EQ(j["drops"][0]["interface"], "eth0");
  EXPECT_EQ(j["last_id"], 2);
  EXPECT_EQ(j["unreported"], 7);

  r = get("/api/v1/drops?after=1");
  ASSERT_EQ(r.json()["drops"].size(), 1u);
  EXPECT_EQ(r.json()["drops"][0]["reason"], "truncated header");
  expect_json_error(get("/api/v1/drops?limit=0"), 400, "limit must be a whole number from 1 to 1000");
}

TEST_F(ServerTest, DropsLongPollReturnsWhenOneArrives) {
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    provider_.add_drop("no backend");
  });
  const auto r = get("/api/v1/drops?after=0&wait=20");
  later.join();
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.json()["drops"].size(), 1u);
  EXPECT_EQ(r.json()["drops"][0]["id"], 1);
}

TEST_F(ServerTest, TraceAsksTheProviderForThatFlow) {
  auto r = get("/api/v1/trace?client=10.1.0.1&client_port=40000&frontend=198.18.0.10&port=80&protocol=tcp");
  ASSERT_EQ(r.status, 200);
  auto j = r.json();
  EXPECT_EQ(j["verdict"], "ring");
  EXPECT_EQ(j["service"], "web");
  EXPECT_EQ(j["backend"], "10.0.0.2:8080");
  EXPECT_EQ(j["slot"], 5);
  EXPECT_EQ(j["ring_size"], 251);
  EXPECT_TRUE(j["conntrack"].is_null());
  const auto asked = provider_.traced();
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].client, test::ip("10.1.0.1"));
  EXPECT_EQ(asked[0].client_port, 40000);
  EXPECT_EQ(asked[0].frontend_port, 80);

  // The protocol defaults to tcp; IPv6 addresses need no brackets in a query.
  r = get("/api/v1/trace?client=2001:db8::1&client_port=1&frontend=2001:db8::10&port=53&protocol=udp");
  EXPECT_EQ(r.json()["verdict"], "not_a_frontend");
}

TEST_F(ServerTest, TraceRefusesAnIncompleteOrMixedFlow) {
  expect_json_error(get("/api/v1/trace?client=10.1.0.1&client_port=1&port=80"), 400, "missing frontend");
  expect_json_error(get("/api/v1/trace?client=10.1.0.1&frontend=198.18.0.10&port=80"), 400, "missing client_port");
  expect_json_error(get("/api/v1/trace?client=10.1.0.1&client_port=0&frontend=198.18.0.10&port=80"), 400,
                    "client_port must be a whole number from 1 to 65535");
  expect_json_error(get("/api/v1/trace?client=10.1.0.1&client_port=1&frontend=2001:db8::10&port=80"), 400,
                    "one address family");
  expect_json_error(get("/api/v1/trace?client=10.1.0.1&client_port=1&frontend=198.18.0.10&port=80&protocol=sctp"),
                    400, "protocol must be tcp or udp");
  EXPECT_TRUE(provider_.traced().empty());
}

TEST_F(ServerTest, StoppingEndsALongPollAtOnce) {
  std::thread poll([&] { (void)get("/api/v1/events?after=1&wait=25"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto start = std::chrono::steady_clock::now();
  server_.reset();
  poll.join();
  // Not a timing assertion on the server's speed: 25 s would mean the poll was never woken.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST_F(ServerTest, MetricsArePrometheusTextWithHelpAndType) {
  const auto r = get("/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  for (const std::string line :
       {"# TYPE xlb_service_packets_total counter", "# HELP xlb_service_packets_total Packets sent to the service's backends.",
        "xlb_service_packets_total{service=\"web\"} 30", "xlb_backend_packets_total{service=\"web\",backend=\"10.0.0.3:8080\"} 20",
        "xlb_backend_ring_slots{service=\"web\",backend=\"10.0.0.2:8080\",family=\"ipv4\"} 85",
        "xlb_backend_state{service=\"web\",backend=\"10.0.0.2:8080\",state=\"active\"} 1",
        "xlb_drops_total{reason=\"no backend\"} 4", "xlb_revision 2", "# TYPE xlb_drops_total counter"})
    EXPECT_NE(r.body.find(line + "\n"), std::string::npos) << line << "\n" << r.body;
  // Every sample's family was introduced by its TYPE line.
  std::istringstream lines(r.body);
  std::set<std::string> typed;
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("# TYPE ")) typed.insert(line.substr(7, line.find(' ', 7) - 7));
    if (line.starts_with("#")) continue;
    const std::string name = line.substr(0, line.find_first_of("{ "));
    EXPECT_TRUE(typed.count(name)) << line;
    EXPECT_TRUE(name.starts_with("xlb_")) << line;
  }
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST_F(ServerTest, TheUiIsServedWithASafeContentPolicy) {
  auto r = get("/");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(r.body.find("<title>"), std::string::npos);
  EXPECT_NE(r.header("content-security-policy").find("script-src 'self'"), std::string::npos);
  EXPECT_EQ(r.header("x-content-type-options"), "nosniff");
  EXPECT_EQ(r.header("x-frame-options"), "DENY");
  for (const std::string file : {"index.html", "services.html", "service.html", "events.html", "history.html",
                                 "style.css", "common.js", "service.js"}) {
    r = get("/" + file);
    EXPECT_EQ(r.status, 200) << file;
    EXPECT_FALSE(r.body.empty()) << file;
  }
  EXPECT_EQ(get("/style.css").header("content-type"), "text/css; charset=utf-8");
  EXPECT_EQ(get("/common.js").header("content-type"), "text/javascript; charset=utf-8");
}

TEST_F(ServerTest, NoCorsHeadersForOtherOrigins) {
  const auto r = http_->get("/api/v1/services", {"Origin: http://evil.example"});
  EXPECT_EQ(r.status, 200);
  for (const auto& [name, value] : r.headers) EXPECT_FALSE(name.starts_with("access-control-")) << name;
  // A preflight for a cross-origin write is not granted.
  const auto preflight = http_->request("OPTIONS", "/api/v1/reload", "",
                                        {"Origin: http://evil.example", "Access-Control-Request-Method: POST",
                                         "Access-Control-Request-Headers: authorization"});
  EXPECT_EQ(preflight.status, 405);
  for (const auto& [name, value] : preflight.headers) EXPECT_FALSE(name.starts_with("access-control-")) << name;
}

TEST_F(ServerTest, OtherHostNamesAreRefusedAgainstDnsRebinding) {
  expect_json_error(http_->get("/api/v1/services", {"Host: evil.example"}), 421, "is not this node");
  expect_json_error(http_->get("/api/v1/services", {"Host: evil.example:9180"}), 421, "DNS rebinding");
  EXPECT_EQ(http_->get("/api/v1/services", {"Host: localhost:9180"}).status, 200);
  EXPECT_EQ(http_->get("/api/v1/services", {"Host: 127.0.0.1"}).status, 200);
  EXPECT_EQ(http_->get("/api/v1/services", {"Host: [::1]:9180"}).status, 200);
}

// --- writing ---

TEST_F(ServerTest, TheTokenFileIsPrivateAndKept) {
  const auto path = dir_ / "api.token";
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string first = token();
  EXPECT_EQ(first.size(), 64u);
  EXPECT_EQ(first.find_first_not_of("0123456789abcdef"), std::string::npos);

  start();
  EXPECT_EQ(token(), first) << "a restart keeps the token";

  ::chmod(path.c_str(), 0644);
  start();
  EXPECT_NE(token(), first) << "a token others could read is replaced";
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  std::ofstream(path) << "short\n";
  ::chmod(path.c_str(), 0600);
  start();
  EXPECT_EQ(token().size(), 64u) << "a malformed token is replaced";
}

TEST_F(ServerTest, DrainNeedsTheToken) {
  const std::string path = "/api/v1/services/web/backends/10.0.0.2:8080/drain";
  auto r = http_->post(path);
  expect_json_error(r, 401, "Authorization: Bearer TOKEN");
  EXPECT_EQ(r.header("www-authenticate"), "Bearer");
  expect_json_error(http_->post(path, "", {"Authorization: Bearer " + std::string(64, '0')}), 401, "api.token");
  expect_json_error(http_->post(path, "", {"Authorization: Basic " + token()}), 401, "api.token");
  expect_json_error(http_->post(path, "", {"Authorization: Bearer " + token() + "0"}), 401, "api.token");
  expect_json_error(http_->post(path, "", {"Authorization: Bearer " + token().substr(1)}), 401, "api.token");
  EXPECT_TRUE(provider_.writes().empty()) << "nothing reached the provider";
}

TEST_F(ServerTest, DrainAndUndrainReachTheProviderWithWhoAsked) {
  auto r = http_->post("/api/v1/services/web/backends/10.0.0.2:8080/drain", "", {bearer()});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["service"], "web");
  EXPECT_EQ(r.json()["backend"], "10.0.0.2:8080");
  EXPECT_EQ(r.json()["drained"], true);
  EXPECT_EQ(r.json()["message"], "drained");
  EXPECT_EQ(r.json()["revision"], 2);

  r = http_->post("/api/v1/services/" + kXssPath + "/backends/10.0.0.3:8080/undrain",
                  R"({"by": "alice", "reason": "kernel upgrade"})", {bearer(), "Content-Type: application/json"});
  ASSERT_EQ(r.status, 200) << r.body;
  const auto writes = provider_.writes();
  ASSERT_EQ(writes.size(), 2u);
  EXPECT_EQ(writes[0].service, "web");
  EXPECT_EQ(writes[0].backend, "10.0.0.2:8080");
  EXPECT_TRUE(writes[0].drained);
  EXPECT_EQ(writes[0].actor.who, "api client 127.0.0.1");
  EXPECT_EQ(writes[1].service, kXss);
  EXPECT_FALSE(writes[1].drained);
  EXPECT_EQ(writes[1].actor.who, "alice (127.0.0.1)");
  EXPECT_EQ(writes[1].actor.reason, "kernel upgrade");
}

TEST_F(ServerTest, DrainOfAnUnknownServiceIs404) {
  expect_json_error(http_->post("/api/v1/services/nope/backends/10.0.0.2:8080/drain", "", {bearer()}), 404,
                    "no service named \"nope\"");
}

TEST_F(ServerTest, BadBodiesAre400AndReachNothing) {
  const std::string path = "/api/v1/services/web/backends/10.0.0.2:8080/drain";
  expect_json_error(http_->post(path, "{not json", {bearer()}), 400, "not valid JSON");
  expect_json_error(http_->post(path, "[1,2]", {bearer()}), 400, "must be a JSON object");
  expect_json_error(http_->post(path, R"({"by": 7})", {bearer()}), 400, "\"by\" must be a string");
  expect_json_error(http_->post(path, R"({"weight": 0})", {bearer()}), 400, "unknown key \"weight\"");
  expect_json_error(http_->post(path, "{\"by\": \"" + std::string(300, 'a') + "\"}", {bearer()}), 400,
                    "at most 200 characters");
  EXPECT_TRUE(provider_.writes().empty());
}

TEST_F(ServerTest, ReloadAnswersWithTheOutcome) {
  auto r = http_->post("/api/v1/reload", "", {bearer()});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["message"], "config unchanged");
  provider_.reject_reloads();
  expect_json_error(http_->post("/api/v1/reload", "", {bearer()}), 409, "xlb.toml:3:1: bad");
  expect_json_error(http_->post("/api/v1/reload"), 401, "Bearer");
}

TEST_F(ServerTest, WrongMethodsAre405WithAllow) {
  auto r = get("/api/v1/services/web/backends/10.0.0.2:8080/drain");
  expect_json_error(r, 405, "GET is not allowed");
  EXPECT_EQ(r.header("allow"), "POST");
  r = http_->post("/api/v1/services");
  expect_json_error(r, 405, "use GET");
  EXPECT_EQ(r.header("allow"), "GET");
  expect_json_error(http_->request("DELETE", "/api/v1/services/web", "", {}), 405, "DELETE");
  expect_json_error(http_->request("PUT", "/healthz", "", {}), 405, "PUT");
  expect_json_error(http_->request("PATCH", "/index.html", "", {}), 405, "PATCH");
  EXPECT_EQ(get("/api/v1/reload").status, 405);
}

// --- hostile input ---

TEST_F(ServerTest, TraversalAndUnknownPathsAre404) {
  for (const std::string path :
       {"/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/..%2f..%2fetc/passwd",
        "/web/../../etc/passwd", "/index.html/../../../etc/passwd", "//etc/passwd", "/etc/passwd",
        "/%2fetc%2fpasswd", "/./index.html", "/api/v1/../../etc/passwd", "/api/v1/services/..",
        "/api/v1/services/%2e%2e", "/nope", "/api/v1/nope", "/api/v2/services", "/api/v1/services/web/extra",
        "/api/v1/services/", "/index.html%00.png", "/%zz", "/.token", "/api.token", "/../api.token",
        "/CMakeLists.txt", "/web/index.html"}) {
    const auto r = get(path);
    EXPECT_EQ(r.status, 404) << path << " " << r.body;
    EXPECT_EQ(r.body.find("root:"), std::string::npos) << path;
    EXPECT_EQ(r.body.find(token()), std::string::npos) << path;
  }
  // An absolute-form request target: refused one way or another (civetweb closes the connection).
  const auto reply = test::send_raw(
      server_->port(), "GET http://127.0.0.1/../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  EXPECT_FALSE(reply.starts_with("HTTP/1.1 2")) << reply;
  EXPECT_EQ(reply.find("root:"), std::string::npos);
}

TEST_F(ServerTest, OversizedBodiesAre413) {
  const std::string big(100 * 1024, 'x');
  expect_json_error(http_->post("/api/v1/services/web/backends/10.0.0.2:8080/drain", big, {bearer()}), 413,
                    "larger than 65536 bytes");
  // Without a Content-Length (chunked), the limit holds while reading.
  expect_json_error(http_->post("/api/v1/reload", big, {bearer(), "Transfer-Encoding: chunked"}), 413, "larger than");
  expect_json_error(http_->post("/healthz", big), 413, "larger than");
  EXPECT_TRUE(provider_.writes().empty());
  EXPECT_EQ(get("/healthz").status, 200);
}

TEST_F(ServerTest, AVeryLongUrlIsRefusedAndTheServerGoesOn) {
  const auto r = get("/api/v1/services/" + std::string(100 * 1024, 'a'));
  // civetweb may refuse it before the router sees it, or close the connection: never a 2xx.
  EXPECT_TRUE(r.status == 0 || (r.status >= 400 && r.status < 500)) << r.status;
  expect_json_error(get("/api/v1/services/" + std::string(3000, 'a')), 414, "longer than 2048 bytes");
  EXPECT_EQ(get("/healthz").status, 200);
}

TEST_F(ServerTest, WritesAreRateLimitedPerClientEvenWithAWrongToken) {
  ServerConfig config;
  config.write_burst = 3;
  config.writes_per_second = 0.01;
  start(config);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(http_->post("/api/v1/reload", "", {"Authorization: Bearer x"}).status, 401);
  auto r = http_->post("/api/v1/reload", "", {bearer()});
  expect_json_error(r, 429, "too many writes");
  EXPECT_EQ(r.header("retry-after"), "1");
  EXPECT_EQ(get("/api/v1/services").status, 200) << "reading is not limited";
}

TEST_F(ServerTest, GarbageRequestsDoNotHurtTheServer) {
  for (const std::string& bytes :
       {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), std::string("GET\r\n\r\n"),
        std::string("GET / HTTP/9.9\r\n\r\n"), std::string("POST /api/v1/reload HTTP/1.1\r\nContent-Length: -5\r\n\r\n"),
        std::string("POST /api/v1/reload HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"),
        std::string("GET / HTTP/1.1\r\nX: " + std::string(70000, 'h') + "\r\n\r\n"), std::string(5000, '\0'),
        std::string("GET /\x01\x02\xff HTTP/1.1\r\n\r\n")})
    (void)test::send_raw(server_->port(), bytes, 2000);
  EXPECT_EQ(get("/healthz").status, 200);
  EXPECT_EQ(get("/api/v1/services").status, 200);
}

TEST(ServerStartTest, ListenErrorsSayWhatToChange) {
  const auto dir = fs::path(::testing::TempDir()) / ("xlb-api-start-" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  Logger log(LogLevel::error);
  FakeProvider provider;
  for (const std::string listen : {"localhost:9180", "127.0.0.1", "127.0.0.1:99999", "127.0.0.1:80s",
                                   "127.0.0.1:1,127.0.0.1:2", "[::1]:9180x"}) {
    ServerConfig config;
    config.listen = listen;
    auto server = Server::start(config, provider, dir, log);
    ASSERT_FALSE(server.ok()) << listen;
    EXPECT_NE(server.error().message.find(listen), std::string::npos) << server.error().message;
  }

  ServerConfig first;
  first.listen = "127.0.0.1:0";
  auto taken = Server::start(first, provider, dir, log);
  ASSERT_TRUE(taken.ok()) << taken.error().message;
  ServerConfig second;
  second.listen = "127.0.0.1:" + std::to_string((*taken)->port());
  auto again = Server::start(second, provider, dir, log);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("api: cannot listen on " + second.listen), std::string::npos)
      << again.error().message;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace xlb::api
