// The real xlbd with its API on a free loopback port (shadow mode: no root, no kernel): drain a
// backend with the token from the state directory, and find it drained in the API, the ring and
// the store, also after a restart.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "http_client.h"
#include "store/store.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace xlb {
namespace {

namespace fs = std::filesystem;
using test::ChildProcess;
using test::HttpClient;

const std::string kXlbd = std::string(XLB_BUILD_DIR) + "/src/xlbd/xlbd";

class XlbdApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = test::free_port();
  }

  void write_config(int backends) const {
    std::ofstream out(dir_ / "xlb.toml");
    out << "[node]\nmode = \"shadow\"\n[api]\nlisten = \"127.0.0.1:" << port_ << "\"\n"
        << "[[service]]\nname = \"web\"\n[[service.frontend]]\naddress = \"198.18.0.10\"\nport = 80\n";
    for (int i = 0; i < backends; ++i)
      out << "[[service.backend]]\naddress = \"10.0.0." << i + 2 << "\"\nport = 8080\n";
  }

  std::unique_ptr<ChildProcess> start_xlbd() const {
    auto xlbd = std::make_unique<ChildProcess>(std::vector<std::string>{
        kXlbd, "--config", (dir_ / "xlb.toml").string(), "--state-dir", (dir_ / "state").string()});
    const auto line = xlbd->wait_for_line("api: dashboard and REST API at");
    EXPECT_TRUE(line) << xlbd->seen();
    EXPECT_NE(line.value_or("").find("http://127.0.0.1:" + std::to_string(port_) + "/"), std::string::npos);
    return xlbd;
  }

  std::string bearer() const {
    std::ifstream in(dir_ / "state" / "api.token");
    std::string token;
    std::getline(in, token);
    return "Authorization: Bearer " + token;
  }

  std::string state_of(const std::string& backend) const {
    const auto r = HttpClient(port_).get("/api/v1/services/web");
    EXPECT_EQ(r.status, 200) << r.body;
    const auto body = r.json();
    for (const auto& b : body["service"]["backends"])
      if (b["key"] == backend) return b["state"].get<std::string>();
    return "missing";
  }

  test::TempDir dir_{"xlbd-api"};
  uint16_t port_ = 0;
};

TEST_F(XlbdApiTest, DrainThroughTheApiShowsEverywhereAndOutlivesARestart) {
  write_config(3);
  auto xlbd = start_xlbd();
  HttpClient http(port_);
  ASSERT_EQ(state_of("10.0.0.2:8080"), "active");

  const std::string drain = "/api/v1/services/web/backends/10.0.0.2:8080/drain";
  EXPECT_EQ(http.post(drain).status, 401);
  EXPECT_EQ(state_of("10.0.0.2:8080"), "active");

  auto r = http.post(drain, R"({"by": "test", "reason": "kernel upgrade"})", {bearer()});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["revision"], 2);
  EXPECT_EQ(state_of("10.0.0.2:8080"), "draining");
  const auto service = http.get("/api/v1/services/web").json()["service"];
  for (const auto& share : service["rings"][0]["shares"])
    EXPECT_EQ(share["slots"] == 0, share["backend"] == "10.0.0.2:8080") << share;
  EXPECT_EQ(service["rings"][0]["shares"].size(), 3u) << "a drained backend keeps its place";

  r = http.get("/api/v1/events");
  ASSERT_EQ(r.status, 200);
  ASSERT_FALSE(r.json()["events"].empty()) << r.body;
  EXPECT_EQ(r.json()["events"].back()["kind"], "drain");
  EXPECT_EQ(r.json()["events"].back()["message"], "drained by test (127.0.0.1): kernel upgrade");

  xlbd->signal(SIGTERM);
  ASSERT_EQ(xlbd->wait(), 0) << xlbd->seen();
  {
    auto store = store::Store::open(dir_ / "state" / "state.db");
    ASSERT_TRUE(store.ok()) << store.error().message;
    auto events = store->events(10);
    ASSERT_TRUE(events.ok());
    ASSERT_FALSE(events->empty());
    EXPECT_EQ((*events)[0].kind, "drain");
    EXPECT_EQ((*events)[0].subject, "web 10.0.0.2:8080");
    auto latest = store->latest_revision();
    ASSERT_TRUE(latest.ok() && *latest);
    EXPECT_EQ((*latest)->source, "api: drained web 10.0.0.2:8080 by test (127.0.0.1)");
    EXPECT_EQ((*latest)->catalog.services.at(0).backends.at(0).state, model::BackendState::draining);
  }

  xlbd = start_xlbd();
  EXPECT_EQ(state_of("10.0.0.2:8080"), "draining") << "the drain outlives a restart";
  r = http.post("/api/v1/services/web/backends/10.0.0.2:8080/undrain", "", {bearer()});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(state_of("10.0.0.2:8080"), "active");
}

TEST_F(XlbdApiTest, UnknownServicesAndBackendsAre404) {
  write_config(2);
  auto xlbd = start_xlbd();
  HttpClient http(port_);
  auto r = http.post("/api/v1/services/nope/backends/10.0.0.2:8080/drain", "", {bearer()});
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.json()["error"], "no service named \"nope\"");
  r = http.post("/api/v1/services/web/backends/10.9.9.9:80/drain", "", {bearer()});
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.json()["error"], "service \"web\" has no backend 10.9.9.9:80; its backends: 10.0.0.2:8080, 10.0.0.3:8080");
  EXPECT_EQ(http.get("/api/v1/services/nope").status, 404);
  EXPECT_TRUE(xlbd->running());
}

TEST_F(XlbdApiTest, ReloadThroughTheApiAppliesOrKeepsTheRunningConfig) {
  write_config(2);
  auto xlbd = start_xlbd();
  HttpClient http(port_);
  write_config(3);
  auto r = http.post("/api/v1/reload", "", {bearer()});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["message"], "applied revision 2");
  EXPECT_EQ(http.get("/api/v1/services/web").json()["service"]["backends"].size(), 3u);

  std::ofstream(dir_ / "xlb.toml", std::ios::app) << "[[service.backend]]\naddress = \"10.0.0.9\"\n";
  r = http.post("/api/v1/reload", "", {bearer()});
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.json()["error"].get<std::string>().find("revision 2 stays in force"), std::string::npos) << r.body;
  EXPECT_NE(r.json()["error"].get<std::string>().find("missing required key \"port\""), std::string::npos) << r.body;

  r = http.get("/api/v1/revisions");
  ASSERT_EQ(r.json()["revisions"].size(), 2u);
  EXPECT_EQ(r.json()["revisions"][0]["changes"][0]["details"][0], "+backend 10.0.0.4:8080");
  EXPECT_EQ(http.get("/healthz").status, 200);
}

}  // namespace
}  // namespace xlb
