//! Store behaviour on a real SQLite file: idempotence, merges, placeholders, aliases, quarantine.

use onetruth_model::{Attributes, CustomerId, Event, IdentifierKind, Normalizer, Op, SourceRecord};
use onetruth_resolve::IdentifierPolicy;
use onetruth_store::{
    Batch, CuratorDecision, InitialLoad, OnCommit, PreparedBatch, QuarantineEntry, Store,
    StoreError, StoreOptions, StreamCheckpoint, StreamCommit, WriteCommand,
};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.db"), StoreOptions::default()).unwrap();
    (dir, store)
}

fn rec(source: &str, id: &str, version: i64, given: &str, ids: &[(&str, &str)]) -> SourceRecord {
    let n = Normalizer::default();
    SourceRecord {
        source: source.into(),
        source_id: id.into(),
        version,
        op: Op::Upsert,
        identifiers: ids
            .iter()
            .map(|(k, v)| {
                n.normalize(&IdentifierKind::parse(k).unwrap(), v, None)
                    .unwrap()
            })
            .collect(),
        attributes: Attributes {
            given_name: Some(given.into()),
            ..Default::default()
        },
        events: vec![],
        raw: serde_json::json!({"id": id}),
        raw_text: None,
    }
}

#[test]
fn the_raw_payload_is_stored_as_delivered_when_its_text_is_known() {
    let (dir, mut s) = store();
    let mut verbatim = rec("crm", "1", 1, "Ann", &[("email", "ann@x.com")]);
    verbatim.raw = serde_json::json!({"z": 1, "id": "1"});
    verbatim.raw_text = Some(r#"{"z": 1, "id": "1"}"#.into());
    let serialized = rec("crm", "2", 1, "Bo", &[("email", "bo@x.com")]);
    s.apply(batch(vec![verbatim, serialized])).unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
    let raw = |id: &str| -> String {
        conn.query_row(
            "SELECT raw FROM source_records WHERE source_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(raw("1"), r#"{"z": 1, "id": "1"}"#);
    assert_eq!(raw("2"), r#"{"id":"2"}"#);
}

fn batch(records: Vec<SourceRecord>) -> Batch {
    Batch {
        connector: "test".into(),
        records,
        quarantine: vec![],
        checkpoints: Vec::new(),
        on_commit: None,
        released: Vec::new(),
    }
}

fn lookup(s: &Store, kind: IdentifierKind, v: &str) -> Vec<CustomerId> {
    s.lookup(&kind, v).unwrap()
}

#[test]
fn shared_identifier_across_sources_merges_and_reapplying_changes_nothing() {
    let (_d, mut s) = store();
    let records = vec![
        rec("crm", "1", 1, "Jane", &[("email", "Jane@Example.com")]),
        rec(
            "billing",
            "b1",
            1,
            "Jane",
            &[("email", " jane@example.com"), ("phone", "(415) 555-2671")],
        ),
        // A shared phone alone is not enough (households, switchboards); with the same given
        // name it is.
        rec("calls", "c1", 1, "Jane", &[("phone", "+1 415 555 2671")]),
        rec("crm", "2", 1, "Bob", &[("email", "bob@example.com")]),
    ];
    let sum = s.apply(batch(records.clone())).unwrap();
    assert_eq!(
        (sum.applied, sum.unchanged, sum.customers_created),
        (4, 0, 2)
    );
    let jane = lookup(&s, IdentifierKind::Email, "jane@example.com");
    assert_eq!(jane.len(), 1);
    assert_eq!(lookup(&s, IdentifierKind::Phone, "+14155552671"), jane);
    let profile = s.customer(jane[0]).unwrap().unwrap();
    assert_eq!(profile.records.len(), 3);
    assert_ne!(lookup(&s, IdentifierKind::Email, "bob@example.com"), jane);

    let before = s.stats().unwrap();
    let again = s.apply(batch(records)).unwrap();
    assert_eq!((again.applied, again.unchanged), (0, 4));
    let after = s.stats().unwrap();
    assert_eq!(
        before.changelog_version, after.changelog_version,
        "no changelog entries on replay"
    );
    assert_eq!(
        (before.customers, before.records, before.links),
        (after.customers, after.records, after.links)
    );
}

#[test]
fn stale_versions_are_ignored_and_newer_ones_update_the_golden_view() {
    let (_d, mut s) = store();
    s.apply(batch(vec![rec(
        "crm",
        "1",
        5,
        "Jane",
        &[("email", "j@x.com")],
    )]))
    .unwrap();
    let stale = s
        .apply(batch(vec![rec(
            "crm",
            "1",
            4,
            "Old",
            &[("email", "j@x.com")],
        )]))
        .unwrap();
    assert_eq!(stale.unchanged, 1);
    s.apply(batch(vec![rec(
        "crm",
        "1",
        6,
        "Janet",
        &[("email", "j@x.com")],
    )]))
    .unwrap();
    let c = lookup(&s, IdentifierKind::Email, "j@x.com")[0];
    let g = s.customer(c).unwrap().unwrap().golden;
    let given = g.given_name.unwrap();
    assert_eq!(
        (given.value.as_str(), given.provenance.version),
        ("Janet", 6)
    );
}

#[test]
fn placeholders_never_link() {
    let (_d, mut s) = store();
    s.apply(batch(vec![
        rec("crm", "1", 1, "Ann", &[("email", "test@test.com")]),
        rec("crm", "2", 1, "Ben", &[("email", "TEST@test.com")]),
        rec("crm", "3", 1, "Cat", &[("email", "noemail@acme.com")]),
        rec("billing", "4", 1, "Dan", &[("email", "noemail@acme.com")]),
    ]))
    .unwrap();
    let st = s.stats().unwrap();
    assert_eq!(st.customers, 4, "four people, four customers");
    assert_eq!(st.placeholder_identifiers, 4);
    assert!(lookup(&s, IdentifierKind::Email, "test@test.com").is_empty());
}

#[test]
fn oldest_customer_survives_a_merge_and_aliases_resolve() {
    let (_d, mut s) = store();
    s.apply(batch(vec![rec(
        "crm",
        "1",
        1,
        "Jane",
        &[("email", "a@x.com")],
    )]))
    .unwrap();
    s.apply(batch(vec![rec(
        "billing",
        "1",
        1,
        "Jane",
        &[("phone", "+14155552671")],
    )]))
    .unwrap();
    s.apply(batch(vec![rec(
        "helpdesk",
        "9",
        1,
        "Jane",
        &[("email", "z@x.com")],
    )]))
    .unwrap();
    let a = lookup(&s, IdentifierKind::Email, "a@x.com")[0];
    let b = lookup(&s, IdentifierKind::Phone, "+14155552671")[0];
    let z = lookup(&s, IdentifierKind::Email, "z@x.com")[0];
    assert!(a < b && b < z);
    // b and z merge first, then everything merges into a: aliases of aliases re-point to a.
    s.apply(batch(vec![rec(
        "web",
        "w1",
        1,
        "Jane",
        &[("phone", "415 555 2671"), ("email", "z@x.com")],
    )]))
    .unwrap();
    assert_eq!(s.resolve(z).unwrap().unwrap().id, b);
    let sum = s
        .apply(batch(vec![rec(
            "web",
            "w2",
            1,
            "Jane",
            &[("email", "a@x.com"), ("email", "z@x.com")],
        )]))
        .unwrap();
    assert_eq!(sum.merges, 1);
    for old in [b, z] {
        let r = s.resolve(old).unwrap().unwrap();
        assert_eq!(
            (r.id, r.alias),
            (a, Some(old)),
            "alias {old} resolves to the survivor"
        );
    }
    let profile = s.customer(a).unwrap().unwrap();
    assert_eq!(profile.aliases, vec![b, z]);
    assert_eq!(profile.records.len(), 5);
    assert_eq!(s.stats().unwrap().customers, 1);
}

#[test]
fn quarantine_and_checkpoint_commit_with_the_batch() {
    let (_d, mut s) = store();
    let mut b = batch(vec![rec("crm", "1", 1, "Jane", &[("email", "a@x.com")])]);
    b.quarantine.push(QuarantineEntry {
        source: "crm".into(),
        position: "crm.csv:3".into(),
        raw: "1,2".into(),
        reason: "csv row has 2 fields, header has 3".into(),
    });
    let checkpoint = |stream: &str, position: &str| StreamCheckpoint {
        stream: stream.into(),
        position: position.into(),
    };
    b.checkpoints = vec![checkpoint("crm.csv", "3"), checkpoint("other.csv", "9")];
    let again = Batch {
        connector: b.connector.clone(),
        records: b.records.clone(),
        quarantine: b.quarantine.clone(),
        checkpoints: vec![checkpoint("crm.csv", "4")],
        on_commit: None,
        released: Vec::new(),
    };
    let sum = s.apply(b).unwrap();
    assert_eq!((sum.applied, sum.quarantined), (1, 1));
    s.apply(again).unwrap();
    assert_eq!(
        s.stats().unwrap().quarantined,
        1,
        "the same bad row is quarantined once"
    );
    // One checkpoint per stream; a later batch moves only the streams it names.
    let stored = s.checkpoints("test").unwrap();
    assert_eq!(
        stored.into_iter().collect::<Vec<_>>(),
        vec![
            ("crm.csv".to_string(), "4".to_string()),
            ("other.csv".to_string(), "9".to_string())
        ]
    );
    assert!(s.checkpoints("nobody").unwrap().is_empty());
    let q = s.quarantined(10).unwrap();
    assert_eq!(q[0].raw, "1,2");
}

#[test]
fn a_batch_is_acknowledged_only_after_its_transaction_commits() {
    use std::sync::{Arc, Mutex};
    let (d, mut s) = store();
    let path = d.path().join("t.db");
    // What another connection saw when each acknowledgement ran.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ack = |seen: &Arc<Mutex<Vec<i64>>>| {
        let (seen, path) = (seen.clone(), path.clone());
        Some(OnCommit::new(move || {
            seen.lock().unwrap().push(committed_records(&path))
        }))
    };
    let mut b = batch(vec![rec("crm", "1", 1, "Jane", &[("email", "a@x.com")])]);
    b.on_commit = ack(&seen);
    s.apply(b).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![1]);

    // The pipelined writer acknowledges each group once the transaction holding it commits,
    // here several groups to a transaction: every ack sees its records.
    s.set_stream_commit(StreamCommit {
        records: 3,
        interval: std::time::Duration::from_secs(60),
    });
    let groups: Vec<Vec<PreparedBatch>> = (2..=6)
        .map(|i| {
            let mut b = batch(vec![rec(
                "crm",
                &i.to_string(),
                1,
                "Jane",
                &[("email", &format!("{i}@x.com"))],
            )]);
            b.on_commit = ack(&seen);
            vec![b.prepare(&IdentifierPolicy::default())]
        })
        .collect();
    s.apply_stream(groups.into_iter()).unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6, "every batch acknowledged: {seen:?}");
    for (i, n) in seen.iter().enumerate() {
        assert!(
            *n as usize > i,
            "ack {i} ran before its records were committed: {seen:?}"
        );
    }
    // A transaction that fails acknowledges nothing.
    let ran = Arc::new(Mutex::new(false));
    let mut read_only = Store::open(
        &path,
        StoreOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut b = batch(vec![rec("crm", "9", 1, "Ann", &[("email", "z@x.com")])]);
    let flag = ran.clone();
    b.on_commit = Some(OnCommit::new(move || *flag.lock().unwrap() = true));
    assert!(read_only.apply(b).is_err());
    assert!(
        !*ran.lock().unwrap(),
        "a failed apply ran its acknowledgement"
    );
}

#[test]
fn deletes_detach_records_and_empty_customers_disappear() {
    let (_d, mut s) = store();
    s.apply(batch(vec![rec(
        "crm",
        "1",
        1,
        "Jane",
        &[("email", "a@x.com")],
    )]))
    .unwrap();
    let c = lookup(&s, IdentifierKind::Email, "a@x.com")[0];
    let mut del = rec("crm", "1", 2, "Jane", &[]);
    del.op = Op::Delete;
    s.apply(batch(vec![del])).unwrap();
    assert!(lookup(&s, IdentifierKind::Email, "a@x.com").is_empty());
    assert!(s.resolve(c).unwrap().is_none());
    assert_eq!(s.stats().unwrap().deleted_records, 1);
}

#[test]
fn an_alias_of_an_emptied_customer_resolves_to_nothing() {
    let (_d, mut s) = store();
    s.apply(batch(vec![rec(
        "crm",
        "1",
        1,
        "Jane",
        &[("email", "a@x.com")],
    )]))
    .unwrap();
    s.apply(batch(vec![rec(
        "billing",
        "1",
        1,
        "Jane",
        &[("phone", "+14155552671")],
    )]))
    .unwrap();
    s.apply(batch(vec![rec(
        "web",
        "1",
        1,
        "Jane",
        &[("email", "a@x.com"), ("phone", "+14155552671")],
    )]))
    .unwrap();
    let (survivor, alias) = (CustomerId(1), CustomerId(2));
    assert_eq!(s.resolve(alias).unwrap().unwrap().id, survivor);
    for (source, id) in [("crm", "1"), ("billing", "1"), ("web", "1")] {
        let mut del = rec(source, id, 2, "Jane", &[]);
        del.op = Op::Delete;
        s.apply(batch(vec![del])).unwrap();
    }
    assert!(s.resolve(survivor).unwrap().is_none());
    assert!(
        s.resolve(alias).unwrap().is_none(),
        "not an alias of a customer that is gone"
    );
}

#[test]
fn events_attach_through_identifiers_without_being_identities() {
    let (_d, mut s) = store();
    let n = Normalizer::default();
    let phone = n
        .normalize(&IdentifierKind::Phone, "415-555-2671", None)
        .unwrap();
    let call = SourceRecord {
        source: "calls".into(),
        source_id: "call-1".into(),
        version: 1,
        op: Op::Upsert,
        identifiers: vec![],
        attributes: Attributes::default(),
        events: vec![Event {
            kind: "call".into(),
            occurred_at: "2026-01-02T03:04:05Z".into(),
            identifiers: vec![phone],
            data: serde_json::Map::new(),
        }],
        raw: serde_json::Value::Null,
        raw_text: None,
    };
    s.apply(batch(vec![
        call,
        rec("crm", "1", 1, "Jane", &[("phone", "+14155552671")]),
    ]))
    .unwrap();
    let st = s.stats().unwrap();
    assert_eq!(st.customers, 1, "the call is not a customer");
    let c = lookup(&s, IdentifierKind::Phone, "+14155552671")[0];
    let p = s.customer(c).unwrap().unwrap();
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.events[0].kind, "call");
    let mut exported = Vec::new();
    s.for_each_event(|e| -> Result<(), StoreError> {
        exported.push(e.customer_id);
        Ok(())
    })
    .unwrap();
    assert_eq!(exported, vec![Some(c)]);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    drop(Store::open(&path, StoreOptions::default()).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let err = Store::open(&path, StoreOptions::default()).err().unwrap();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 999, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer onetruth"));
}

/// Partition of source ids into customers, as sorted groups, for comparing stores.
fn partition(s: &Store) -> Vec<Vec<String>> {
    let mut by_customer: std::collections::BTreeMap<CustomerId, Vec<String>> = Default::default();
    s.for_each_link(|l| -> Result<(), StoreError> {
        by_customer
            .entry(l.customer_id)
            .or_default()
            .push(format!("{}:{}", l.source, l.source_id));
        Ok(())
    })
    .unwrap();
    let mut groups: Vec<Vec<String>> = by_customer.into_values().collect();
    groups.iter_mut().for_each(|g| g.sort());
    groups.sort();
    groups
}

fn many(n: usize) -> Vec<SourceRecord> {
    (0..n)
        .map(|i| {
            // Every third record reuses the email of the record two before it; every fifth
            // shares a phone with record i - 4: chains of merges across the batch.
            let email = if i % 3 == 2 {
                format!("p{}@x.com", i - 2)
            } else {
                format!("p{i}@x.com")
            };
            let phone = if i % 5 == 4 {
                format!("+1415555{:04}", i - 4)
            } else {
                format!("+1415555{i:04}")
            };
            rec(
                "crm",
                &i.to_string(),
                1,
                "P",
                &[("email", &email), ("phone", &phone)],
            )
        })
        .collect()
}

#[test]
fn a_large_batch_resolves_exactly_like_one_record_at_a_time() {
    // Batches of 2000+ records go through the writer's in-memory filter; small ones do not.
    let (_d1, mut big) = store();
    let (_d2, mut small) = store();
    let records = many(3000);
    big.apply(batch(records.clone())).unwrap();
    for r in records.clone() {
        small.apply(batch(vec![r])).unwrap();
    }
    assert_eq!(partition(&big), partition(&small));
    assert!(big.stats().unwrap().customers < 3000);
    // Replaying the large batch is a no-op, through the filter as well.
    let again = big.apply(batch(records)).unwrap();
    assert_eq!((again.applied, again.unchanged), (0, 3000));
}

#[test]
fn the_filter_sees_what_another_connection_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let mut writer = Store::open(&path, StoreOptions::default()).unwrap();
    writer.apply(batch(many(2500))).unwrap(); // loads the filter
    let mut other = Store::open(&path, StoreOptions::default()).unwrap();
    other
        .apply(batch(vec![rec(
            "web",
            "w1",
            1,
            "Zed",
            &[("email", "zed@x.com")],
        )]))
        .unwrap();
    let mut next = many(2500)
        .into_iter()
        .map(|mut r| {
            r.source = "billing".into();
            r
        })
        .collect::<Vec<_>>();
    next.push(rec("billing", "zed", 1, "Zed", &[("email", "zed@x.com")]));
    writer.apply(batch(next)).unwrap();
    let zed = writer.lookup(&IdentifierKind::Email, "zed@x.com").unwrap();
    assert_eq!(
        zed.len(),
        1,
        "the billing record joined the customer the other connection made"
    );
    assert_eq!(writer.customer(zed[0]).unwrap().unwrap().records.len(), 2);
}

/// Records with shared emails and phones and a few given names, so links, guards (different
/// given names sharing a mailbox) and generic values all come into play.
fn tangled(n: usize) -> Vec<SourceRecord> {
    let names = ["Ann", "Bob", "Cy", "Di", "Ed"];
    (0..n)
        .map(|i| {
            let email = format!("p{}@x.com", i / 3);
            let phone = format!("+1415555{:04}", i / 4);
            let mut r = rec(
                "crm",
                &format!("{i:04}"),
                1,
                names[(i / 2) % names.len()],
                &[("email", &email), ("phone", &phone)],
            );
            r.attributes.family_name = Some(["Lee", "Kim"][i % 2].into());
            r
        })
        .collect()
}

/// Every stored evidence row as `(a, b, rule, weight)` with records named by key, `a < b`.
fn evidence(dir: &tempfile::TempDir) -> Vec<(String, String, String, String)> {
    let conn = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT ra.source || ':' || ra.source_id, rb.source || ':' || rb.source_id, e.rule, e.weight
             FROM evidence e JOIN source_records ra ON ra.id = e.record_a
             JOIN source_records rb ON rb.id = e.record_b",
        )
        .unwrap();
    let mut rows: Vec<(String, String, String, String)> = stmt
        .query_map([], |r| {
            let (a, b): (String, String) = (r.get(0)?, r.get(1)?);
            let weight: Option<f64> = r.get(3)?;
            Ok((
                a.clone().min(b.clone()),
                a.max(b),
                r.get(2)?,
                format!("{weight:?}"),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.sort();
    rows
}

#[test]
fn any_order_and_batch_size_gives_the_same_partition_and_evidence() {
    let mut records = tangled(400);
    // Triangles: their third link is implied by the other two.
    records.extend((0..9).map(|i| {
        let (email, phone) = (
            format!("tri{}@y.com", i / 3),
            format!("+1415666{:04}", i / 3),
        );
        rec(
            "web",
            &format!("t{i}"),
            1,
            "Tri",
            &[("email", &email), ("phone", &phone)],
        )
    }));
    let (d1, mut one) = store();
    one.apply(batch(records.clone())).unwrap();
    let reference = partition(&one);
    assert!(
        reference.len() < 400 && reference.len() > 50,
        "{}",
        reference.len()
    );
    // Only pairs whose status changed are rewritten incrementally: the rows must still end up
    // exactly as one pass over everything writes them.
    let reference_evidence = evidence(&d1);
    assert!(
        reference_evidence.len() > 100,
        "{}",
        reference_evidence.len()
    );
    let statuses: std::collections::BTreeSet<&str> =
        reference_evidence.iter().map(|e| e.2.as_str()).collect();
    assert!(statuses.contains("implied"), "{statuses:?}");

    let (d2, mut reversed) = store();
    let rev: Vec<SourceRecord> = records.iter().rev().cloned().collect();
    for chunk in rev.chunks(7) {
        reversed.apply(batch(chunk.to_vec())).unwrap();
    }
    assert_eq!(partition(&reversed), reference, "reversed, batches of 7");
    assert_eq!(evidence(&d2), reference_evidence, "reversed, batches of 7");

    let (d3, mut strided) = store();
    let order: Vec<SourceRecord> = (0..37)
        .flat_map(|start| records.iter().skip(start).step_by(37).cloned())
        .collect();
    for chunk in order.chunks(50) {
        strided.apply(batch(chunk.to_vec())).unwrap();
    }
    assert_eq!(partition(&strided), reference, "strided, batches of 50");
    assert_eq!(evidence(&d3), reference_evidence, "strided, batches of 50");

    // Reopening between batches reloads the resolver from the tables: same result.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    for chunk in records.chunks(130) {
        let mut s = Store::open(&path, StoreOptions::default()).unwrap();
        s.apply(batch(chunk.to_vec())).unwrap();
    }
    let mut s = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(partition(&s), reference, "reopened between batches");
    assert_eq!(
        evidence(&dir),
        reference_evidence,
        "reopened between batches"
    );

    // Re-resolving everything rewrites the same rows.
    s.reresolve().unwrap();
    assert_eq!(evidence(&dir), reference_evidence, "re-resolved");

    // Curated records have their rows replaced; a later full pass agrees with them.
    let id = |s: &Store, key: &str| s.record_id("crm", key).unwrap().unwrap();
    let (a, b, t) = (
        id(&s, "0000"),
        id(&s, "0001"),
        s.record_id("web", "t0").unwrap().unwrap(),
    );
    s.curate(&CuratorDecision::ForceMerge(a, t)).unwrap();
    s.curate(&CuratorDecision::NeverMerge(a, b)).unwrap();
    s.curate(&CuratorDecision::ForceMerge(b, a)).unwrap();
    s.curate(&CuratorDecision::NeverMerge(t, a)).unwrap();
    let curated = evidence(&dir);
    assert_ne!(curated, reference_evidence);
    assert!(curated.iter().any(|e| e.2 == "forced"), "{curated:?}");
    s.reresolve().unwrap();
    assert_eq!(evidence(&dir), curated, "curated, then re-resolved");
}

#[test]
fn the_pipelined_writer_gives_what_group_by_group_gives() {
    let records = tangled(400);
    let (d1, mut one) = store();
    one.apply(batch(records.clone())).unwrap();
    let reference = partition(&one);

    let (d2, mut piped) = store();
    // The last group repeats records, which makes the planner wait for the previous commit
    // before its lookups.
    let groups = stream_groups(&records, &piped);
    let summary = piped.apply_stream(groups.into_iter()).unwrap();
    assert_eq!(summary.applied, 400);
    assert_eq!(summary.unchanged, 50);
    assert!(summary.pairs_scored > 0);
    assert_eq!(partition(&piped), reference);
    assert_eq!(evidence(&d2), evidence(&d1));
    // The state it leaves behind serves the next write.
    let mut changed = records[0].clone();
    changed.version = 2;
    changed.attributes.given_name = Some("Zoe".into());
    piped.apply(batch(vec![changed.clone()])).unwrap();
    one.apply(batch(vec![changed])).unwrap();
    assert_eq!(partition(&piped), partition(&one));
}

#[test]
fn written_groups_go_to_the_spent_sink_once_each() {
    let records = tangled(400);
    let (_d1, mut one) = store();
    one.apply(batch(records.clone())).unwrap();

    let (_d2, mut piped) = store();
    let groups = stream_groups(&records, &piped);
    let n = groups.len();
    let (sink, spent) = std::sync::mpsc::channel();
    piped.set_stream_spent(Some(sink));
    let summary = piped.apply_stream(groups.into_iter()).unwrap();
    assert_eq!(summary.applied, 400);
    assert_eq!(spent.try_iter().count(), n, "one per written group");
    assert_eq!(partition(&piped), partition(&one));
    // The sink served that stream only; a closed one is no error either.
    let policy = piped.policy().clone();
    let one_group = |rs: &[SourceRecord]| vec![vec![batch(rs.to_vec()).prepare(&policy)]];
    piped
        .apply_stream(one_group(&records[..10]).into_iter())
        .unwrap();
    assert_eq!(spent.try_iter().count(), 0);
    let (sink, closed) = std::sync::mpsc::channel();
    drop(closed);
    piped.set_stream_spent(Some(sink));
    let mut newer = records[..10].to_vec();
    for r in &mut newer {
        r.version += 1;
        r.attributes.company = Some("Newco".into());
    }
    let summary = piped.apply_stream(one_group(&newer).into_iter()).unwrap();
    assert_eq!(summary.applied, 10);
}

#[test]
fn the_pipelined_writer_checkpoints_past_its_threshold() {
    let records = tangled(400);
    // Returns the store, its directory and the WAL file's size right after the stream.
    let stream = |checkpoint_pages: Option<u32>| {
        let (dir, mut s) = store();
        if let Some(pages) = checkpoint_pages {
            s.set_stream_checkpoint_pages(pages);
        }
        // A commit per group: the WAL is checked for after commits.
        s.set_stream_commit(StreamCommit {
            records: 1,
            interval: std::time::Duration::ZERO,
        });
        let policy = s.policy().clone();
        let groups: Vec<_> = records
            .chunks(40)
            .map(|c| vec![batch(c.to_vec()).prepare(&policy)])
            .collect();
        let summary = s.apply_stream(groups.into_iter()).unwrap();
        assert_eq!(summary.applied, 400);
        let wal = std::fs::metadata(dir.path().join("t.db-wal"))
            .unwrap()
            .len();
        (dir, s, wal)
    };
    let (d_default, s_default, wal_default) = stream(None);
    let (d_every, s_every, wal_every) = stream(Some(1));
    assert_eq!(partition(&s_every), partition(&s_default));
    assert_eq!(evidence(&d_every), evidence(&d_default));
    // Below the default threshold nothing is checkpointed and the WAL holds every group. Past
    // a threshold of one page, a commit starts a copy on the checkpointer thread, the writer
    // waits for it after the next commit (the WAL is past twice the threshold) and copies the
    // rest, and the commit after starts the WAL over: it never holds much more than two groups.
    assert!(
        wal_every * 2 < wal_default,
        "WAL {wal_every} bytes with a checkpoint after every group, {wal_default} without"
    );
    // The checkpointed store took every record.
    let conn = rusqlite::Connection::open(d_every.path().join("t.db")).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM source_records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 400);
}

/// Records committed to the store at `path`, seen through a connection of its own.
fn committed_records(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("SELECT count(*) FROM source_records", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn the_pipelined_writer_commits_several_groups_per_transaction() {
    let records = tangled(400);
    let (d1, mut one) = store();
    one.apply(batch(records.clone())).unwrap();

    let (dir, mut piped) = store();
    piped.set_stream_commit(StreamCommit {
        records: 100,
        interval: std::time::Duration::from_secs(3600),
    });
    let policy = piped.policy().clone();
    let mut chunks = records.chunks(40).map(|c| c.to_vec());
    let mut pulled = 0;
    let mut seen = Vec::new();
    // The writer commits once a transaction holds 100 records: after groups 3, 6 and 9 (120
    // records each), and the rest at the end.
    let groups = std::iter::from_fn(|| {
        pulled += 1;
        seen.push(committed_records(&dir.path().join("t.db")));
        chunks.next().map(|c| vec![batch(c).prepare(&policy)])
    });
    let summary = piped.apply_stream(groups).unwrap();
    assert_eq!(summary.applied, 400);
    assert_eq!(pulled, 11);
    // When group i + 1 is asked for, groups 1 to i - 1 have been written and group i may be.
    for (i, n) in seen.iter().enumerate() {
        let (at_least, at_most) = (120 * (i.saturating_sub(1) / 3), 120 * (i / 3));
        assert!(
            (at_least..=at_most).contains(&(*n as usize)) && n % 120 == 0,
            "{n} records committed when group {} was asked for: {seen:?}",
            i + 1
        );
    }
    assert_eq!(
        committed_records(&dir.path().join("t.db")),
        400,
        "everything is committed on return"
    );
    assert_eq!(partition(&piped), partition(&one));
    assert_eq!(evidence(&dir), evidence(&d1));
}

#[test]
fn the_pipelined_writer_commits_a_group_nobody_follows_within_its_interval() {
    let records = tangled(80);
    let (dir, mut piped) = store();
    piped.set_stream_commit(StreamCommit {
        records: 1_000_000,
        interval: std::time::Duration::from_millis(50),
    });
    let policy = piped.policy().clone();
    let mut chunks = records.chunks(40).map(|c| c.to_vec());
    let mut pulled = 0;
    let mut waited_for_first = None;
    // A slow source: the second group comes only once the first is committed (or after 20 s,
    // which fails the test), as a stream that waits for its input would see it.
    let groups = std::iter::from_fn(|| {
        pulled += 1;
        if pulled == 2 {
            let started = std::time::Instant::now();
            while committed_records(&dir.path().join("t.db")) < 40
                && started.elapsed().as_secs() < 20
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            waited_for_first = Some(committed_records(&dir.path().join("t.db")));
        }
        chunks.next().map(|c| vec![batch(c).prepare(&policy)])
    });
    let summary = piped.apply_stream(groups).unwrap();
    assert_eq!(summary.applied, 80);
    assert_eq!(
        waited_for_first,
        Some(40),
        "the first group was committed unasked"
    );
    assert_eq!(committed_records(&dir.path().join("t.db")), 80);
}

#[test]
fn the_pipelined_writer_replans_when_another_connection_writes() {
    let records = tangled(300);
    let extra = vec![
        rec("web", "w1", 1, "Ann", &[("email", "p0@x.com")]),
        rec("web", "w2", 1, "Cy", &[("email", "p40@x.com")]),
    ];
    let (_d1, mut one) = store();
    let mut all = records.clone();
    all.extend(extra.clone());
    one.apply(batch(all)).unwrap();
    let reference = partition(&one);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let mut piped = Store::open(&path, StoreOptions::default()).unwrap();
    let policy = piped.policy().clone();
    let mut chunks = records
        .chunks(50)
        .map(|c| c.to_vec())
        .collect::<Vec<_>>()
        .into_iter();
    let mut pulled = 0;
    // While the third group is planned, another connection writes records that join
    // customers of the groups in flight.
    let groups = std::iter::from_fn(|| {
        pulled += 1;
        if pulled == 3 {
            let mut other = Store::open(&path, StoreOptions::default()).unwrap();
            other.apply(batch(extra.clone())).unwrap();
        }
        chunks.next().map(|c| vec![batch(c).prepare(&policy)])
    });
    let summary = piped.apply_stream(groups).unwrap();
    assert_eq!(summary.applied, 300);
    assert_eq!(partition(&piped), reference);
}

/// Two records of one person that share no identifier (same name and birth date, one address)
/// and two that share an email.
fn people_for_matching() -> Vec<SourceRecord> {
    let mut a = rec("crm", "a", 1, "Margaret", &[("email", "mlarsen@x.com")]);
    let mut b = rec(
        "billing",
        "b",
        1,
        "Margaret",
        &[("email", "margaret@y.com")],
    );
    for r in [&mut a, &mut b] {
        r.attributes.family_name = Some("Larsen".into());
        r.attributes.birth_date = Some("1980-02-03".into());
        r.attributes.addresses = vec![onetruth_model::Address {
            line1: Some("12 Elm Street".into()),
            postal_code: Some("02116".into()),
            city: Some("Boston".into()),
            ..Default::default()
        }];
    }
    let c = rec("crm", "c", 1, "Ann", &[("email", "ann@z.com")]);
    let d = rec("helpdesk", "d", 1, "Ann", &[("email", "ANN@z.com ")]);
    vec![a, b, c, d]
}

#[test]
fn identifier_matching_links_only_through_shared_identifiers() {
    let dir = tempfile::tempdir().unwrap();
    let identifiers = onetruth_resolve::ResolverConfig {
        matching: onetruth_resolve::Matching::Identifiers,
        ..Default::default()
    };
    let open = |name: &str, resolution: &onetruth_resolve::ResolverConfig| {
        Store::open(
            &dir.path().join(name),
            StoreOptions {
                resolution: resolution.clone(),
                ..StoreOptions::default()
            },
        )
        .unwrap()
    };
    let mut s = open("ids.db", &identifiers);
    s.apply(batch(people_for_matching())).unwrap();
    let want_ids = vec![
        vec!["billing:b".to_string()],
        vec!["crm:a".to_string()],
        vec!["crm:c".to_string(), "helpdesk:d".to_string()],
    ];
    assert_eq!(partition(&s), want_ids);
    let conn = rusqlite::Connection::open(dir.path().join("ids.db")).unwrap();
    let rows: Vec<(String, String, f64)> = conn
        .prepare("SELECT kind, rule, weight FROM evidence")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows, vec![("identifier".into(), "accepted".into(), 20.0)]);
    // A reopened store (the resolver loaded from the tables) keeps linking by identifiers.
    drop(s);
    let mut s = open("ids.db", &identifiers);
    let mut e = rec("crm", "e", 1, "Margaret", &[("email", "MARGARET@y.com")]);
    e.attributes.family_name = Some("Larsen".into());
    s.apply(batch(vec![e])).unwrap();
    assert_eq!(
        partition(&s),
        vec![
            vec!["billing:b".to_string(), "crm:e".to_string()],
            vec!["crm:a".to_string()],
            vec!["crm:c".to_string(), "helpdesk:d".to_string()],
        ]
    );

    // A probabilistic store links a and b by scoring, even from a batch prepared for
    // identifier matching (the store recomputes what scoring needs).
    let mut p = open("prob.db", &Default::default());
    let prepared = batch(people_for_matching()).prepare_for(
        &onetruth_resolve::IdentifierPolicy::default(),
        onetruth_resolve::Matching::Identifiers,
    );
    p.apply_prepared(prepared).unwrap();
    let scored = vec![
        vec!["billing:b".to_string(), "crm:a".to_string()],
        vec!["crm:c".to_string(), "helpdesk:d".to_string()],
    ];
    assert_eq!(partition(&p), scored);
    // Switching the store to identifier matching and re-resolving splits what only scoring
    // joined.
    drop(p);
    let mut p = open("prob.db", &identifiers);
    p.reresolve().unwrap();
    assert_eq!(partition(&p), want_ids);
}

/// The groups of `records` for a stream: two batches per 60 records, then a repeat of the
/// first 50 (unchanged records, which make the planner read what the writer committed).
fn stream_groups(records: &[SourceRecord], s: &Store) -> Vec<Vec<onetruth_store::PreparedBatch>> {
    let policy = s.policy().clone();
    let mut groups: Vec<Vec<onetruth_store::PreparedBatch>> = records
        .chunks(60)
        .map(|c| {
            let (a, b) = c.split_at(c.len() / 2);
            vec![
                batch(a.to_vec()).prepare(&policy),
                batch(b.to_vec()).prepare(&policy),
            ]
        })
        .collect();
    groups.push(vec![batch(records[..50].to_vec()).prepare(&policy)]);
    groups
}

#[test]
fn a_first_load_is_written_beside_the_store_and_moved_into_place_whole() {
    let records = tangled(400);
    let (d1, mut wal) = store();
    let groups = stream_groups(&records, &wal);
    wal.apply_stream(groups.into_iter()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let loading = dir.path().join("t.db.loading");
    let mut load = InitialLoad::begin(&path, StoreOptions::default())
        .unwrap()
        .expect("no store yet: a first load");
    // A commit per group, so that the planner reads committed rows of a file without a journal.
    load.store().set_stream_commit(StreamCommit {
        records: 1,
        interval: std::time::Duration::ZERO,
    });
    let groups = stream_groups(&records, load.store());
    let summary = load.store().apply_stream(groups.into_iter()).unwrap();
    assert_eq!((summary.applied, summary.unchanged), (400, 50));
    assert!(!path.exists(), "nothing at the store's path until the end");
    assert!(loading.exists());
    let reader = Store::open(
        &path,
        StoreOptions {
            read_only: true,
            ..StoreOptions::default()
        },
    );
    let message = reader.err().unwrap().to_string();
    assert!(
        message.contains("first ingest is still running or was interrupted"),
        "{message}"
    );
    load.finish().unwrap();
    assert!(!loading.exists());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["t.db"], "no journal, WAL or loading file left");

    let mut s = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(partition(&s), partition(&wal));
    assert_eq!(evidence(&dir), evidence(&d1));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (mode, check): (String, String) = (
        conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap(),
        conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap(),
    );
    assert_eq!((mode.as_str(), check.as_str()), ("wal", "ok"));
    // The store goes on like any other, and a second load is a normal one.
    let mut changed = records[0].clone();
    changed.version = 2;
    changed.attributes.given_name = Some("Zoe".into());
    s.apply(batch(vec![changed.clone()])).unwrap();
    wal.apply(batch(vec![changed])).unwrap();
    assert_eq!(partition(&s), partition(&wal));
    assert!(
        InitialLoad::begin(&path, StoreOptions::default())
            .unwrap()
            .is_none()
    );
}

#[test]
fn an_unfinished_first_load_leaves_no_store_and_the_next_starts_over() {
    let records = tangled(100);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let loading = dir.path().join("t.db.loading");
    let mut load = InitialLoad::begin(&path, StoreOptions::default())
        .unwrap()
        .unwrap();
    let groups = stream_groups(&records, load.store());
    load.store().apply_stream(groups.into_iter()).unwrap();
    drop(load);
    assert!(!path.exists() && !loading.exists());

    // What a crash leaves: a loading file nobody holds, and a stray WAL beside it.
    std::fs::write(&loading, b"half a store").unwrap();
    std::fs::write(dir.path().join("t.db.loading-wal"), b"stale frames").unwrap();
    let mut load = InitialLoad::begin(&path, StoreOptions::default())
        .unwrap()
        .unwrap();
    assert!(!dir.path().join("t.db.loading-wal").exists());
    let groups = stream_groups(&records, load.store());
    load.store().apply_stream(groups.into_iter()).unwrap();
    load.finish().unwrap();
    let s = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(s.stats().unwrap().records, 100);
}

#[test]
fn a_first_load_is_refused_while_another_runs_and_never_replaces_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let first = InitialLoad::begin(&path, StoreOptions::default())
        .unwrap()
        .unwrap();
    let second = InitialLoad::begin(&path, StoreOptions::default());
    assert!(
        matches!(second, Err(StoreError::LoadInProgress { .. })),
        "{:?}",
        second.err()
    );
    let message = InitialLoad::begin(&path, StoreOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("t.db.loading is locked"), "{message}");

    // A store created meanwhile (by a writer that does not load first) wins.
    let mut other = Store::open(&path, StoreOptions::default()).unwrap();
    other
        .apply(batch(vec![rec(
            "crm",
            "kept",
            1,
            "Ann",
            &[("email", "a@x.com")],
        )]))
        .unwrap();
    drop(other);
    let finished = first.finish();
    assert!(
        matches!(finished, Err(StoreError::CreatedDuringLoad { .. })),
        "{:?}",
        finished.err()
    );
    assert!(!dir.path().join("t.db.loading").exists());
    let s = Store::open(&path, StoreOptions::default()).unwrap();
    assert!(s.record_id("crm", "kept").unwrap().is_some());
}

#[test]
fn a_stream_applies_curator_commands_in_order_on_its_warm_resolver() {
    use std::sync::{Arc, Mutex};
    let (d, mut s) = store();
    let prepared =
        |records: Vec<SourceRecord>| batch(records).prepare(&IdentifierPolicy::default());
    s.apply(batch(vec![
        rec("crm", "1", 1, "Jane", &[("email", "jane@x.com")]),
        rec("crm", "2", 1, "Jane", &[("email", "jane@x.com")]),
    ]))
    .unwrap();
    let (a, b) = (
        s.record_id("crm", "1").unwrap().unwrap(),
        s.record_id("crm", "2").unwrap().unwrap(),
    );
    assert_eq!(s.stats().unwrap().customers, 1);
    s.warm_up().unwrap();
    assert!(s.is_warm());
    let acked = Arc::new(Mutex::new(false));
    let flag = acked.clone();
    let never = PreparedBatch::command(
        WriteCommand::Curate(CuratorDecision::NeverMerge(a, b)),
        Some(OnCommit::new(move || *flag.lock().unwrap() = true)),
    );
    // The command shares a group with records on both sides: it is planned alone, in order.
    let groups = vec![vec![
        prepared(vec![rec("crm", "3", 1, "Ann", &[("email", "ann@x.com")])]),
        never,
        prepared(vec![rec("crm", "4", 1, "Jane", &[("email", "jane@x.com")])]),
    ]];
    s.apply_stream(groups.into_iter()).unwrap();
    assert!(
        *acked.lock().unwrap(),
        "the command was acknowledged after its commit"
    );
    let customer_of = |id: &str| {
        let c: i64 = rusqlite::Connection::open(d.path().join("t.db"))
            .unwrap()
            .query_row(
                "SELECT customer_id FROM source_records WHERE source_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        c
    };
    assert_ne!(customer_of("1"), customer_of("2"), "never-merge applied");
    assert_ne!(customer_of("3"), customer_of("1"));
    // Record 4 came after the decision: it joins one of them, never both.
    assert!(customer_of("4") == customer_of("1") || customer_of("4") == customer_of("2"));
    // The resolver stayed warm: no reload happened for the command.
    assert!(s.is_warm());
    let summary = s
        .apply_stream(vec![vec![PreparedBatch::command(WriteCommand::Reresolve, None)]].into_iter())
        .unwrap();
    assert_eq!(
        summary.merges + summary.splits,
        0,
        "re-resolving changes nothing here"
    );
}

#[test]
fn a_backlog_commits_in_large_transactions_and_live_groups_at_once() {
    use std::sync::{Arc, Mutex};
    // What another connection saw when the first group's acknowledgement ran.
    let first_ack_saw = |backlog: bool| {
        let (d, mut s) = store();
        let path = d.path().join("t.db");
        s.set_stream_commit(StreamCommit {
            records: 1_000_000,
            interval: std::time::Duration::ZERO,
        });
        s.set_stream_backlog_interval(std::time::Duration::from_secs(3600));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let groups: Vec<Vec<PreparedBatch>> = (0..4)
            .map(|g| {
                let mut b = batch(vec![rec(
                    "crm",
                    &g.to_string(),
                    1,
                    "Jane",
                    &[("email", &format!("{g}@x.com"))],
                )]);
                let (seen, path) = (seen.clone(), path.clone());
                b.on_commit = Some(OnCommit::new(move || {
                    seen.lock().unwrap().push(committed_records(&path))
                }));
                let mut p = b.prepare(&IdentifierPolicy::default());
                p.set_backlog(backlog);
                vec![p]
            })
            .collect();
        s.apply_stream(groups.into_iter()).unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 4);
        seen[0]
    };
    assert_eq!(first_ack_saw(false), 1, "live: every group commits at once");
    assert_eq!(
        first_ack_saw(true),
        4,
        "backlog: one transaction for all four groups"
    );
}
