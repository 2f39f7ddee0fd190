// The state database (/var/lib/xlb/state.db): every applied revision, events, settings.
// It is history and restart memory, never on the per-packet path. A database written by a
// newer xlb is refused and left untouched.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "model/diff.h"
#include "model/model.h"

namespace xlb::store {

struct Revision {
  int64_t id = 0;
  std::string created_at;  // UTC, ISO 8601 with milliseconds
  std::string source;      // "toml:/etc/xlb/xlb.toml", "kubernetes", ...
  std::string summary;     // what changed, one line
  // What changed, service by service (the first kChangesKept); absent in revisions recorded
  // before schema 3, which have their catalogs instead while has_catalog.
  std::optional<std::vector<model::ServiceChange>> changes;
  model::Catalog catalog;  // the whole catalog as applied, while has_catalog
  bool has_catalog = false;
};

// What a revision records. A revision is either a snapshot (the whole catalog) or the change
// from the one before it; a restart replays the changes since the last snapshot.
struct RevisionRecord {
  std::string_view source;
  std::string_view summary;
  std::vector<model::ServiceChange> changes;       // for the history
  const model::CatalogChanges* delta = nullptr;    // the change itself, or
  const model::Catalog* snapshot = nullptr;        // the whole catalog after it
};

struct Event {
  int64_t id = 0;
  std::string created_at;
  std::string kind;     // "config", "health", "drain", ...
  std::string subject;  // what it is about: a file, a service, a backend
  std::string message;
};

class Store {
 public:
  // The newest schema this build knows; migrations bring older databases up to it.
  static constexpr int kSchemaVersion = 3;
  // The oldest revisions go, so the database stays small under endpoint churn; the newest
  // snapshot and the changes after it always stay (they are the restart memory). A revision's
  // list of changes keeps its first kChangesKept services (its summary counts them all).
  static constexpr size_t kRevisionsKept = 10000;
  static constexpr size_t kChangesKept = 200;

  // Opens (creating if needed) and migrates. Fails without writing anything if the file is
  // not an SQLite database or was written by a newer schema.
  static Result<Store> open(const std::filesystem::path& path);

  int schema_version() const;

  // A write transaction: what is recorded while it is open lands all at once on commit(), or not
  // at all (rolled back when it ends uncommitted). Taken before the datapath is written, so that
  // a database that cannot take a revision (locked, full, read-only) changes nothing.
  class Transaction {
   public:
    Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
    Transaction& operator=(Transaction&&) = delete;
    ~Transaction();
    Status commit();

   private:
    friend class Store;
    explicit Transaction(sqlite3* db) : db_(db) {}
    sqlite3* db_;  // null once committed or rolled back
  };
  Result<Transaction> begin();

  Result<int64_t> record(const RevisionRecord& revision);
  // A snapshot revision.
  Result<int64_t> record_revision(std::string_view source, std::string_view summary,
                                  const model::Catalog& catalog);
  // The newest revision with the whole catalog in force after it (its snapshot and the changes
  // since replayed).
  Result<std::optional<Revision>> latest_revision();
  // Newest first, without catalogs (but for revisions from before schema 3 that kept theirs).
  Result<std::vector<Revision>> revisions(size_t limit);

  Result<int64_t> record_event(std::string_view kind, std::string_view subject, std::string_view message);
  // Newest first.
  Result<std::vector<Event>> events(size_t limit);

  Result<std::optional<std::string>> setting(std::string_view key);
  Status set_setting(std::string_view key, std::string_view value);

 private:
  struct Closer {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  using Handle = std::unique_ptr<sqlite3, Closer>;

  Status prune_revisions(int64_t newest, bool snapshot);

  Store(Handle db, std::filesystem::path path) : db_(std::move(db)), path_(std::move(path)) {}

  Handle db_;
  std::filesystem::path path_;
};

}  // namespace xlb::store
