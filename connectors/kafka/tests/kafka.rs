//! The Kafka source against a real broker (tansu, through `onetruth-testkit`): batches and
//! checkpoints, resuming from stored checkpoints, Debezium events, bad messages, group offsets
//! after the acknowledgement only, rebalances between two consumers, the dead-letter topic.
//!
//! The store is simulated by [`Store`]: a batch's records and checkpoints are applied together,
//! then its acknowledgement runs, as the pipeline does after its SQLite commit. Records are
//! mapped by a real [`Mapper`]; failures are quarantined, as the pipeline does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use onetruth_connect::{
    CheckpointReader, Checkpoints, Delivered, Manifest, Mapper, Poll, RawBatch, RawBody, RawRecord,
    Rejected, Source, SourceError,
};
use onetruth_connector_kafka::{KafkaParams, KafkaSource};
use onetruth_model::{Normalizer, Op};
use onetruth_testkit::{Broker, Record};
use serde_json::{Value, json};

/// The store, as far as a source sees it: checkpoints, and what was applied.
#[derive(Default)]
struct Store {
    checkpoints: Mutex<Checkpoints>,
    /// Positions of applied records (mapped or quarantined), in commit order.
    applied: Mutex<Vec<String>>,
    quarantined: Mutex<Vec<Rejected>>,
}

impl CheckpointReader for Store {
    fn checkpoints(&self) -> Result<Checkpoints, SourceError> {
        Ok(self.checkpoints.lock().unwrap().clone())
    }
}

impl Store {
    fn with(checkpoints: &[(&str, &str)]) -> Arc<Store> {
        let store = Store::default();
        *store.checkpoints.lock().unwrap() = checkpoints
            .iter()
            .map(|(s, p)| (s.to_string(), p.to_string()))
            .collect();
        Arc::new(store)
    }

    /// Apply a batch in one "transaction" (records, quarantine, checkpoints), then run its
    /// acknowledgement, as the pipeline does after its commit.
    fn commit(&self, mapper: &Mapper, batch: RawBatch) -> Vec<RawRecord> {
        let mut delivered = Delivered::default();
        for r in &batch.records {
            if let Err(e) = mapper.map(r, 1) {
                let raw = match &r.body {
                    RawBody::Parsed(o) => r
                        .text
                        .clone()
                        .unwrap_or_else(|| Value::Object(o.clone()).to_string()),
                    RawBody::Json(t) | RawBody::Malformed { text: t, .. } => t.clone(),
                };
                delivered.quarantined.push(Rejected {
                    position: r.position.clone(),
                    raw,
                    reason: e.to_string(),
                });
            }
        }
        {
            let mut applied = self.applied.lock().unwrap();
            applied.extend(batch.records.iter().map(|r| r.position.0.clone()));
            let mut cps = self.checkpoints.lock().unwrap();
            for c in &batch.checkpoints {
                cps.insert(c.stream.clone(), c.position.clone());
            }
            self.quarantined
                .lock()
                .unwrap()
                .extend(delivered.quarantined.iter().cloned());
        }
        if let Some(ack) = batch.ack {
            ack.committed(&delivered);
        }
        batch.records
    }

    fn applied(&self) -> Vec<String> {
        self.applied.lock().unwrap().clone()
    }

    fn checkpoints_now(&self) -> Checkpoints {
        self.checkpoints.lock().unwrap().clone()
    }
}

fn mapper() -> Mapper {
    let manifest: Manifest =
        serde_json::from_value(json!({"source": "crm", "record": {"id": "id"}})).unwrap();
    Mapper::new(&manifest, &Normalizer::default()).unwrap()
}

fn params(broker: &Broker, group: &str, transport: Value) -> KafkaParams {
    let mut p = json!({
        "brokers": broker.bootstrap(),
        "group_id": group,
        "poll_timeout_ms": 50,
        // Rebalances are noticed on the next heartbeat: keep tests quick.
        "properties": {"heartbeat.interval.ms": "100", "session.timeout.ms": "6000"}
    });
    for (k, v) in transport.as_object().unwrap() {
        if k == "properties" {
            for (pk, pv) in v.as_object().unwrap() {
                p["properties"][pk] = pv.clone();
            }
        } else {
            p[k] = v.clone();
        }
    }
    serde_json::from_value(p).unwrap()
}

fn source(params: &KafkaParams, store: &Arc<Store>) -> KafkaSource {
    KafkaSource::new(params, "crm", store.clone(), &std::env::temp_dir())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Poll, committing every batch, until `n` records were applied; returns them in order.
fn read(source: &mut KafkaSource, store: &Store, n: usize, timeout: Duration) -> Vec<RawRecord> {
    let mapper = mapper();
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "read {} of {n} records in {timeout:?}: {:?}",
            out.len(),
            out.iter()
                .map(|r: &RawRecord| &r.position.0)
                .collect::<Vec<_>>()
        );
        match source.poll(1000).unwrap_or_else(|e| panic!("{e}")) {
            Poll::Records(batch) => out.extend(store.commit(&mapper, batch)),
            Poll::Idle(_) => {}
            Poll::End => panic!("a kafka source does not end"),
        }
    }
    out
}

/// Poll for `time`, committing; everything applied in that time.
fn read_for(source: &mut KafkaSource, store: &Store, time: Duration) -> Vec<RawRecord> {
    let mapper = mapper();
    let deadline = Instant::now() + time;
    let mut out = Vec::new();
    while Instant::now() < deadline {
        if let Poll::Records(batch) = source.poll(1000).unwrap_or_else(|e| panic!("{e}")) {
            out.extend(store.commit(&mapper, batch));
        }
    }
    out
}

/// Poll until the source has partitions assigned.
fn await_assignment(source: &mut KafkaSource, store: &Store) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while source.assignment().is_empty() {
        assert!(Instant::now() < deadline, "no partitions assigned");
        if let Poll::Records(batch) = source.poll(1000).unwrap_or_else(|e| panic!("{e}")) {
            store.commit(&mapper(), batch);
        }
    }
}

fn positions(records: &[RawRecord]) -> Vec<&str> {
    records.iter().map(|r| r.position.0.as_str()).collect()
}

#[test]
fn json_messages_become_batches_with_next_offsets_as_checkpoints() {
    let broker = Broker::start();
    broker.create_topic("contacts", 2);
    broker.produce_records(
        "contacts",
        (0..5).map(|i| {
            Record::value(format!(r#"{{"id":"a{i}","email":"a{i}@example.com"}}"#))
                .key(format!("a{i}"))
                .partition(0)
                .header("tenant", "eu")
        }),
    );
    broker.produce_records(
        "contacts",
        (0..3).map(|i| Record::value(format!(r#"{{"id":"b{i}"}}"#)).partition(1)),
    );
    let store = Store::with(&[]);
    let p = params(&broker, "g1", json!({"topics": ["contacts"]}));
    let mut s = source(&p, &store);
    let records = read(&mut s, &store, 8, Duration::from_secs(20));

    let mut got: Vec<&str> = positions(&records);
    got.sort();
    assert_eq!(
        got,
        [
            "contacts/0@0",
            "contacts/0@1",
            "contacts/0@2",
            "contacts/0@3",
            "contacts/0@4",
            "contacts/1@0",
            "contacts/1@1",
            "contacts/1@2"
        ]
    );
    let first = records
        .iter()
        .find(|r| r.position.0 == "contacts/0@0")
        .unwrap();
    assert_eq!(
        first.body,
        RawBody::Json(r#"{"id":"a0","email":"a0@example.com"}"#.into()),
        "the payload as delivered"
    );
    let meta = first.meta.as_ref().unwrap();
    assert_eq!(meta.fields["key"], "a0");
    assert_eq!(meta.fields["topic"], "contacts");
    assert_eq!(meta.fields["partition"], 0);
    assert_eq!(meta.fields["offset"], 0);
    assert_eq!(meta.fields["headers"], json!({"tenant": "eu"}));
    let ts = meta.fields["timestamp"].as_i64().unwrap();
    assert!(ts > 1_700_000_000_000, "{ts}");
    let b0 = records
        .iter()
        .find(|r| r.position.0 == "contacts/1@0")
        .unwrap();
    let meta = b0.meta.as_ref().unwrap();
    assert!(!meta.fields.contains_key("key"), "no key, no _meta.key");
    assert!(!meta.fields.contains_key("headers"));

    // Checkpoints: the next offset to read, per partition.
    assert_eq!(
        store.checkpoints_now(),
        BTreeMap::from([
            ("contacts/0".to_string(), "5".to_string()),
            ("contacts/1".to_string(), "3".to_string())
        ])
    );
    // Nothing more.
    assert!(read_for(&mut s, &store, Duration::from_millis(300)).is_empty());
    s.close();
}

#[test]
fn a_source_resumes_from_stored_checkpoints() {
    let broker = Broker::start();
    broker.create_topic("orders", 3);
    for p in 0..3 {
        broker.produce_records(
            "orders",
            (0..10).map(|i| Record::value(format!(r#"{{"id":"{p}-{i}"}}"#)).partition(p)),
        );
    }
    // Partition 0 was read up to offset 7, partition 1 to its end; 2 never.
    let store = Store::with(&[("orders/0", "7"), ("orders/1", "10")]);
    let p = params(&broker, "g-resume", json!({"topics": ["orders"]}));
    let mut s = source(&p, &store);
    let records = read(&mut s, &store, 13, Duration::from_secs(20));
    let mut got: Vec<&str> = positions(&records);
    got.sort();
    let mut want: Vec<String> = (7..10).map(|o| format!("orders/0@{o}")).collect();
    want.extend((0..10).map(|o| format!("orders/2@{o}")));
    want.sort();
    assert_eq!(got, want);
    assert!(read_for(&mut s, &store, Duration::from_millis(300)).is_empty());
    s.close();

    // Restarted (a new consumer, the same group): from where the store stands.
    broker.produce_records("orders", [Record::value(r#"{"id":"new"}"#).partition(1)]);
    let mut s = source(&p, &store);
    let records = read(&mut s, &store, 1, Duration::from_secs(20));
    assert_eq!(positions(&records), ["orders/1@10"]);
    s.close();
}

#[test]
fn latest_starts_new_partitions_at_their_end() {
    let broker = Broker::start();
    broker.create_topic("calls", 2);
    for p in 0..2 {
        broker.produce_records(
            "calls",
            (0..4).map(|i| Record::value(format!(r#"{{"id":"old-{p}-{i}"}}"#)).partition(p)),
        );
    }
    // Partition 1 has a checkpoint: it is read from there whatever `start` says.
    let store = Store::with(&[("calls/1", "2")]);
    let p = params(
        &broker,
        "g-latest",
        json!({"topics": ["calls"], "start": "latest"}),
    );
    let mut s = source(&p, &store);
    await_assignment(&mut s, &store);
    broker.produce_records("calls", [Record::value(r#"{"id":"new"}"#).partition(0)]);
    let records = read(&mut s, &store, 3, Duration::from_secs(20));
    let mut got: Vec<&str> = positions(&records);
    got.sort();
    assert_eq!(got, ["calls/0@4", "calls/1@2", "calls/1@3"]);
    s.close();
}

/// Debezium's PostgreSQL connector, `inventory.customers`, without the schema envelope.
fn debezium(op: &str, before: Value, after: Value, lsn: i64) -> String {
    json!({
        "before": before,
        "after": after,
        "source": {
            "version": "2.7.3.Final", "connector": "postgresql", "name": "dbserver1",
            "ts_ms": 1_733_600_000_000i64 + lsn, "snapshot": if op == "r" { "true" } else { "false" },
            "db": "inventory", "sequence": format!("[null,\"{lsn}\"]"), "schema": "inventory",
            "table": "customers", "txId": 770 + lsn, "lsn": lsn, "xmin": null
        },
        "transaction": null,
        "op": op,
        "ts_ms": 1_733_600_000_500i64 + lsn
    })
    .to_string()
}

#[test]
fn debezium_events_upsert_delete_and_skip_tombstones() {
    let broker = Broker::start();
    broker.create_topic("dbserver1.inventory.customers", 1);
    let row = |email: &str| json!({"id": 1001, "first_name": "Sally", "last_name": "Thomas", "email": email});
    // Keys as Kafka Connect's JSON converter writes them, with their schema.
    let key = |id: i64| {
        format!(
            r#"{{"schema":{{"type":"struct","fields":[{{"type":"int32","optional":false,"field":"id"}}],"optional":false,"name":"dbserver1.inventory.customers.Key"}},"payload":{{"id":{id}}}}}"#
        )
    };
    let enveloped = json!({
        "schema": {"type": "struct", "fields": [], "optional": false,
                   "name": "dbserver1.inventory.customers.Envelope", "version": 2},
        "payload": serde_json::from_str::<Value>(&debezium("u", row("sally.thomas@acme.com"), row("sally@thomas.example"), 34_000_400)).unwrap()
    })
    .to_string();
    let events = [
        Record::value(debezium(
            "r",
            Value::Null,
            json!({"id": 1002, "first_name": "George", "last_name": "Bailey", "email": "gbailey@foobar.com"}),
            34_000_100,
        )),
        Record::value(debezium(
            "c",
            Value::Null,
            row("sally.thomas@acme.com"),
            34_000_200,
        )),
        Record::value(enveloped),
        // PostgreSQL's default replica identity: the key columns only.
        Record::value(debezium(
            "d",
            json!({"id": 1001, "first_name": null, "last_name": null, "email": null}),
            Value::Null,
            34_000_600,
        )),
        Record::tombstone(),
    ];
    broker.produce_records(
        "dbserver1.inventory.customers",
        events
            .into_iter()
            .zip([1002, 1001, 1001, 1001, 1001])
            .map(|(r, id)| r.key(key(id))),
    );
    let store = Store::with(&[]);
    let p = params(
        &broker,
        "g-dbz",
        json!({"topics": ["dbserver1.inventory.customers"], "format": "debezium", "key": "json"}),
    );
    let mut s = source(&p, &store);
    let records = read(&mut s, &store, 4, Duration::from_secs(20));
    assert_eq!(
        positions(&records),
        [
            "dbserver1.inventory.customers/0@0",
            "dbserver1.inventory.customers/0@1",
            "dbserver1.inventory.customers/0@2",
            "dbserver1.inventory.customers/0@3"
        ]
    );
    let summary: Vec<(bool, Option<i64>, Value)> = records
        .iter()
        .map(|r| {
            let meta = r.meta.as_ref().unwrap();
            let RawBody::Parsed(row) = &r.body else {
                panic!("{:?}", r.body)
            };
            (meta.delete, meta.version, row["email"].clone())
        })
        .collect();
    assert_eq!(
        summary,
        [
            (false, Some(34_000_100), json!("gbailey@foobar.com")),
            (false, Some(34_000_200), json!("sally.thomas@acme.com")),
            (false, Some(34_000_400), json!("sally@thomas.example")),
            (true, Some(34_000_600), Value::Null),
        ]
    );
    // The key is readable as `_meta.key.id`; the text is the message as delivered.
    assert_eq!(
        records[3].meta.as_ref().unwrap().fields["key"],
        json!({"id": 1001})
    );
    let RawBody::Parsed(before) = &records[3].body else {
        unreachable!()
    };
    assert_eq!(before["id"], 1001);
    let text: Value = serde_json::from_str(records[2].text.as_deref().unwrap()).unwrap();
    assert!(text.get("schema").is_some(), "the whole enveloped message");

    // Mapped through a manifest keyed on the message key: the delete is a delete, and the
    // LSNs are the versions.
    let manifest: Manifest = serde_json::from_value(json!({
        "source": "inventory",
        "record": {"id": "_meta.key.id"},
        "identifiers": [{"kind": "email", "value": "email"}]
    }))
    .unwrap();
    let mapper = Mapper::new(&manifest, &Normalizer::default()).unwrap();
    let mapped: Vec<(String, Op, i64)> = records
        .iter()
        .map(|r| {
            let m = mapper.map(r, 1).unwrap_or_else(|e| panic!("{e}"));
            (m.source_id, m.op, m.version)
        })
        .collect();
    assert_eq!(
        mapped,
        [
            ("1002".to_string(), Op::Upsert, 34_000_100),
            ("1001".to_string(), Op::Upsert, 34_000_200),
            ("1001".to_string(), Op::Upsert, 34_000_400),
            ("1001".to_string(), Op::Delete, 34_000_600),
        ]
    );
    // The tombstone is not a record, but its offset is behind the checkpoint.
    assert!(read_for(&mut s, &store, Duration::from_millis(300)).is_empty());
    assert_eq!(
        store.checkpoints_now()["dbserver1.inventory.customers/0"],
        "5"
    );
    s.close();
}

#[test]
fn bad_messages_are_malformed_and_the_partition_moves_on() {
    let broker = Broker::start();
    broker.create_topic("billing", 1);
    let values: [&[u8]; 6] = [
        br#"{"id":"ok1"}"#,
        b"\xff\xfe not utf-8",
        b"[1,2,3]",
        br#"{"id": "broken"#,
        br#"{"no_id":true}"#,
        br#"{"id":"ok2"}"#,
    ];
    broker.produce_records(
        "billing",
        values
            .iter()
            .map(|v| Record::value(v.to_vec()).partition(0)),
    );
    let store = Store::with(&[]);
    let p = params(&broker, "g-bad", json!({"topics": ["billing"]}));
    let mut s = source(&p, &store);
    let records = read(&mut s, &store, 6, Duration::from_secs(20));
    let kinds: Vec<(&str, Option<&str>)> = records
        .iter()
        .map(|r| {
            (
                r.position.0.as_str(),
                match &r.body {
                    RawBody::Malformed { reason, .. } => Some(reason.as_str()),
                    _ => None,
                },
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("billing/0@0", None),
            ("billing/0@1", Some("message value is not UTF-8")),
            ("billing/0@2", Some("message value is not a JSON object")),
            (
                "billing/0@3",
                Some("message value is not JSON: EOF while parsing a string at line 1 column 14")
            ),
            ("billing/0@4", None),
            ("billing/0@5", None),
        ]
    );
    let quarantined: Vec<(String, String)> = store
        .quarantined
        .lock()
        .unwrap()
        .iter()
        .map(|q| (q.position.0.clone(), q.reason.clone()))
        .collect();
    assert_eq!(
        quarantined.iter().map(|q| q.0.as_str()).collect::<Vec<_>>(),
        ["billing/0@1", "billing/0@2", "billing/0@3", "billing/0@4"],
        "{quarantined:?}"
    );
    assert_eq!(quarantined[3].1, "record.id: missing field `id`");
    assert_eq!(store.checkpoints_now()["billing/0"], "6");
    s.close();
}

/// Poll (so the consumer serves its callbacks) until the group's committed offsets are `want`.
fn await_committed(
    broker: &Broker,
    source: &mut KafkaSource,
    group: &str,
    topic: &str,
    want: &BTreeMap<i32, i64>,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = broker.committed_offsets(group, topic);
        if &got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "committed {got:?}, want {want:?}"
        );
        let _ = source.poll(1);
    }
}

#[test]
fn group_offsets_are_committed_after_the_ack_and_never_before() {
    let broker = Broker::start();
    broker.create_topic("tickets", 1);
    broker.produce_records(
        "tickets",
        (0..4).map(|i| Record::value(format!(r#"{{"id":"t{i}"}}"#)).partition(0)),
    );
    let store = Store::with(&[]);
    let p = params(&broker, "g-ack", json!({"topics": ["tickets"]}));
    let mut s = source(&p, &store);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut held = Vec::new();
    let mut count = 0;
    while count < 4 {
        assert!(Instant::now() < deadline);
        if let Poll::Records(b) = s.poll(1000).unwrap() {
            count += b.records.len();
            held.push(b);
        }
    }
    // Read, not committed: nothing in the group, however long we wait.
    for _ in 0..10 {
        assert!(matches!(s.poll(10).unwrap(), Poll::Idle(_)));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        broker.committed_offsets("g-ack", "tickets"),
        BTreeMap::new()
    );
    let mapper = mapper();
    for b in held {
        store.commit(&mapper, b);
    }
    await_committed(
        &broker,
        &mut s,
        "g-ack",
        "tickets",
        &BTreeMap::from([(0, 4)]),
    );
    s.close();
}

#[test]
fn a_batch_dropped_without_a_commit_is_read_again() {
    let broker = Broker::start();
    broker.create_topic("events", 1);
    broker.produce_records(
        "events",
        (0..3).map(|i| Record::value(format!(r#"{{"id":"e{i}"}}"#)).partition(0)),
    );
    let store = Store::with(&[]);
    let p = params(&broker, "g-drop", json!({"topics": ["events"]}));
    let mut s = source(&p, &store);
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        assert!(Instant::now() < deadline);
        if let Poll::Records(b) = s.poll(2).unwrap() {
            break b;
        }
    };
    assert_eq!(positions(&first.records), ["events/0@0", "events/0@1"]);
    // The write failed: the batch is dropped, its ack never runs.
    drop(first);
    let records = read(&mut s, &store, 3, Duration::from_secs(20));
    assert_eq!(
        positions(&records),
        ["events/0@0", "events/0@1", "events/0@2"]
    );
    assert_eq!(
        broker
            .committed_offsets("g-drop", "events")
            .get(&0)
            .copied()
            .unwrap_or(3),
        3
    );
    s.close();
}

/// A checkpoint reader that fails its first `failures` reads.
struct Flaky {
    store: Arc<Store>,
    failures: AtomicUsize,
}

impl CheckpointReader for Flaky {
    fn checkpoints(&self) -> Result<Checkpoints, SourceError> {
        if self
            .failures
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SourceError::retryable(
                "reading checkpoints",
                "database is locked",
            ));
        }
        self.store.checkpoints()
    }
}

#[test]
fn partitions_wait_for_a_store_that_cannot_be_read_at_assignment() {
    let broker = Broker::start();
    broker.create_topic("leads", 1);
    broker.produce_records(
        "leads",
        (0..6).map(|i| Record::value(format!(r#"{{"id":"l{i}"}}"#)).partition(0)),
    );
    let store = Store::with(&[("leads/0", "3")]);
    // The assignment tries three times; the first poll after it once more.
    let flaky = Arc::new(Flaky {
        store: store.clone(),
        failures: AtomicUsize::new(4),
    });
    let p = params(&broker, "g-flaky", json!({"topics": ["leads"]}));
    let mut s = KafkaSource::new(&p, "crm", flaky.clone(), &std::env::temp_dir()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut errors = 0;
    let mut got = Vec::new();
    let mapper = mapper();
    while got.len() < 3 {
        assert!(Instant::now() < deadline, "{got:?}, {errors} errors");
        match s.poll(1000) {
            Ok(Poll::Records(b)) => got.extend(store.commit(&mapper, b)),
            Ok(_) => {}
            Err(e) => {
                assert!(e.retryable, "{e}");
                errors += 1;
            }
        }
    }
    assert_eq!(errors, 1, "the store's failure is a retryable error");
    assert_eq!(
        positions(&got),
        ["leads/0@3", "leads/0@4", "leads/0@5"],
        "positioned at the stored checkpoint once it could be read"
    );
    s.close();
}

#[test]
fn topic_patterns_read_every_matching_topic() {
    let broker = Broker::start();
    for t in ["crm.contacts", "crm.accounts", "billing.invoices"] {
        broker.create_topic(t, 1);
        broker.produce(t, None, Some(br#"{"id":"x"}"#), &[]);
    }
    let store = Store::with(&[]);
    let p = params(&broker, "g-pattern", json!({"topic_pattern": "crm\\..*"}));
    let mut s = source(&p, &store);
    let records = read(&mut s, &store, 2, Duration::from_secs(20));
    let mut got = positions(&records);
    got.sort();
    assert_eq!(got, ["crm.accounts/0@0", "crm.contacts/0@0"]);
    assert!(read_for(&mut s, &store, Duration::from_millis(300)).is_empty());
    s.close();
}

#[test]
fn bad_config_is_fatal_and_secrets_stay_out_of_errors() {
    let broker = Broker::start();
    let store = Store::with(&[]);
    let p = params(
        &broker,
        "g-config",
        json!({"topics": ["x"], "properties": {"no.such.property": "1"}}),
    );
    let e = KafkaSource::new(&p, "crm", store.clone(), &std::env::temp_dir())
        .err()
        .expect("refused");
    assert!(!e.retryable);
    assert!(e.to_string().contains("no.such.property"), "{e}");

    let dir = std::env::temp_dir().join(format!("onetruth-kafka-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("timeout"), "hunter2\n").unwrap();
    let p = params(
        &broker,
        "g-config",
        json!({"topics": ["x"], "properties": {"session.timeout.ms": "file:timeout"}}),
    );
    let e = KafkaSource::new(&p, "crm", store.clone(), &dir)
        .err()
        .expect("refused");
    assert!(!e.retryable);
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(e.to_string().contains("***"), "{e}");

    let p = params(
        &broker,
        "g-config",
        json!({"topics": ["x"], "properties": {"sasl.password": "env:ONETRUTH_TEST_UNSET_VARIABLE"}}),
    );
    let e = KafkaSource::new(&p, "crm", store, &dir)
        .err()
        .expect("refused");
    assert_eq!(
        e.to_string(),
        "connector crm: transport.properties.sasl.password: environment variable ONETRUTH_TEST_UNSET_VARIABLE is not set"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tls_and_sasl_scram_are_built_in() {
    // librdkafka refuses these at creation when it was built without OpenSSL (no connection
    // is made yet). tansu's own CLI cannot create a SCRAM user on an authenticating broker,
    // so the handshake itself is not exercised here.
    let store = Store::with(&[]);
    let secure = |mechanism: &str| -> KafkaParams {
        serde_json::from_value(json!({
            "brokers": "127.0.0.1:9", "group_id": "g", "topics": ["x"],
            "properties": {
                "security.protocol": "SASL_SSL", "sasl.mechanism": mechanism,
                "sasl.username": "onetruth", "sasl.password": "s3cret"
            }
        }))
        .unwrap()
    };
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let s = KafkaSource::new(
            &secure(mechanism),
            "crm",
            store.clone(),
            &std::env::temp_dir(),
        );
        assert!(s.is_ok(), "{mechanism}: {:?}", s.err());
    }
    // Kerberos is not built in (no cyrus-sasl): refused, and the password is not shown.
    let e = KafkaSource::new(&secure("GSSAPI"), "crm", store, &std::env::temp_dir())
        .err()
        .expect("GSSAPI is not built in");
    assert!(!e.retryable);
    assert!(!e.to_string().contains("s3cret"), "{e}");
}

#[test]
fn a_broker_that_is_down_is_a_retryable_error() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p: KafkaParams = serde_json::from_value(json!({
        "brokers": format!("127.0.0.1:{port}"), "group_id": "g", "topics": ["x"],
        "poll_timeout_ms": 100,
        "properties": {"reconnect.backoff.ms": "10", "reconnect.backoff.max.ms": "50"}
    }))
    .unwrap();
    let mut s = KafkaSource::new(&p, "crm", Store::with(&[]), &std::env::temp_dir()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let e = loop {
        assert!(
            Instant::now() < deadline,
            "no error for a broker that is down"
        );
        match s.poll(100) {
            Err(e) => break e,
            Ok(Poll::Idle(_)) => {}
            Ok(other) => panic!("{other:?}"),
        }
    };
    assert!(e.retryable, "{e}");
    s.close();
}

#[test]
fn the_dead_letter_topic_receives_quarantined_messages_after_the_commit() {
    let broker = Broker::start();
    broker.create_topic("phone.calls", 1);
    broker.create_topic("phone.calls.dlq", 1);
    broker.produce_records(
        "phone.calls",
        [
            Record::value(br#"{"id":"c1"}"#.to_vec()),
            Record::value(b"\xff\x00binary".to_vec()).key("k-bin"),
            Record::value(br#"{"caller":"+15550100"}"#.to_vec()).key("k-noid"),
            Record::value(br#"{"id":"c2"}"#.to_vec()),
        ]
        .map(|r| r.partition(0)),
    );
    let store = Store::with(&[]);
    let p = params(
        &broker,
        "g-dlq",
        json!({"topics": ["phone.calls"], "dead_letter_topic": "phone.calls.dlq"}),
    );
    let mut s = source(&p, &store);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut held = Vec::new();
    let mut count = 0;
    while count < 4 {
        assert!(Instant::now() < deadline);
        if let Poll::Records(b) = s.poll(1000).unwrap() {
            count += b.records.len();
            held.push(b);
        }
    }
    // Not committed yet: nothing in the dead-letter topic.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        broker
            .read("phone.calls.dlq", 1, Duration::from_millis(500))
            .is_empty()
    );
    let mapper = mapper();
    for b in held {
        store.commit(&mapper, b);
    }
    let dead = broker.read("phone.calls.dlq", 2, Duration::from_secs(20));
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(
        dead[0].value.as_deref(),
        Some(&b"\xff\x00binary"[..]),
        "the raw bytes"
    );
    assert_eq!(dead[0].key.as_deref(), Some(&b"k-bin"[..]));
    assert_eq!(
        dead[0].header("onetruth-reason").as_deref(),
        Some("message value is not UTF-8")
    );
    assert_eq!(
        dead[0].header("onetruth-source-topic").as_deref(),
        Some("phone.calls")
    );
    assert_eq!(
        dead[0].header("onetruth-source-partition").as_deref(),
        Some("0")
    );
    assert_eq!(
        dead[0].header("onetruth-source-offset").as_deref(),
        Some("1")
    );
    assert_eq!(
        dead[1].value.as_deref(),
        Some(&br#"{"caller":"+15550100"}"#[..])
    );
    assert_eq!(dead[1].key.as_deref(), Some(&b"k-noid"[..]));
    assert_eq!(
        dead[1].header("onetruth-reason").as_deref(),
        Some("record.id: missing field `id`")
    );
    assert_eq!(
        dead[1].header("onetruth-source-offset").as_deref(),
        Some("2")
    );
    s.close();
}

/// One consumer of a group, run like the pipeline runs a source: polled on its own thread,
/// batches committed on another (the writer), acknowledged after the commit.
struct Member {
    stop: Arc<std::sync::atomic::AtomicBool>,
    poller: Option<std::thread::JoinHandle<()>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Member {
    fn start(params: KafkaParams, store: Arc<Store>) -> Member {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = mpsc::sync_channel::<RawBatch>(4);
        let writer_store = store.clone();
        let writer = std::thread::spawn(move || {
            let mapper = mapper();
            for batch in rx {
                // A commit takes a while: batches are in flight when rebalances come.
                std::thread::sleep(Duration::from_millis(20));
                writer_store.commit(&mapper, batch);
            }
        });
        let stop2 = stop.clone();
        let poller = std::thread::spawn(move || {
            let mut s = KafkaSource::new(&params, "crm", store, &std::env::temp_dir()).unwrap();
            while !stop2.load(Ordering::Acquire) {
                match s.poll(50).unwrap_or_else(|e| panic!("{e}")) {
                    Poll::Records(b) => tx.send(b).unwrap(),
                    Poll::Idle(_) => {}
                    Poll::End => unreachable!(),
                }
            }
            // As the pipeline does: every batch committed, then the source closed.
            drop(tx);
            std::thread::sleep(Duration::from_millis(0));
            s.close();
        });
        Member {
            stop,
            poller: Some(poller),
            writer: Some(writer),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        // The poller closes the source after its sender is gone; the writer drains first.
        let poller = self.poller.take().unwrap();
        let writer = self.writer.take().unwrap();
        writer.join().unwrap();
        poller.join().unwrap();
    }
}

/// Two members of one group share a store; a second joins and leaves while messages flow.
/// Every message is applied exactly once.
fn rebalance(strategy: &str) {
    let broker = Broker::start();
    broker.create_topic("signups", 4);
    let n_before = 400;
    let at = broker.produce_records(
        "signups",
        (0..n_before).map(|i| Record::value(format!(r#"{{"id":"s{i}"}}"#)).partition(i % 4)),
    );
    assert_eq!(at.len(), n_before as usize);
    let store = Store::with(&[]);
    let group = format!("g-rebalance-{strategy}");
    let p = params(
        &broker,
        &group,
        json!({"topics": ["signups"], "properties": {"partition.assignment.strategy": strategy}}),
    );
    let total = |s: &Store| s.applied.lock().unwrap().len();
    let a = Member::start(p.clone(), store.clone());
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(25);
        while total(&store) < n {
            assert!(
                Instant::now() < deadline,
                "{} of {n} applied",
                total(&store)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for(50);
    let b = Member::start(p.clone(), store.clone());
    // Keep producing while the group rebalances.
    let mut produced = n_before as usize;
    for round in 0..10 {
        broker.produce_records(
            "signups",
            (0..40).map(|i| Record::value(format!(r#"{{"id":"r{round}-{i}"}}"#)).partition(i % 4)),
        );
        produced += 40;
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for(produced * 3 / 4);
    b.stop();
    broker.produce_records(
        "signups",
        (0..40).map(|i| Record::value(format!(r#"{{"id":"late-{i}"}}"#)).partition(i % 4)),
    );
    produced += 40;
    wait_for(produced);
    // Nothing more comes: nothing was read twice.
    std::thread::sleep(Duration::from_millis(500));
    a.stop();
    let applied = store.applied();
    let unique: BTreeSet<&String> = applied.iter().collect();
    let mut seen = BTreeSet::new();
    let twice: Vec<&String> = applied.iter().filter(|p| !seen.insert(*p)).collect();
    assert!(twice.is_empty(), "read twice: {twice:?}");
    assert_eq!(unique.len(), produced, "nothing lost");
    let checkpoints = store.checkpoints_now();
    let sum: i64 = checkpoints
        .values()
        .map(|v| v.parse::<i64>().unwrap())
        .sum();
    assert_eq!(sum as usize, produced, "{checkpoints:?}");
}

#[test]
fn a_rebalance_starts_partitions_at_stored_offsets_eager() {
    rebalance("range");
}

#[test]
fn a_rebalance_starts_partitions_at_stored_offsets_cooperative() {
    rebalance("cooperative-sticky");
}

/// Gauges and counters by name and labels, for one thread's metrics.
#[derive(Default)]
struct Recorded(Mutex<BTreeMap<String, Arc<std::sync::atomic::AtomicU64>>>);

impl Recorded {
    fn handle(&self, key: &metrics::Key) -> Arc<std::sync::atomic::AtomicU64> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        self.0.lock().unwrap().entry(name).or_default().clone()
    }

    fn gauge(&self, name: &str) -> Option<f64> {
        let map = self.0.lock().unwrap();
        map.get(name)
            .map(|v| f64::from_bits(v.load(Ordering::Acquire)))
    }
}

impl metrics::Recorder for Recorded {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::from_arc(self.handle(key))
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

#[test]
fn consumer_lag_is_the_high_watermark_less_the_next_offset() {
    let broker = Broker::start();
    broker.create_topic("lagging", 1);
    broker.produce_records(
        "lagging",
        (0..10).map(|i| Record::value(format!(r#"{{"id":"l{i}"}}"#)).partition(0)),
    );
    let store = Store::with(&[]);
    let p = params(
        &broker,
        "g-lag",
        json!({"topics": ["lagging"], "properties": {"statistics.interval.ms": "100"}}),
    );
    let recorded = Recorded::default();
    let lag = "onetruth_kafka_consumer_lag{connector=crm,partition=0,topic=lagging}";
    metrics::with_local_recorder(&recorded, || {
        let mut s = source(&p, &store);
        let mapper = mapper();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut read = 0;
        // One record a batch, slowly enough for statistics to come in between.
        while read < 5 {
            assert!(Instant::now() < deadline, "{read} read");
            std::thread::sleep(Duration::from_millis(150));
            if let Poll::Records(b) = s.poll(1).unwrap() {
                read += store.commit(&mapper, b).len();
            }
        }
        assert_eq!(recorded.gauge(lag), Some(5.0), "10 messages, 5 read");
        s.close();
    });
    // A partition given back reports no lag.
    assert_eq!(recorded.gauge(lag), Some(0.0));
    let counter = |name: &str| recorded.0.lock().unwrap()[name].load(Ordering::Acquire);
    assert_eq!(
        counter("onetruth_kafka_rebalances_total{connector=crm,kind=assign}"),
        1
    );
    assert_eq!(
        counter("onetruth_kafka_rebalances_total{connector=crm,kind=revoke}"),
        1
    );
}
