//! The schema, as numbered migrations compiled into the binary.
//!
//! `PRAGMA user_version` holds how many migrations a database has had. Opening
//! applies the missing ones, each in its own transaction together with the version
//! bump, so a crash mid-upgrade leaves the previous version intact. A database with
//! more migrations than this binary knows was written by a newer caas: it is refused
//! rather than guessed at.

use caas_core::{Error, Result};
use rusqlite::Connection;

use super::error::Ctx;

/// `PRAGMA application_id` of caas databases ("caas" in ASCII), so opening some
/// other application's SQLite file fails clearly instead of adding tables to it.
pub(super) const APPLICATION_ID: i32 = 0x6361_6173;

/// Migration `i` takes a database from version `i` to `i + 1`. Append only: never
/// edit a released migration.
pub(super) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7];

/// The schema version this binary writes.
#[cfg(test)]
fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Version 1: every store port and the search index.
const V1: &str = r#"
CREATE TABLE tenants (
    id  TEXT NOT NULL PRIMARY KEY,
    doc TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE users (
    tenant     TEXT NOT NULL,
    id         TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

CREATE TABLE conversations (
    tenant     TEXT NOT NULL,
    id         TEXT NOT NULL,
    direct_key TEXT,
    doc        TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX conversations_direct_key
    ON conversations (tenant, direct_key) WHERE direct_key IS NOT NULL;

CREATE TABLE members (
    tenant       TEXT NOT NULL,
    conversation TEXT NOT NULL,
    user         TEXT NOT NULL,
    doc          TEXT NOT NULL,
    PRIMARY KEY (tenant, conversation, user)
) WITHOUT ROWID;
CREATE INDEX members_by_user ON members (tenant, user, conversation);

-- One row per conversation that has messages or search entries: a small integer key
-- for the big tables, and the head (newest seq) that appends advance.
CREATE TABLE streams (
    id            INTEGER PRIMARY KEY,
    tenant        TEXT NOT NULL,
    conversation  TEXT NOT NULL,
    last_seq      INTEGER NOT NULL DEFAULT 0,
    last_activity INTEGER,
    UNIQUE (tenant, conversation)
);

-- Clustered by (stream, seq): a history page is one contiguous range.
-- The unique indexes lead with the id and the client_msg_id rather than the
-- stream: both are usually time-ordered (generated ids are; ULID/UUIDv7 client ids
-- are), so a batch of inserts lands on the index's last pages instead of dirtying
-- one page per conversation or per sender, which is what each commit must write.
CREATE TABLE messages (
    stream        INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    id            TEXT NOT NULL,
    sender        TEXT NOT NULL,
    client_msg_id TEXT NOT NULL,
    pinned        INTEGER NOT NULL DEFAULT 0,
    doc           TEXT NOT NULL,
    PRIMARY KEY (stream, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX messages_by_id ON messages (id, stream);
CREATE UNIQUE INDEX messages_by_client_msg_id ON messages (client_msg_id, stream, sender);
CREATE INDEX messages_pinned ON messages (stream, seq) WHERE pinned = 1;

CREATE TABLE receipts (
    tenant       TEXT NOT NULL,
    conversation TEXT NOT NULL,
    user         TEXT NOT NULL,
    delivered    INTEGER NOT NULL,
    read         INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant, conversation, user)
) WITHOUT ROWID;

CREATE TABLE events (
    tenant TEXT NOT NULL,
    cursor INTEGER NOT NULL,
    doc    TEXT NOT NULL,
    PRIMARY KEY (tenant, cursor)
) WITHOUT ROWID;
-- Who may read which event: a sync read is one range scan of this index.
CREATE TABLE event_audience (
    tenant TEXT NOT NULL,
    user   TEXT NOT NULL,
    cursor INTEGER NOT NULL,
    PRIMARY KEY (tenant, user, cursor)
) WITHOUT ROWID;

CREATE TABLE devices (
    tenant TEXT NOT NULL,
    user   TEXT NOT NULL,
    device TEXT NOT NULL,
    doc    TEXT NOT NULL,
    PRIMARY KEY (tenant, user, device)
) WITHOUT ROWID;
-- The rowid orders each device's pool: first published, first handed out.
CREATE TABLE one_time_prekeys (
    id         INTEGER PRIMARY KEY,
    tenant     TEXT NOT NULL,
    user       TEXT NOT NULL,
    device     TEXT NOT NULL,
    key_id     INTEGER NOT NULL,
    public_key TEXT NOT NULL,
    UNIQUE (tenant, user, device, key_id)
);

CREATE TABLE audit (
    tenant   TEXT NOT NULL,
    position INTEGER NOT NULL,
    doc      TEXT NOT NULL,
    PRIMARY KEY (tenant, position)
) WITHOUT ROWID;

CREATE TABLE password_logins (
    tenant TEXT NOT NULL,
    user   TEXT NOT NULL,
    doc    TEXT NOT NULL,
    PRIMARY KEY (tenant, user)
) WITHOUT ROWID;

-- Refresh-token sessions by token hash; a family is revoked as a whole.
CREATE TABLE refresh_sessions (
    tenant TEXT NOT NULL,
    hash   TEXT NOT NULL,
    family TEXT NOT NULL,
    doc    TEXT NOT NULL,
    PRIMARY KEY (tenant, hash)
) WITHOUT ROWID;
CREATE INDEX refresh_sessions_by_family ON refresh_sessions (tenant, family);

-- Wrapped data keys of tenants that encrypt message bodies at rest.
CREATE TABLE keyrings (
    tenant TEXT NOT NULL PRIMARY KEY,
    doc    TEXT NOT NULL
) WITHOUT ROWID;

-- Search. The FTS5 tables are contentless (the words are not stored twice), keep
-- no positions (`detail = none`: matching is per word, never per phrase), and hold
-- words already split and lowercased by caas_core::ports::tokenize, separated by
-- spaces; the `ascii` tokenizer then splits on exactly those spaces (it treats every
-- non-ASCII character as part of a word), so matching follows the core's rules
-- rather than SQLite's idea of Unicode. `automerge = 16` merges segments less
-- eagerly than the default 4: it costs the writer about 40% less per message for
-- a few more segments to read per query.
--
-- search_messages maps each message entry's FTS rowid to its conversation, seq
-- and id. Rowids are allocated in insertion order, and a re-index takes a new one:
-- FTS5 flushes its pending data to a new segment whenever a rowid is not larger
-- than the last one written, so growing rowids keep one segment per commit.
-- `digest` is set for entries whose words came from the caller (bodies sealed at
-- rest, or messages another store holds); NULL for this store's own messages,
-- which the writes that store them keep current.
CREATE VIRTUAL TABLE search_messages_fts USING fts5 (
    words, content = '', contentless_delete = 1, detail = none, tokenize = 'ascii'
);
INSERT INTO search_messages_fts (search_messages_fts, rank) VALUES ('automerge', 16);
CREATE TABLE search_messages (
    id         INTEGER PRIMARY KEY,
    stream     INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    digest     INTEGER
);
CREATE UNIQUE INDEX search_messages_by_id ON search_messages (message_id, stream);

-- A conversation's FTS rowid is its stream id.
CREATE VIRTUAL TABLE search_conversations_fts USING fts5 (
    words, content = '', contentless_delete = 1, detail = none, tokenize = 'ascii'
);
INSERT INTO search_conversations_fts (search_conversations_fts, rank) VALUES ('automerge', 16);
CREATE TABLE search_conversations (
    stream INTEGER PRIMARY KEY,
    digest INTEGER NOT NULL
);

CREATE VIRTUAL TABLE search_users_fts USING fts5 (
    words, content = '', contentless_delete = 1, detail = none, tokenize = 'ascii'
);
INSERT INTO search_users_fts (search_users_fts, rank) VALUES ('automerge', 16);
CREATE TABLE search_users (
    id     INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    user   TEXT NOT NULL,
    digest INTEGER NOT NULL,
    UNIQUE (tenant, user)
);
"#;

/// Version 2: event audiences stored once per distinct set of users instead of
/// one `event_audience` row per user per event (a 100-member conversation wrote
/// 100 rows, on ~100 pages, for every message). An event names its set; a user's
/// sets are indexed by user. Events logged before keep their `event_audience`
/// rows, which reads still consult.
const V2: &str = r#"
CREATE TABLE audiences (
    tenant TEXT NOT NULL,
    id     INTEGER NOT NULL,
    digest TEXT NOT NULL,
    users  TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX audiences_by_digest ON audiences (tenant, digest);
CREATE TABLE audience_members (
    tenant   TEXT NOT NULL,
    user     TEXT NOT NULL,
    audience INTEGER NOT NULL,
    PRIMARY KEY (tenant, user, audience)
) WITHOUT ROWID;
ALTER TABLE events ADD COLUMN audience INTEGER;
CREATE INDEX events_by_audience ON events (tenant, audience, cursor);
"#;

/// Version 3: revoked sessions, so a node that restarts keeps refusing the
/// access tokens of sessions logged out before. Rows whose `until` (unix
/// nanoseconds) has passed refuse nothing and are deleted by later revocations.
const V3: &str = r#"
CREATE TABLE revocations (
    tenant TEXT NOT NULL,
    family TEXT NOT NULL,
    until  INTEGER NOT NULL,
    PRIMARY KEY (tenant, family)
) WITHOUT ROWID;
CREATE INDEX revocations_by_until ON revocations (until);
"#;

/// Version 4: upload records (`MediaStore`). The record, shares included, is the
/// JSON document; `pending_until` is the deadline while the upload is pending
/// and NULL once it is complete, so the cleanup scans an index of pending
/// uploads only.
const V4: &str = r#"
CREATE TABLE media (
    tenant        TEXT NOT NULL,
    id            TEXT NOT NULL,
    owner         TEXT NOT NULL,
    pending_until INTEGER,
    doc           TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
CREATE INDEX media_pending ON media (pending_until) WHERE pending_until IS NOT NULL;
CREATE INDEX media_by_owner ON media (tenant, owner, id);
"#;

/// Version 5: usage meters (`UsageStore`). One row per tenant, day (since the
/// Unix epoch) and meter, holding a sum or a peak; and one row per user active
/// in a month (`YYYYMM`), so the month's count is a range of the key.
const V5: &str = r#"
CREATE TABLE usage (
    tenant TEXT NOT NULL,
    day    INTEGER NOT NULL,
    meter  TEXT NOT NULL,
    value  INTEGER NOT NULL,
    PRIMARY KEY (tenant, day, meter)
) WITHOUT ROWID;
CREATE TABLE active_users (
    tenant  TEXT NOT NULL,
    month   INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (tenant, month, user_id)
) WITHOUT ROWID;
"#;

/// Version 6: flags (`FlagStore`), one row per tenant, conversation, message
/// and reporter (the port's "one flag per reporter and message"). The flag,
/// its resolution included, is the JSON document; `created_at` (unix
/// nanoseconds) and `open` are columns for the moderators' listing, which the
/// partial index serves in its order (oldest first, then message and reporter)
/// from the open flags alone.
const V6: &str = r#"
CREATE TABLE flags (
    tenant       TEXT NOT NULL,
    conversation TEXT NOT NULL,
    message      TEXT NOT NULL,
    reporter     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    open         INTEGER NOT NULL,
    doc          TEXT NOT NULL,
    PRIMARY KEY (tenant, conversation, message, reporter)
) WITHOUT ROWID;
CREATE INDEX flags_open
    ON flags (tenant, conversation, created_at, message, reporter) WHERE open = 1;
"#;

/// Version 7: webhooks (`WebhookStore`). One row per tenant and endpoint: the
/// configuration is the JSON document (its `created_at` is a column, so an
/// update keeps the first, and the document's copy is replaced by it on read),
/// the delivery progress a JSON document of its own, rewritten by the lease
/// holder. `disabled` and `retry_at` (unix nanoseconds, NULL when not backing
/// off) are columns for `due`, which the partial index of enabled endpoints
/// serves in its order (tenant, id) without reading the table; `lease_holder`
/// and `lease_until` are the delivery lease, taken and checked by single
/// conditional `UPDATE`s. Dead letters are one row per tenant, endpoint and
/// delivery id, listed oldest cursor first from their own index.
const V7: &str = r#"
CREATE TABLE webhooks (
    tenant       TEXT NOT NULL,
    id           TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    disabled     INTEGER NOT NULL,
    retry_at     INTEGER,
    lease_holder TEXT,
    lease_until  INTEGER,
    doc          TEXT NOT NULL,
    progress     TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
CREATE INDEX webhooks_due ON webhooks (tenant, id, retry_at) WHERE disabled = 0;
CREATE TABLE webhook_dead_letters (
    tenant  TEXT NOT NULL,
    webhook TEXT NOT NULL,
    id      TEXT NOT NULL,
    cursor  INTEGER NOT NULL,
    doc     TEXT NOT NULL,
    PRIMARY KEY (tenant, webhook, id)
) WITHOUT ROWID;
CREATE INDEX webhook_dead_letters_by_cursor
    ON webhook_dead_letters (tenant, webhook, cursor, id);
"#;

/// Checks that the file is a caas database this binary understands and brings its
/// schema up to date. Runs on the writer connection before anything else.
pub(super) fn migrate(conn: &Connection) -> Result<()> {
    migrate_with(conn, MIGRATIONS)
}

pub(super) fn migrate_with(conn: &Connection, migrations: &[&str]) -> Result<()> {
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .ctx("read application_id")?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .ctx("read user_version")?;
    let known = migrations.len() as i64;
    if app != 0 && app != APPLICATION_ID {
        return Err(Error::Unavailable {
            backend: "sqlite",
            context: format!(
                "the file is not a caas database (application_id {app:#x}); refusing to open it"
            ),
            temporary: false,
            source: None,
        });
    }
    if version > known {
        return Err(Error::Unavailable {
            backend: "sqlite",
            context: format!(
                "the database has schema version {version}, newer than the {known} this \
                 binary understands; it was written by a newer caas: upgrade caas, or \
                 restore a backup taken before the upgrade"
            ),
            temporary: false,
            source: None,
        });
    }
    if version < 0 {
        return Err(Error::internal(format!(
            "sqlite: the database has an invalid schema version {version}"
        )));
    }
    if app == 0 && version == 0 {
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .ctx("inspect schema")?;
        if tables != 0 {
            return Err(Error::Unavailable {
                backend: "sqlite",
                context: "the file holds tables of another application; refusing to open it".into(),
                temporary: false,
                source: None,
            });
        }
    }
    for (i, sql) in migrations.iter().enumerate().skip(version as usize) {
        let to = i as i64 + 1;
        let script = format!(
            "BEGIN IMMEDIATE;\n{sql}\nPRAGMA application_id = {APPLICATION_ID};\nPRAGMA user_version = {to};\nCOMMIT;"
        );
        if let Err(e) = conn.execute_batch(&script) {
            // Leave the connection usable and the file at the previous version.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return Err(super::error::map(
                &format!("apply schema migration {to}"),
                e,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_newer_schemas_are_refused() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, current_version());
        // Idempotent.
        migrate(&conn).unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {}", current_version() + 1))
            .unwrap();
        let err = migrate(&conn).unwrap_err().to_string();
        assert!(err.contains("newer"), "{err}");
    }

    #[test]
    fn a_later_migration_upgrades_in_place() {
        let conn = Connection::open_in_memory().unwrap();
        migrate_with(&conn, &MIGRATIONS[..1]).unwrap();
        conn.execute("INSERT INTO tenants (id, doc) VALUES ('t', '{}')", [])
            .unwrap();
        let v2 = [MIGRATIONS[0], "ALTER TABLE tenants ADD COLUMN note TEXT;"];
        migrate_with(&conn, &v2).unwrap();
        let (n, note): (i64, Option<String>) = conn
            .query_row("SELECT count(*), max(note) FROM tenants", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((n, note), (1, None));
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 2);
    }

    #[test]
    fn a_failing_migration_leaves_the_previous_version() {
        let conn = Connection::open_in_memory().unwrap();
        migrate_with(&conn, &MIGRATIONS[..1]).unwrap();
        let broken = [MIGRATIONS[0], "CREATE TABLE x (a); SELECT * FROM missing;"];
        assert!(migrate_with(&conn, &broken).is_err());
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 1);
        let x: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'x'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(x, 0, "the failed migration's table was rolled back");
    }

    #[test]
    fn foreign_databases_are_refused() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE theirs (a)").unwrap();
        assert!(migrate(&conn).is_err());
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA application_id = 42").unwrap();
        assert!(migrate(&conn).is_err());
    }
}
