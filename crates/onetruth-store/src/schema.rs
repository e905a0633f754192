//! Numbered migrations. The schema version lives in `PRAGMA user_version`; a database written
//! by a newer build is refused rather than guessed at.

use rusqlite::Connection;

use crate::StoreError;
use crate::codec::StoredRecord;

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
    // 4: identifier rows are keyed by a 128-bit hash of (kind, value) instead of the text
    // (`identifier_key`, registered on the connection). The index is 40% smaller, and since
    // its inserts land on random pages, every commit rewrites most of it: at 1M records it was
    // a third of the bytes an ingest wrote. Values stay readable in the records' JSON.
    r#"
    CREATE TABLE identifier_keys (
        key       BLOB NOT NULL,        -- identifier_key(kind, value)
        record_id INTEGER NOT NULL REFERENCES source_records(id),
        linkable  INTEGER NOT NULL,
        PRIMARY KEY (key, record_id)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO identifier_keys (key, record_id, linkable)
        SELECT identifier_key(kind, value), record_id, linkable FROM identifiers ORDER BY 1, 2;
    DROP TABLE identifiers;
    ALTER TABLE identifier_keys RENAME TO identifiers;

    CREATE TABLE event_identifier_keys (
        key       BLOB NOT NULL,        -- identifier_key(kind, value)
        record_id INTEGER NOT NULL,
        seq       INTEGER NOT NULL,
        PRIMARY KEY (key, record_id, seq)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO event_identifier_keys (key, record_id, seq)
        SELECT identifier_key(kind, value), record_id, seq FROM event_identifiers ORDER BY 1, 2, 3;
    DROP TABLE event_identifiers;
    ALTER TABLE event_identifier_keys RENAME TO event_identifiers;
    "#,
    // 5: the 128-bit key is stored as two integers (`identifier_key_columns`) instead of a
    // 16-byte blob: SQLite compares integer keys on a fast path, and B-tree searches are most
    // of what an insert into this randomly written index costs (a third fewer instructions per
    // row, measured on 2M rows). Same size, same collision resistance.
    r#"
    CREATE TABLE identifier_keys (
        key_hi    INTEGER NOT NULL,     -- identifier_key(kind, value): bytes 0..8 and 8..16,
        key_lo    INTEGER NOT NULL,     -- big-endian, as signed integers
        record_id INTEGER NOT NULL REFERENCES source_records(id),
        linkable  INTEGER NOT NULL,
        PRIMARY KEY (key_hi, key_lo, record_id)
    ) WITHOUT ROWID;
    INSERT INTO identifier_keys (key_hi, key_lo, record_id, linkable)
        SELECT key_half(key, 0), key_half(key, 1), record_id, linkable FROM identifiers
        ORDER BY 1, 2, 3;
    DROP TABLE identifiers;
    ALTER TABLE identifier_keys RENAME TO identifiers;

    CREATE TABLE event_identifier_keys (
        key_hi    INTEGER NOT NULL,
        key_lo    INTEGER NOT NULL,
        record_id INTEGER NOT NULL,
        seq       INTEGER NOT NULL,
        PRIMARY KEY (key_hi, key_lo, record_id, seq)
    ) WITHOUT ROWID;
    INSERT INTO event_identifier_keys (key_hi, key_lo, record_id, seq)
        SELECT key_half(key, 0), key_half(key, 1), record_id, seq FROM event_identifiers
        ORDER BY 1, 2, 3, 4;
    DROP TABLE event_identifiers;
    ALTER TABLE event_identifier_keys RENAME TO event_identifiers;
    "#,
    // 6: content hashes are SipHash-1-3 of the record's JSON (`content_hash`) instead of
    // FNV-1a, which hashed a byte at a time and cost 2% of a bulk ingest.
    r#"
    UPDATE source_records SET content_hash = content_hash(record, deleted);
    "#,
    // 7: evidence rows are keyed by their pair (WITHOUT ROWID) instead of a row id with a
    // unique pair index: one B-tree insert fewer per row. Nothing referred to the row id.
    r#"
    CREATE TABLE evidence_by_pair (
        record_a   INTEGER NOT NULL REFERENCES source_records(id),
        record_b   INTEGER NOT NULL REFERENCES source_records(id),
        kind       TEXT NOT NULL,      -- identifier | probabilistic | curator
        rule       TEXT NOT NULL,      -- the pair's status: accepted, implied, forced, possible, refused_<guard>
        weight     REAL,               -- match weight
        details    TEXT,               -- per-field contributions, JSON
        accepted   INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (record_a, record_b)
    ) WITHOUT ROWID;
    INSERT INTO evidence_by_pair (record_a, record_b, kind, rule, weight, details, accepted, created_at)
        SELECT record_a, record_b, kind, rule, weight, details, accepted, created_at FROM evidence
        ORDER BY record_a, record_b;
    DROP TABLE evidence;
    ALTER TABLE evidence_by_pair RENAME TO evidence;
    CREATE INDEX evidence_record_b ON evidence(record_b);
    "#,
    // 8: the canonical record is stored in a compact binary form (`codec.rs`) instead of JSON:
    // serializing JSON was a sixth of the ingest reader's time, and the rows were 60% larger.
    // Content hashes are of the new form, so that unchanged records stay unchanged.
    r#"
    UPDATE source_records SET record = record_binary(record);
    UPDATE source_records SET content_hash = content_hash(record, deleted);
    "#,
    // 9: checkpoints per stream of a connector (a Kafka partition, a file of an inbox, an HTTP
    // stream), each written in the transaction of the records it covers. A connector's old
    // single checkpoint becomes its stream ''.
    r#"
    CREATE TABLE stream_checkpoints (
        connector  TEXT NOT NULL,
        stream     TEXT NOT NULL,
        position   TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (connector, stream)
    ) WITHOUT ROWID;
    INSERT INTO stream_checkpoints (connector, stream, position, updated_at)
        SELECT connector, '', position, updated_at FROM checkpoints;
    DROP TABLE checkpoints;
    ALTER TABLE stream_checkpoints RENAME TO checkpoints;
    "#,
];

/// The key of an identifier's rows in `identifiers` and `event_identifiers`: SipHash-1-3
/// (128-bit) of the kind and the normalized value. 128 bits so that two identifiers never
/// share a key in practice (the rows carry no text to tell them apart); the fixed key keeps
/// it stable across builds and machines. Never change it without a migration.
pub fn identifier_key(kind: &str, value: &str) -> [u8; 16] {
    use siphasher::sip128::{Hasher128, SipHasher13};
    use std::hash::Hasher;
    let mut h = SipHasher13::new_with_keys(0x6f6e_6574_7275_7468, 0x6964_656e_7469_6679);
    h.write(kind.as_bytes());
    // A separator no UTF-8 text contains: ("ab", "c") and ("a", "bc") differ.
    h.write_u8(0xff);
    h.write(value.as_bytes());
    h.finish128().as_bytes()
}

/// The hash of a record's content in `source_records.content_hash`: SipHash-1-3 (64-bit) of the
/// stored record (its encoded form, JSON before schema 8), flipped in its lowest bit for a
/// deleted record. A newer version whose hash is unchanged only updates the stored version.
/// Stable across builds and machines (fixed key); never change it without a migration.
pub(crate) fn content_hash(record: &[u8], deleted: bool) -> i64 {
    use siphasher::sip::SipHasher13;
    use std::hash::Hasher;
    let mut h = SipHasher13::new_with_keys(0x6f6e_6574_7275_7468, 0x636f_6e74_656e_7473);
    h.write(record);
    (h.finish() as i64) ^ i64::from(deleted)
}

/// [`identifier_key`] as the two integer columns `identifiers` and `event_identifiers` store
/// it in (`key_hi`, `key_lo`).
pub fn identifier_key_columns(kind: &str, value: &str) -> (i64, i64) {
    key_columns(identifier_key(kind, value))
}

fn key_columns(k: [u8; 16]) -> (i64, i64) {
    let (hi, lo) = k.split_at(8);
    // Both halves are 8 bytes long: the conversions cannot fail.
    (
        i64::from_be_bytes(hi.try_into().expect("8 bytes")),
        i64::from_be_bytes(lo.try_into().expect("8 bytes")),
    )
}

/// Make `identifier_key(kind, value)`, `key_half(key, 0 | 1)`, `content_hash(record,
/// deleted)` and `record_binary(json)` callable from SQL on `conn` (migrations use them).
pub(crate) fn register_functions(conn: &Connection) -> Result<(), StoreError> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "key_half",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let key: Vec<u8> = ctx.get(0)?;
            let half: i64 = ctx.get(1)?;
            let key: [u8; 16] = key.try_into().map_err(|k: Vec<u8>| {
                rusqlite::Error::UserFunctionError(
                    format!("identifier key of {} bytes, not 16", k.len()).into(),
                )
            })?;
            let (hi, lo) = key_columns(key);
            Ok(if half == 0 { hi } else { lo })
        },
    )?;
    conn.create_scalar_function(
        "content_hash",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            // Text (JSON, schema 7 and before) or blob (encoded): the same bytes either way.
            let record = ctx.get_raw(0).as_bytes()?;
            let deleted: bool = ctx.get(1)?;
            Ok(content_hash(record, deleted))
        },
    )?;
    conn.create_scalar_function(
        "record_binary",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let json: String = ctx.get(0)?;
            StoredRecord::from_json(&json).map_err(|e| rusqlite::Error::UserFunctionError(e.into()))
        },
    )?;
    conn.create_scalar_function(
        "identifier_key",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let kind: String = ctx.get(0)?;
            let value: String = ctx.get(1)?;
            Ok(identifier_key(&kind, &value).to_vec())
        },
    )?;
    Ok(())
}

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
    if current == SCHEMA_VERSION {
        return Ok(());
    }
    // A migration that rewrites a table keeps a statement journal of every page it changes
    // (the statement may fail halfway inside its transaction): held in memory with the
    // connection's `temp_store = MEMORY`, that was the whole table (0.7 GB for a 1M-record
    // store's `source_records`). Temporary files instead, for the migrations only.
    tracing::info!(
        from = current,
        to = SCHEMA_VERSION,
        "upgrading the store's schema"
    );
    conn.execute_batch("PRAGMA temp_store = FILE")?;
    let migrated = run_migrations(conn, current);
    conn.execute_batch("PRAGMA temp_store = MEMORY")?;
    migrated
}

fn run_migrations(conn: &mut Connection, current: i64) -> Result<(), StoreError> {
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Store, StoreOptions};
    use onetruth_model::{CustomerId, IdentifierKind};

    #[test]
    fn identifier_keys_tell_kind_and_value_apart() {
        let k = identifier_key("email", "a@x.org");
        assert_eq!(k, identifier_key("email", "a@x.org"));
        assert_ne!(k, identifier_key("email", "b@x.org"));
        assert_ne!(k, identifier_key("custom", "a@x.org"));
        // The separator keeps the split between kind and value.
        assert_ne!(identifier_key("ab", "c"), identifier_key("a", "bc"));
        // Stored keys must not change between builds.
        let hex: String = identifier_key("phone", "+14155550100")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "919366c1302b4db689245b516dd91f39");
    }

    #[test]
    fn content_hashes_are_stable_and_mark_deletions() {
        // Stored hashes must not change between builds.
        assert_eq!(content_hash(b"{}", false), 0xde8b_fd37_2273_20b5_u64 as i64);
        assert_eq!(content_hash(b"{}", true), content_hash(b"{}", false) ^ 1);
        assert_ne!(
            content_hash(b"{\"a\":1}", false),
            content_hash(b"{\"a\":2}", false)
        );
    }

    /// A store written at schema 5 holds JSON records with FNV-1a content hashes; after the
    /// migrations (SipHash at 6, the binary form at 8) each record reads back as it was, and
    /// the same content under a newer version is still recognized as unchanged.
    #[test]
    fn schema_5_records_and_content_hashes_are_migrated() {
        use onetruth_model::{Attributes, Identifier, Op, SourceRecord};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let record = |version| SourceRecord {
            source: "crm".into(),
            source_id: "c1".into(),
            version,
            op: Op::Upsert,
            identifiers: vec![Identifier {
                kind: IdentifierKind::Email,
                value: "ann@x.org".into(),
                original: "Ann@X.org".into(),
                linkable: true,
            }],
            attributes: Attributes {
                given_name: Some("Ann".into()),
                ..Attributes::default()
            },
            events: Vec::new(),
            raw: serde_json::Value::Null,
            raw_text: None,
        };
        let batch = |version| crate::Batch {
            connector: "file:crm".into(),
            records: vec![record(version)],
            quarantine: Vec::new(),
            checkpoints: Vec::new(),
            on_commit: None,
            released: Vec::new(),
        };
        {
            let mut store = Store::open(&path, StoreOptions::default()).unwrap();
            assert_eq!(store.apply(batch(1)).unwrap().applied, 1);
        }
        {
            // What a schema-5 build stored: the record as JSON, FNV-1a of that JSON.
            let conn = Connection::open(&path).unwrap();
            let bytes: Vec<u8> = conn
                .query_row("SELECT record FROM source_records", [], |r| r.get(0))
                .unwrap();
            let stored = StoredRecord::decode(&bytes).unwrap();
            let text = serde_json::to_string(&stored).unwrap();
            assert!(text.contains("Ann@X.org"), "{text}");
            let fnv = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            conn.execute(
                "UPDATE source_records SET content_hash = ?1, record = ?2",
                rusqlite::params![fnv as i64, text],
            )
            .unwrap();
            conn.pragma_update(None, "user_version", 5).unwrap();
        }
        let mut store = Store::open(&path, StoreOptions::default()).unwrap();
        let (kind, bytes): (String, Vec<u8>) = store
            .conn
            .query_row(
                "SELECT typeof(record), record FROM source_records",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(kind, "blob");
        let migrated = StoredRecord::decode(&bytes).unwrap();
        assert_eq!(migrated.identifiers, record(1).identifiers);
        // Migrations journal to temporary files; the connection keeps them in memory after.
        let temp_store: i64 = store
            .conn
            .query_row("PRAGMA temp_store", [], |r| r.get(0))
            .unwrap();
        assert_eq!(temp_store, 2, "MEMORY");
        assert_eq!(migrated.attributes, record(1).attributes);
        let summary = store.apply(batch(2)).unwrap();
        assert_eq!((summary.applied, summary.unchanged), (0, 1));
    }

    /// Evidence written at schema 6 (row ids and a unique pair index) keeps every pair and
    /// its decision once keyed by the pair, and a pair is still updated in place.
    #[test]
    fn schema_6_evidence_is_keyed_by_pair() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            register_functions(&conn).unwrap();
            let tx = conn.transaction().unwrap();
            for sql in &MIGRATIONS[..6] {
                tx.execute_batch(sql).unwrap();
            }
            tx.pragma_update(None, "user_version", 6).unwrap();
            tx.execute_batch(
                r#"
                INSERT INTO customers (id, created_at, version) VALUES (1, 0, 1), (2, 0, 1);
                INSERT INTO source_records (id, source, source_id, version, customer_id, content_hash, record, first_seen, updated_at)
                    VALUES (1, 'crm', 'a', 1, 1, 0, '{}', 0, 0), (2, 'crm', 'b', 1, 1, 0, '{}', 0, 0),
                           (3, 'crm', 'c', 1, 2, 0, '{}', 0, 0);
                INSERT INTO evidence (record_a, record_b, kind, rule, weight, accepted, created_at)
                    VALUES (1, 2, 'probabilistic', 'accepted', 14.5, 1, 0),
                           (1, 3, 'probabilistic', 'possible', 4.0, 0, 0);
                "#,
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let stats = store.stats().unwrap();
        assert_eq!((stats.links, stats.possible_pairs), (1, 1));
        let sql: String = store
            .conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'evidence'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sql.contains("WITHOUT ROWID"), "{sql}");
        store
            .conn
            .execute(
                "INSERT INTO evidence (record_a, record_b, kind, rule, weight, accepted, created_at)
                 VALUES (1, 3, 'probabilistic', 'accepted', 15.0, 1, 0)
                 ON CONFLICT (record_a, record_b) DO UPDATE SET rule = excluded.rule",
                [],
            )
            .unwrap();
        let rows: Vec<(i64, i64, String)> = store
            .conn
            .prepare("SELECT record_a, record_b, rule FROM evidence ORDER BY 1, 2")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (1, 2, "accepted".to_string()),
                (1, 3, "accepted".to_string())
            ]
        );
    }

    /// A store written at schema 3 (identifier rows keyed by text) is migrated through the
    /// 128-bit blob keys (4) to their two integer columns (5), even when a reader opens it
    /// first: its lookups, placeholders and event attachments still work.
    #[test]
    fn schema_3_identifiers_are_rekeyed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 3).unwrap();
            let tx = conn.transaction().unwrap();
            tx.execute_batch(
                r#"
                INSERT INTO customers (id, created_at, version) VALUES (1, 0, 1);
                INSERT INTO source_records (id, source, source_id, version, customer_id, content_hash, record, first_seen, updated_at)
                    VALUES (1, 'crm', 'c1', 1, 1, 0, '{"identifiers":[{"kind":"email","value":"ann@x.org","original":"ann@x.org"},{"kind":"phone","value":"0000000000","original":"0000000000","linkable":false}]}', 0, 0);
                INSERT INTO source_records (id, source, source_id, version, customer_id, content_hash, record, first_seen, updated_at)
                    VALUES (2, 'calls', 'k1', 1, NULL, 0, '{"events":[{"kind":"call","occurred_at":"2026-01-01T00:00:00Z","identifiers":[{"kind":"email","value":"ann@x.org","original":"ann@x.org"}]}]}', 0, 0);
                INSERT INTO identifiers (kind, value, record_id, linkable) VALUES ('email', 'ann@x.org', 1, 1);
                INSERT INTO identifiers (kind, value, record_id, linkable) VALUES ('phone', '0000000000', 1, 0);
                INSERT INTO events (record_id, seq, kind, occurred_at, data) VALUES (2, 0, 'call', '2026-01-01T00:00:00Z', '{}');
                INSERT INTO event_identifiers (kind, value, record_id, seq) VALUES ('email', 'ann@x.org', 2, 0);
                "#,
            )
            .unwrap();
            tx.commit().unwrap();
        }
        // A reader (`lookup`, `serve`) opening an older store upgrades it first.
        let store = Store::open(
            &path,
            StoreOptions {
                read_only: true,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(
            store.lookup(&IdentifierKind::Email, "ann@x.org").unwrap(),
            vec![CustomerId(1)]
        );
        assert!(
            store
                .lookup(&IdentifierKind::Phone, "0000000000")
                .unwrap()
                .is_empty(),
            "a placeholder stays unlinkable"
        );
        let profile = store.customer(CustomerId(1)).unwrap().unwrap();
        assert_eq!(profile.events.len(), 1, "the call still attaches by email");
        let mut exported = Vec::new();
        store
            .for_each_event(|e| -> Result<(), StoreError> {
                exported.push(e.customer_id);
                Ok(())
            })
            .unwrap();
        assert_eq!(exported, vec![Some(CustomerId(1))]);
    }
}
