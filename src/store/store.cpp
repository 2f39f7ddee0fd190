#include "store/store.h"

#include <algorithm>
#include <array>
#include <set>
#include <unordered_map>

#include "model/json.h"

namespace xlb::store {

namespace {

// Migration N takes a database from schema version N to N+1. Never edit a released one:
// add a new step instead.
constexpr std::array<std::string_view, Store::kSchemaVersion> kMigrations{
    R"sql(
    CREATE TABLE revisions (
      id          INTEGER PRIMARY KEY AUTOINCREMENT,
      created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
      source      TEXT NOT NULL,
      summary     TEXT NOT NULL,
      catalog     TEXT NOT NULL
    );
    CREATE TABLE events (
      id          INTEGER PRIMARY KEY AUTOINCREMENT,
      created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
      kind        TEXT NOT NULL,
      subject     TEXT NOT NULL,
      message     TEXT NOT NULL
    );
    CREATE INDEX events_by_kind ON events(kind, id);
    CREATE TABLE settings (
      key         TEXT PRIMARY KEY,
      value       TEXT NOT NULL
    );
    )sql",
    // 2: a revision may keep only its summary. With Kubernetes, revisions come at every endpoint
    // change, and a whole catalog each (megabytes for thousands of services) would fill the disk.
    R"sql(
    CREATE TABLE revisions_v2 (
      id          INTEGER PRIMARY KEY AUTOINCREMENT,
      created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
      source      TEXT NOT NULL,
      summary     TEXT NOT NULL,
      catalog     TEXT
    );
    INSERT INTO revisions_v2 (id, created_at, source, summary, catalog)
      SELECT id, created_at, source, summary, catalog FROM revisions;
    DROP TABLE revisions;
    ALTER TABLE revisions_v2 RENAME TO revisions;
    )sql",
    // 3: a revision records its change (delta) instead of the whole catalog, and a snapshot now
    // and then; a restart replays the changes since the last snapshot. At ten thousand services a
    // whole catalog per endpoint change took longer to write than the change took to apply.
    // `changes` is the history's list of changed services. Revisions from before keep their
    // catalog (or not) as they were.
    R"sql(
    ALTER TABLE revisions ADD COLUMN delta TEXT;
    ALTER TABLE revisions ADD COLUMN changes TEXT;
    CREATE INDEX revisions_snapshots ON revisions(id) WHERE catalog IS NOT NULL;
    )sql",
};

class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql) : db_(db) {
    sqlite3_stmt* raw = nullptr;
    rc_ = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
    stmt_.reset(raw);
  }

  bool prepared() const { return rc_ == SQLITE_OK; }
  Statement& bind(int index, std::string_view text) {
    sqlite3_bind_text(stmt_.get(), index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int index, int64_t value) {
    sqlite3_bind_int64(stmt_.get(), index, value);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return sqlite3_step(stmt_.get()); }

  int64_t integer(int column) const { return sqlite3_column_int64(stmt_.get(), column); }
  bool is_null(int column) const { return sqlite3_column_type(stmt_.get(), column) == SQLITE_NULL; }
  std::string text(int column) const {
    const auto* p = sqlite3_column_text(stmt_.get(), column);
    return p ? reinterpret_cast<const char*>(p) : "";
  }

  Error error(std::string_view doing) const {
    return Error{std::string(doing) + ": " + sqlite3_errmsg(db_)};
  }

 private:
  struct Finalizer {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
  };
  sqlite3* db_;
  std::unique_ptr<sqlite3_stmt, Finalizer> stmt_;
  int rc_ = SQLITE_OK;
};

Status exec(sqlite3* db, std::string_view sql, std::string_view doing) {
  char* message = nullptr;
  if (sqlite3_exec(db, std::string(sql).c_str(), nullptr, nullptr, &message) == SQLITE_OK) return {};
  Error e{std::string(doing) + ": " + (message ? message : sqlite3_errmsg(db))};
  sqlite3_free(message);
  return e;
}

Result<int> read_schema_version(sqlite3* db, const std::filesystem::path& path) {
  Statement s(db, "PRAGMA user_version");
  if (!s.prepared() || s.step() != SQLITE_ROW)
    return Error{path.string() + ": cannot read the schema version: " + sqlite3_errmsg(db) +
                 " (is it an SQLite database? xlb left it untouched; move it away to start fresh)"};
  return static_cast<int>(s.integer(0));
}

Status migrate(sqlite3* db, int from) {
  for (int version = from; version < Store::kSchemaVersion; ++version) {
    const std::string step = "migrating the state database to schema version " + std::to_string(version + 1);
    // One transaction per step: a crash leaves the database at a whole version, never between.
    if (auto s = exec(db, "BEGIN IMMEDIATE", step); !s) return s;
    auto s = exec(db, kMigrations[static_cast<size_t>(version)], step);
    if (s) s = exec(db, "PRAGMA user_version = " + std::to_string(version + 1), step);
    if (s) s = exec(db, "COMMIT", step);
    if (!s) {
      (void)exec(db, "ROLLBACK", step);
      return s;
    }
  }
  return {};
}

}  // namespace

Result<Store> Store::open(const std::filesystem::path& path) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  Handle db(raw);
  if (rc != SQLITE_OK)
    return Error{path.string() + ": cannot open the state database: " +
                 (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc))};
  sqlite3_busy_timeout(db.get(), 5000);
  sqlite3_extended_result_codes(db.get(), 1);

  // Look before writing anything: the journal mode pragma below already rewrites the header.
  auto version = read_schema_version(db.get(), path);
  if (!version) return version.error();
  if (*version > kSchemaVersion)
    return Error{path.string() + ": the state database has schema version " + std::to_string(*version) +
                 ", newer than this xlb knows (" + std::to_string(kSchemaVersion) +
                 "); it was left untouched. Run the newer xlb, or move the file away to start fresh."};

  // WAL: readers (the API, xlbctl) never block the daemon's writes. FULL: an accepted revision
  // survives a power cut, not only a crash; revisions are rare, so the fsync is cheap.
  for (auto pragma : {"PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON"})
    if (auto s = exec(db.get(), pragma, path.string() + ": setting up the state database"); !s)
      return s.error();
  if (auto s = migrate(db.get(), *version); !s) return Error{path.string() + ": " + s.error().message};
  return Store(std::move(db), path);
}

int Store::schema_version() const {
  auto v = read_schema_version(db_.get(), path_);
  return v ? *v : -1;
}

Store::Transaction::~Transaction() {
  if (db_) (void)exec(db_, "ROLLBACK", "rolling back");
}

Status Store::Transaction::commit() {
  auto s = exec(db_, "COMMIT", "committing to the state database");
  if (!s) return s;  // still open: the destructor rolls it back
  db_ = nullptr;
  return {};
}

Result<Store::Transaction> Store::begin() {
  if (auto s = exec(db_.get(), "BEGIN IMMEDIATE", path_.string() + ": starting a write"); !s) return s.error();
  return Transaction(db_.get());
}

Result<int64_t> Store::record(const RevisionRecord& r) {
  if ((r.delta == nullptr) == (r.snapshot == nullptr))
    return Error{"recording a revision: it needs either its change or the whole catalog"};
  std::vector<model::ServiceChange> kept(r.changes.begin(),
                                         r.changes.begin() + static_cast<std::ptrdiff_t>(
                                                                 std::min(r.changes.size(), kChangesKept)));
  Statement s(db_.get(), "INSERT INTO revisions (source, summary, catalog, delta, changes) VALUES (?, ?, ?, ?, ?)");
  if (!s.prepared()) return s.error("recording a revision");
  s.bind(1, r.source).bind(2, r.summary).bind(5, model::to_json(kept).dump());
  if (r.snapshot) s.bind(3, model::to_json(*r.snapshot).dump());
  if (r.delta) s.bind(4, model::to_json(*r.delta).dump());
  if (s.step() != SQLITE_DONE) return s.error("recording a revision");
  const int64_t id = sqlite3_last_insert_rowid(db_.get());
  if (auto pruned = prune_revisions(id, r.snapshot != nullptr); !pruned) return pruned.error();
  return id;
}

Result<int64_t> Store::record_revision(std::string_view source, std::string_view summary,
                                       const model::Catalog& catalog) {
  return record({source, summary, {}, nullptr, &catalog});
}

// The newest snapshot and the changes after it are the restart memory: nothing older is needed
// to restart, and a snapshot's predecessors lose their catalogs and changes (their summary and
// list of changes stay for the history until they are the oldest).
Status Store::prune_revisions(int64_t newest, bool snapshot) {
  if (snapshot) {
    Statement forget(db_.get(),
                     "UPDATE revisions SET catalog = NULL, delta = NULL WHERE id < ? AND "
                     "(catalog IS NOT NULL OR delta IS NOT NULL)");
    if (!forget.prepared()) return forget.error("pruning revisions");
    forget.bind(1, newest);
    if (forget.step() != SQLITE_DONE) return forget.error("pruning revisions");
  }
  // The snapshots' partial index makes the newest one a lookup, not a scan of the history.
  Statement remove(db_.get(),
                   "DELETE FROM revisions WHERE id <= ? AND id < "
                   "(SELECT COALESCE(MAX(id), 0) FROM revisions WHERE catalog IS NOT NULL)");
  if (!remove.prepared()) return remove.error("pruning revisions");
  remove.bind(1, newest - static_cast<int64_t>(kRevisionsKept));
  if (remove.step() != SQLITE_DONE) return remove.error("pruning revisions");
  return {};
}

namespace {

Result<nlohmann::json> parse_column(const std::string& text, int64_t id, std::string_view what) {
  auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded())
    return Error{"revision " + std::to_string(id) + ": the stored " + std::string(what) +
                 " is not valid JSON (damaged database?)"};
  return json;
}

Result<model::Catalog> parse_catalog(const std::string& text, int64_t id) {
  auto json = parse_column(text, id, "catalog");
  if (!json) return json.error();
  auto catalog = model::catalog_from_json(*json);
  if (!catalog) return Error{"revision " + std::to_string(id) + ": " + catalog.error().message};
  return catalog;
}

// Changes are replayed in order; a service keeps its place, a new one comes last.
void replay(model::Catalog& catalog, model::CatalogChanges delta) {
  std::unordered_map<std::string, size_t> at;
  for (size_t i = 0; i < catalog.services.size(); ++i) at.emplace(catalog.services[i].name, i);
  for (auto& service : delta.upserted) {
    if (auto it = at.find(service.name); it != at.end()) {
      catalog.services[it->second] = std::move(service);
    } else {
      at.emplace(service.name, catalog.services.size());
      catalog.services.push_back(std::move(service));
    }
  }
  if (delta.removed.empty()) return;
  const std::set<std::string> removed(delta.removed.begin(), delta.removed.end());
  std::erase_if(catalog.services, [&](const model::Service& s) { return removed.count(s.name) > 0; });
}

}  // namespace

Result<std::vector<Revision>> Store::revisions(size_t limit) {
  Statement s(db_.get(),
              "SELECT id, created_at, source, summary, changes, CASE WHEN changes IS NULL THEN catalog END, "
              "catalog IS NOT NULL FROM revisions ORDER BY id DESC LIMIT ?");
  if (!s.prepared()) return s.error("reading revisions");
  s.bind(1, static_cast<int64_t>(limit));
  std::vector<Revision> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    Revision r{s.integer(0), s.text(1), s.text(2), s.text(3), std::nullopt, {}, s.integer(6) != 0};
    if (!s.is_null(4)) {
      auto json = parse_column(s.text(4), r.id, "list of changes");
      if (!json) return json.error();
      auto changes = model::service_changes_from_json(*json);
      if (!changes) return Error{"revision " + std::to_string(r.id) + ": " + changes.error().message};
      r.changes = std::move(*changes);
    } else if (!s.is_null(5)) {  // from before schema 3: the history diffs catalogs
      auto catalog = parse_catalog(s.text(5), r.id);
      if (!catalog) return catalog.error();
      r.catalog = std::move(*catalog);
    } else {
      r.has_catalog = false;
    }
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return s.error("reading revisions");
  return out;
}

Result<std::optional<Revision>> Store::latest_revision() {
  Statement s(db_.get(),
              "SELECT id, created_at, source, summary, catalog, delta FROM revisions WHERE id >= "
              "(SELECT COALESCE(MAX(id), 0) FROM revisions WHERE catalog IS NOT NULL) ORDER BY id ASC");
  if (!s.prepared()) return s.error("reading the latest revision");
  std::optional<Revision> latest;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    const int64_t id = s.integer(0);
    if (!latest) {
      if (s.is_null(4))
        return Error{"revision " + std::to_string(id) +
                     ": neither its catalog nor an earlier snapshot is stored (damaged database?)"};
      auto catalog = parse_catalog(s.text(4), id);
      if (!catalog) return catalog.error();
      latest = Revision{id, {}, {}, {}, std::nullopt, std::move(*catalog), true};
    } else if (!s.is_null(4)) {
      auto catalog = parse_catalog(s.text(4), id);
      if (!catalog) return catalog.error();
      latest->catalog = std::move(*catalog);
    } else if (!s.is_null(5)) {
      auto json = parse_column(s.text(5), id, "change");
      if (!json) return json.error();
      auto delta = model::changes_from_json(*json);
      if (!delta) return Error{"revision " + std::to_string(id) + ": " + delta.error().message};
      replay(latest->catalog, std::move(*delta));
    } else {
      return Error{"revision " + std::to_string(id) + ": neither its change nor its catalog is stored (damaged database?)"};
    }
    latest->id = id;
    latest->created_at = s.text(1);
    latest->source = s.text(2);
    latest->summary = s.text(3);
  }
  if (rc != SQLITE_DONE) return s.error("reading the latest revision");
  return latest;
}

Result<int64_t> Store::record_event(std::string_view kind, std::string_view subject, std::string_view message) {
  Statement s(db_.get(), "INSERT INTO events (kind, subject, message) VALUES (?, ?, ?)");
  if (!s.prepared()) return s.error("recording an event");
  s.bind(1, kind).bind(2, subject).bind(3, message);
  if (s.step() != SQLITE_DONE) return s.error("recording an event");
  return sqlite3_last_insert_rowid(db_.get());
}

Result<std::vector<Event>> Store::events(size_t limit) {
  Statement s(db_.get(), "SELECT id, created_at, kind, subject, message FROM events ORDER BY id DESC LIMIT ?");
  if (!s.prepared()) return s.error("reading events");
  s.bind(1, static_cast<int64_t>(limit));
  std::vector<Event> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back({s.integer(0), s.text(1), s.text(2), s.text(3), s.text(4)});
  if (rc != SQLITE_DONE) return s.error("reading events");
  return out;
}

Result<std::optional<std::string>> Store::setting(std::string_view key) {
  Statement s(db_.get(), "SELECT value FROM settings WHERE key = ?");
  if (!s.prepared()) return s.error("reading a setting");
  s.bind(1, key);
  const int rc = s.step();
  if (rc == SQLITE_ROW) return std::optional<std::string>{s.text(0)};
  if (rc == SQLITE_DONE) return std::optional<std::string>{};
  return s.error("reading setting " + std::string(key));
}

Status Store::set_setting(std::string_view key, std::string_view value) {
  Statement s(db_.get(),
              "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  if (!s.prepared()) return s.error("writing a setting");
  s.bind(1, key).bind(2, value);
  if (s.step() != SQLITE_DONE) return s.error("writing setting " + std::string(key));
  return {};
}

}  // namespace xlb::store
