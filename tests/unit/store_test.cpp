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
  EXPECT_EQ(list->front().catalog, catalog("web"));
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
  EXPECT_EQ((*list)[0].catalog, catalog("api"));
  EXPECT_EQ((*list)[1].catalog, catalog("web"));
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

TEST_F(StoreTest, OldRevisionsKeepTheirSummaryOnlyAndTheOldestGo) {
  auto s = Store::open(db());
  ASSERT_TRUE(s.ok()) << s.error().message;
  const size_t total = Store::kCatalogsKept + 5;
  for (size_t i = 1; i <= total; ++i)
    ASSERT_TRUE(s->record_revision("kubernetes", "change " + std::to_string(i), catalog("svc" + std::to_string(i))).ok());
  auto all = s->revisions(total);
  ASSERT_TRUE(all.ok()) << all.error().message;
  ASSERT_EQ(all->size(), total);
  EXPECT_TRUE(all->front().has_catalog);
  EXPECT_EQ(all->front().catalog.services.at(0).name, "svc" + std::to_string(total));
  EXPECT_TRUE((*all)[Store::kCatalogsKept - 1].has_catalog);
  EXPECT_FALSE((*all)[Store::kCatalogsKept].has_catalog);
  EXPECT_EQ(all->back().summary, "change 1");  // the summary stays
  EXPECT_TRUE(all->back().catalog.services.empty());
  auto latest = s->latest_revision();
  ASSERT_TRUE(latest.ok() && *latest);
  EXPECT_EQ((*latest)->catalog.services.at(0).name, "svc" + std::to_string(total));
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
  EXPECT_EQ(s->schema_version(), 2);
  auto latest = s->latest_revision();
  ASSERT_TRUE(latest.ok() && *latest);
  EXPECT_EQ((*latest)->summary, "+web");
  EXPECT_TRUE((*latest)->has_catalog);
  EXPECT_EQ(s->record_revision("toml:x", "next", catalog("web")).value(), 2);
}

}  // namespace
}  // namespace xlb::store
