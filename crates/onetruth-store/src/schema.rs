//! Numbered migrations. The schema version lives in `PRAGMA user_version`; a database written
//! by a newer build is refused rather than guessed at.

use rusqlite::Connection;

use crate::StoreError;

/// Migration `i` brings the schema from version `i` to `i + 1`. Append only: never edit one
/// that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: the vertical slice. Tables are shaped for what comes next: evidence carries a kind,
    // weight and per-field details for probabilistic links, curator overrides and split
    // history get their own rows, and customers keep alias pointers forever.
    r#"
    CREATE TABLE customers (
        id          INTEGER PRIMARY KEY,               -- stable, never reused (rows are never deleted)
        created_at  INTEGER NOT NULL,                  -- unix micros
        version     INTEGER NOT NULL,                  -- changelog seq of the last change
        status      TEXT NOT NULL DEFAULT 'active',    -- active | merged | empty
        merged_into INTEGER REFERENCES customers(id)   -- set when status = merged (an alias)
    );
    CREATE INDEX customers_merged_into ON customers(merged_into) WHERE merged_into IS NOT NULL;

    CREATE TABLE source_records (
        id           INTEGER PRIMARY KEY,
        source       TEXT NOT NULL,
        source_id    TEXT NOT NULL,
        version      INTEGER NOT NULL,
        deleted      INTEGER NOT NULL DEFAULT 0,
        customer_id  INTEGER REFERENCES customers(id), -- NULL for event-only and deleted records
        content_hash INTEGER NOT NULL,
        record       TEXT NOT NULL,                    -- canonical identifiers/attributes/events, JSON
        raw          TEXT,                             -- the source payload, JSON
        first_seen   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        UNIQUE (source, source_id)
    );
    CREATE INDEX source_records_customer ON source_records(customer_id) WHERE customer_id IS NOT NULL;

    -- Every identifier of every live record; only linkable ones join customers.
    CREATE TABLE identifiers (
        kind      TEXT NOT NULL,
        value     TEXT NOT NULL,
        record_id INTEGER NOT NULL REFERENCES source_records(id),
        linkable  INTEGER NOT NULL,
        PRIMARY KEY (kind, value, record_id)
    ) WITHOUT ROWID;

    -- Why records belong together: one row per accepted link (and, later, refused ones).
    CREATE TABLE evidence (
        id         INTEGER PRIMARY KEY,
        record_a   INTEGER NOT NULL REFERENCES source_records(id),
        record_b   INTEGER NOT NULL REFERENCES source_records(id),
        kind       TEXT NOT NULL,      -- identifier | probabilistic | curator
        rule       TEXT NOT NULL,      -- e.g. shared_email
        weight     REAL,               -- match weight for probabilistic evidence
        details    TEXT,               -- per-field contributions, JSON
        accepted   INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX evidence_record_a ON evidence(record_a);
    CREATE INDEX evidence_record_b ON evidence(record_b);

    -- Curator decisions (never-merge, force-merge, detach) that win over evidence.
    CREATE TABLE curator_overrides (
        id         INTEGER PRIMARY KEY,
        action     TEXT NOT NULL,
        record_a   INTEGER NOT NULL REFERENCES source_records(id),
        record_b   INTEGER REFERENCES source_records(id),
        note       TEXT,
        created_at INTEGER NOT NULL
    );

    CREATE TABLE events (
        record_id   INTEGER NOT NULL REFERENCES source_records(id),
        seq         INTEGER NOT NULL,
        kind        TEXT NOT NULL,
        occurred_at TEXT NOT NULL,   -- RFC 3339 UTC
        data        TEXT NOT NULL,   -- JSON
        PRIMARY KEY (record_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX events_occurred_at ON events(occurred_at);

    -- Identifiers an event names (a caller's phone), resolved to customers when read.
    CREATE TABLE event_identifiers (
        kind      TEXT NOT NULL,
        value     TEXT NOT NULL,
        record_id INTEGER NOT NULL,
        seq       INTEGER NOT NULL,
        PRIMARY KEY (kind, value, record_id, seq)
    ) WITHOUT ROWID;

    CREATE TABLE changelog (
        seq         INTEGER PRIMARY KEY,               -- the customer version
        customer_id INTEGER NOT NULL,
        change      TEXT NOT NULL,   -- created | updated | merged | merged_into | record_removed
        details     TEXT,            -- JSON
        at          INTEGER NOT NULL
    );

    CREATE TABLE checkpoints (
        connector  TEXT PRIMARY KEY,
        position   TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );

    CREATE TABLE quarantine (
        id         INTEGER PRIMARY KEY,
        source     TEXT NOT NULL,
        position   TEXT NOT NULL,
        raw        TEXT NOT NULL,
        reason     TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL,
        UNIQUE (source, position)
    );
    "#,
    // 2: probabilistic resolution. Evidence rows are now every scored pair the resolver keeps
    // (link and possible bands): `rule` is the pair's status (accepted, implied, forced,
    // possible, refused_<guard>), `weight` its match weight. Identifier-stitching evidence from
    // schema 1 has no weight and is dropped; its customers are kept as they are.
    r#"
    DELETE FROM evidence WHERE weight IS NULL;
    CREATE INDEX curator_overrides_record_a ON curator_overrides(record_a);

    -- Versioned match parameters (MatchParameters JSON); the newest active row is used.
    CREATE TABLE match_parameters (
        id         INTEGER PRIMARY KEY,
        created_at INTEGER NOT NULL,
        origin     TEXT NOT NULL,     -- default | train
        params     TEXT NOT NULL,
        summary    TEXT,              -- training statistics, JSON
        active     INTEGER NOT NULL DEFAULT 0
    );

    -- Identifier values that stopped linking: held by records with too many different names.
    CREATE TABLE generic_values (
        kind    TEXT NOT NULL,
        value   TEXT NOT NULL,
        names   INTEGER NOT NULL,
        records INTEGER NOT NULL,
        since   INTEGER NOT NULL,
        PRIMARY KEY (kind, value)
    ) WITHOUT ROWID;

    -- Blocking keys held by more records than the candidate cap.
    CREATE TABLE block_overflows (
        key     TEXT PRIMARY KEY,
        records INTEGER NOT NULL,
        since   INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 3: evidence is upserted by pair (only pairs whose status changed are written), so a
    // pair has one row; the pair index also serves lookups by record_a.
    r#"
    DELETE FROM evidence WHERE id NOT IN (SELECT max(id) FROM evidence GROUP BY record_a, record_b);
    DROP INDEX evidence_record_a;
    CREATE UNIQUE INDEX evidence_pair ON evidence(record_a, record_b);
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
