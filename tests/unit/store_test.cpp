#include "store/store.h"
#include "support/temp_dir.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace xlb::store {
namespace {

namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:

  fs::path db() const { return dir_ / "state.db"; }

  static std::string read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  // Writes with the sqlite3 library directly, as another program (or a newer xlb) would.
  void raw_exec(const std::string& sql) const {
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(db().c_str(), &h), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(h, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(h);
    sqlite3_close(h);
  }

  static model::Catalog catalog(const std::string& name) {
    model::Service s;
    s.name = name;
    s.frontends.push_back({*model::IpAddress::parse("198.18.0.10"), 80, model::Protocol::tcp, model::FrontendKind::vip});
    s.backends.push_back({*model::IpAddress::parse("10.0.0.2"), 8080, 1, model::BackendState::active, "", ""});
    return model::Catalog{{s}};
  }

  test::TempDir dir_{"xlb-store"};
};

TEST_F(StoreTest, NewDatabaseIsMigratedToTheCurrentSchemaInWalMode) {
  auto s = Store::open(db());
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->schema_version(), Store::kSchemaVersion);
  EXPECT_TRUE(fs::exists(dir_ / "state.db-wal"));
}

TEST_F(StoreTest, ReopeningKeepsDataAndVersion) {
  {
    auto s = Store::open(db());
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE(s->record_revision("toml:a", "+web", catalog("web")).ok());
  }
  auto s = Store::open(db());
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->schema_version(), Store::kSchemaVersion);
  auto list = s->revisions(10);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  auto latest = s->latest_revision();
  ASSERT_TRUE(latest.ok() && *latest) << (latest.ok() ? "none" : latest.error().message);
  EXPECT_EQ((*latest)->catalog, catalog("web"));
}

TEST_F(StoreTest, MigratesAnEmptyVersionZeroFileThatHasOtherTables) {
  raw_exec("CREATE TABLE operator_notes (x TEXT); INSERT INTO operator_notes VALUES ('keep me');");
  auto s = Store::open(db());
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->schema_version(), Store::kSchemaVersion);
}

TEST_F(StoreTest, RefusesANewerSchemaAndLeavesTheFileUntouched) {
  raw_exec("CREATE TABLE future (x); PRAGMA user_version = 99;");
  const std::string before = read_all(db());
  auto s = Store::open(db());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message,
            db().string() + ": the state database has schema version 99, newer than this xlb knows (" +
                std::to_string(Store::kSchemaVersion) +
                "); it was left untouched. Run the newer xlb, or move the file away to start fresh.");
  EXPECT_EQ(read_all(db()), before);
  EXPECT_FALSE(fs::exists(dir_ / "state.db-wal"));
}

TEST_F(StoreTest, RefusesAFileThatIsNotADatabase) {
  std::ofstream(db()) << std::string(4096, 'x');
  const std::string before = read_all(db());
  auto s = Store::open(db());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, db().string() +
                                   ": cannot read the schema version: file is not a database (is it an SQLite "
                                   "database? xlb left it untouched; move it away to start fresh)");
  EXPECT_EQ(read_all(db()), before);
}

TEST_F(StoreTest, UnwritableDirectoryIsAClearError) {
  auto s = Store::open(dir_ / "missing-dir" / "state.db");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message,
            (dir_ / "missing-dir" / "state.db").string() + ": cannot open the state database: unable to open database file");
}

TEST_F(StoreTest, RevisionHistoryNewestFirst) {
  auto s = Store::open(db());
  ASSERT_TRUE(s.ok());
  auto r1 = s->record_revision("toml:/etc/xlb/xlb.toml", "+web", catalog("web"));
  auto r2 = s->record_revision("toml:/etc/xlb/xlb.toml", "-web; +api", catalog("api"));
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_LT(*r1, *r2);
  auto list = s->revisions(10);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, *r2);
  EXPECT_EQ((*list)[0].summary, "-web; +api");
  EXPECT_EQ((*list)[0].source, "toml:/etc/xlb/xlb.toml");
  EXPECT_EQ((*list)[1].summary, "+web");
  EXPECT_EQ((*list)[0].created_at.size(), std::string("2026-11-26T07:27:32.209Z").size());
  auto latest = s->latest_revision();
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->id, *r2);
  EXPECT_EQ(s->revisions(1)->size(), 1u);
}

TEST_F(StoreTest, LatestRevisionOfAnEmptyStoreIsNone) {
  auto s = Store::open(db());
  ASSERT_TRUE(s.ok());
  auto latest = s->latest_revision();
  ASSERT_TRUE(latest.ok());
  EXPECT_FALSE(latest->has_value());
}

TEST_F(StoreTest, ACorruptedSnapshotIsReportedNotCrashedOn) {
  {
    auto s = Store::open(db());
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE(s->record_revision("toml:a", "+web", catalog("web")).ok());
  }
  raw_exec("UPDATE revisions SET catalog = '{not json'");
  auto s = Store::open(db());
  ASSERT_TRUE(s.ok());
  auto latest = s->latest_revision();
  ASSERT_FALSE(latest.ok());
  EXPECT_EQ(latest.error().message, "revision 1: the stored catalog is not valid JSON (damaged database?)");
}

TEST_F(StoreTest, EventsAndSettings) {
  auto s = Store::open(db());
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->record_event("config", "/etc/xlb/xlb.toml", "reload rejected").ok());
  ASSERT_TRUE(s->record_event("health", "web/10.0.0.2:8080", "down: connect refused").ok());
  auto events = s->events(10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].kind, "health");
  EXPECT_EQ((*events)[1].message, "reload rejected");

  EXPECT_FALSE(s->setting("token")->has_value());
  ASSERT_TRUE(s->set_setting("token", "a").ok());
  ASSERT_TRUE(s->set_setting("token", "b").ok());
  EXPECT_EQ(s->setting("token")->value(), "b");
}

model::Service service(const std::string& name, const std::string& backend) {
  model::Service s;
  s.name = name;
  s.backends.push_back({*model::IpAddress::parse(backend), 8080, 1, model::BackendState::active, "", ""});
  return s;
}

TEST_F(StoreTest, ARestartReplaysTheChangesSinceTheLastSnapshot) {
  auto s = Store::open(db());
  ASSERT_TRUE(s.ok()) << s.error().message;
  const model::Catalog first{{service("api", "10.0.0.1"), service("web", "10.0.0.2")}};
  ASSERT_TRUE(s->record_revision("toml:a", "+api; +web", first).ok());
  const model::CatalogChanges add{{service("db", "10.0.0.3")}, {}};
  const model::CatalogChanges change{{service("api", "10.0.0.9")}, {"web"}};
  const std::vector<model::ServiceChange> listed{{model::ServiceChange::Kind::changed, "api", {"+backend 10.0.0.9:8080"}},
                                                 {model::ServiceChange::Kind::removed, "web", {}}};
  ASSERT_TRUE(s->record({"kubernetes", "+db", {{model::ServiceChange::Kind::added, "db", {}}}, &add, nullptr}).ok());
  ASSERT_TRUE(s->record({"kubernetes", "~api; -web", listed, &change, nullptr}).ok());

  auto reopened = Store::open(db());
  ASSERT_TRUE(reopened.ok());
  auto latest = reopened->latest_revision();
  ASSERT_TRUE(latest.ok() && *latest) << (latest.ok() ? "none" : latest.error().message);
  EXPECT_EQ((*latest)->id, 3);
  EXPECT_EQ((*latest)->summary, "~api; -web");
  // A changed service keeps its place, a new one comes last, a removed one goes.
  EXPECT_EQ((*latest)->catalog, (model::Catalog{{service("api", "10.0.0.9"), service("db", "10.0.0.3")}}));

  auto history = reopened->revisions(10);
  ASSERT_TRUE(history.ok()) << history.error().message;
  ASSERT_EQ(history->size(), 3u);
  ASSERT_TRUE(history->front().changes);
  EXPECT_EQ(*history->front().changes, listed);
  EXPECT_FALSE(history->front().has_catalog);
  EXPECT_TRUE(history->back().has_catalog);
}

TEST_F(StoreTest, ASnapshotLetsTheRevisionsBeforeItKeepOnlyTheirHistory) {
  auto s = Store::open(db());
  ASSERT_TRUE(s.ok()) << s.error().message;
  ASSERT_TRUE(s->record_revision("toml:a", "+web", catalog("web")).ok());
  const model::CatalogChanges add{{service("db", "10.0.0.3")}, {}};
  const std::vector<model::ServiceChange> added{{model::ServiceChange::Kind::added, "db", {}}};
  ASSERT_TRUE(s->record({"kubernetes", "+db", added, &add, nullptr}).ok());
  ASSERT_TRUE(s->record_revision("toml:a", "-db", catalog("web")).ok());
  auto history = s->revisions(10);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 3u);
  EXPECT_TRUE((*history)[0].has_catalog);
  EXPECT_FALSE((*history)[1].has_catalog);
  EXPECT_FALSE((*history)[2].has_catalog);
  EXPECT_EQ((*history)[1].summary, "+db");  // the history stays
  EXPECT_EQ(*(*history)[1].changes, added);
  auto latest = s->latest_revision();
  ASSERT_TRUE(latest.ok() && *latest);
  EXPECT_EQ((*latest)->catalog, catalog("web"));
}

TEST_F(StoreTest, ARevisionIsEitherAChangeOrASnapshot) {
  auto s = Store::open(db());
  ASSERT_TRUE(s.ok());
  auto r = s->record({"toml:a", "nothing", {}, nullptr, nullptr});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "recording a revision: it needs either its change or the whole catalog");
}

TEST_F(StoreTest, ADamagedChangeIsNamedAtRestart) {
  {
    auto s = Store::open(db());
    ASSERT_TRUE(s->record_revision("toml:a", "+web", catalog("web")).ok());
    const model::CatalogChanges add{{service("db", "10.0.0.3")}, {}};
    ASSERT_TRUE(s->record({"kubernetes", "+db", {}, &add, nullptr}).ok());
  }
  raw_exec("UPDATE revisions SET delta = '{\"upserted\": 3}' WHERE id = 2");
  auto s = Store::open(db());
  auto latest = s->latest_revision();
  ASSERT_FALSE(latest.ok());
  EXPECT_EQ(latest.error().message.rfind("revision 2: malformed catalog change: ", 0), 0u) << latest.error().message;
}

TEST_F(StoreTest, SchemaOneDatabaseIsMigratedWithItsRevisions) {
  raw_exec(R"sql(
    CREATE TABLE revisions (id INTEGER PRIMARY KEY AUTOINCREMENT,
      created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
      source TEXT NOT NULL, summary TEXT NOT NULL, catalog TEXT NOT NULL);
    CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT,
      created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
      kind TEXT NOT NULL, subject TEXT NOT NULL, message TEXT NOT NULL);
    CREATE INDEX events_by_kind ON events(kind, id);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO revisions (source, summary, catalog) VALUES ('toml:/etc/xlb/xlb.toml', '+web', '{"services": []}');
    PRAGMA user_version = 1;)sql");
  auto s = Store::open(db());
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->schema_version(), Store::kSchemaVersion);
  auto latest = s->latest_revision();
  ASSERT_TRUE(latest.ok() && *latest);
  EXPECT_EQ((*latest)->summary, "+web");
  EXPECT_TRUE((*latest)->has_catalog);
  EXPECT_EQ(s->record_revision("toml:x", "next", catalog("web")).value(), 2);
}

}  // namespace
}  // namespace xlb::store
