//! The page-cache wrapper (`pcache.rs`) skips truncations that can drop nothing and forwards
//! the rest. Its own test binary: the wrapper installs only before SQLite initializes, and
//! this is the binary's only test.

use onetruth_store::{install_page_cache, skipped_truncations};
use rusqlite::{Connection, params};

/// splitmix64: scattered keys, so inserts land on random index pages and B-tree balancing
/// reorders sibling pages (the case the wrapper exists for).
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn value(i: u64, round: u64) -> String {
    format!(
        "{round}:{i}:{}",
        "x".repeat((mix(i ^ round) % 700) as usize)
    )
}

#[test]
fn skipped_truncations_keep_commits_and_rollbacks_correct() {
    assert!(
        install_page_cache(),
        "SQLite was initialized before the test installed it"
    );
    let dir = tempfile::tempdir().unwrap();

    let mut conn = Connection::open(dir.path().join("t.db")).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 8192; PRAGMA journal_mode = WAL; PRAGMA cache_size = -65536;
         CREATE TABLE t (k BLOB PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;",
    )
    .unwrap();
    let before = skipped_truncations();
    // Commits of scattered inserts: balancing parks pages at the lock page's number, and the
    // truncation after each commit has nothing to drop.
    for round in 0..40u64 {
        let tx = conn.transaction().unwrap();
        for i in round * 500..(round + 1) * 500 {
            tx.execute(
                "INSERT INTO t (k, v) VALUES (?1, ?2)",
                params![mix(i).to_be_bytes(), value(i, 0)],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    assert!(
        skipped_truncations() > before + 30,
        "the wrapper is not installed or skips nothing"
    );

    // A transaction that grows the file, then rolls back: the pages past the old end must be
    // dropped from the cache, or the writes below would reuse their stale content.
    let size_before: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    {
        let tx = conn.transaction().unwrap();
        for i in 100_000..106_000u64 {
            tx.execute(
                "INSERT INTO t (k, v) VALUES (?1, ?2)",
                params![mix(i).to_be_bytes(), value(i, 1)],
            )
            .unwrap();
        }
        tx.execute("UPDATE t SET v = 'rolled back'", []).unwrap();
        tx.rollback().unwrap();
    }
    let size_after: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    assert_eq!(size_after, size_before);
    // New pages reuse the numbers the rolled-back transaction had used.
    for round in 0..4u64 {
        let tx = conn.transaction().unwrap();
        for i in 200_000 + round * 2000..200_000 + (round + 1) * 2000 {
            tx.execute(
                "INSERT INTO t (k, v) VALUES (?1, ?2)",
                params![mix(i).to_be_bytes(), value(i, 2)],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    // Every committed row reads back as written; nothing rolled back survives. A fresh
    // connection reads from the file, the old one through its cache: both must agree.
    for c in [&conn, &Connection::open(dir.path().join("t.db")).unwrap()] {
        let mut stmt = c.prepare("SELECT k, v FROM t").unwrap();
        let rows: Vec<(Vec<u8>, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), 20_000 + 8_000);
        let mut expected: std::collections::HashMap<[u8; 8], String> = (0..20_000u64)
            .map(|i| (mix(i).to_be_bytes(), value(i, 0)))
            .chain((200_000..208_000u64).map(|i| (mix(i).to_be_bytes(), value(i, 2))))
            .collect();
        for (k, v) in rows {
            let key: [u8; 8] = k.as_slice().try_into().unwrap();
            assert_eq!(expected.remove(&key).as_deref(), Some(v.as_str()));
        }
        assert!(expected.is_empty());
    }
}
