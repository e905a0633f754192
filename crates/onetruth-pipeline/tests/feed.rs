//! The change feed over a real store: every change in commit order, explicit merge events and
//! tombstones, the cursor committed by the pipeline's writer after the sink has the page, and
//! a failed publish published again rather than skipped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use onetruth_connect::SourceError;
use onetruth_model::{Attributes, IdentifierKind, Normalizer, Op, SourceRecord};
use onetruth_pipeline::{
    ChangeFeed, FeedEncoder, FeedMessage, FeedSink, Health, Input, PipelineOptions, Stop, run,
};
use onetruth_resolve::{IdentifierPolicy, Matching};
use onetruth_store::{Batch, Store, StoreOptions};

#[derive(Clone, Default)]
struct Recorder {
    messages: Arc<Mutex<Vec<FeedMessage>>>,
    /// Publishes to fail before succeeding.
    failures: Arc<Mutex<u32>>,
}

impl FeedSink for Recorder {
    fn publish(&mut self, messages: &[FeedMessage]) -> Result<(), SourceError> {
        let mut f = self.failures.lock().unwrap();
        if *f > 0 {
            *f -= 1;
            // Half the page got out before the failure: it is published again whole.
            let half = messages.len() / 2;
            self.messages
                .lock()
                .unwrap()
                .extend_from_slice(&messages[..half]);
            return Err(SourceError::retryable("topic", "broker unreachable"));
        }
        self.messages.lock().unwrap().extend_from_slice(messages);
        Ok(())
    }

    fn stream(&self) -> String {
        "customers".into()
    }
}

fn encoder() -> FeedEncoder {
    Box::new(|store, entry| {
        Ok(onetruth_api::change_messages(store, entry)?
            .into_iter()
            .map(|m| FeedMessage {
                key: m.key,
                value: m.value.map(|v| v.to_string().into_bytes()),
                event: m.event,
            })
            .collect())
    })
}

fn rec(id: &str, emails: &[&str]) -> SourceRecord {
    let n = Normalizer::default();
    SourceRecord {
        source: "crm".into(),
        source_id: id.into(),
        version: 1,
        op: Op::Upsert,
        identifiers: emails
            .iter()
            .map(|e| n.normalize(&IdentifierKind::Email, e, None).unwrap())
            .collect(),
        attributes: Attributes {
            given_name: Some("Jane".into()),
            family_name: Some("Doe".into()),
            ..Attributes::default()
        },
        events: Vec::new(),
        raw: serde_json::Value::Null,
        raw_text: None,
    }
}

fn apply(store: &mut Store, records: Vec<SourceRecord>) {
    store
        .apply(Batch {
            connector: "crm".into(),
            records,
            ..Batch::default()
        })
        .unwrap();
}

/// Run the feed until the sink holds `until` messages, then stop.
fn publish(store: &mut Store, db: &std::path::Path, sink: Recorder, cursor: i64, until: usize) {
    let reader = Store::open(
        db,
        StoreOptions {
            read_only: true,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let feed = ChangeFeed::new(
        reader,
        encoder(),
        Box::new(sink.clone()),
        cursor,
        Duration::from_millis(5),
    );
    let stop = Arc::new(Stop::new());
    let stopper = {
        let (stop, seen) = (stop.clone(), sink.messages.clone());
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while seen.lock().unwrap().len() < until && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            // Let the writer commit the cursor of the last page.
            std::thread::sleep(Duration::from_millis(50));
            stop.stop();
        })
    };
    let mut options = PipelineOptions::new(IdentifierPolicy::default(), Matching::Probabilistic);
    options.retry_initial = Duration::from_millis(1);
    run(
        store,
        vec![Input::checkpoints_only("change_feed", Box::new(feed))],
        &options,
        &stop,
        &Health::new(),
    )
    .unwrap();
    stopper.join().unwrap();
}

fn body(m: &FeedMessage) -> serde_json::Value {
    serde_json::from_slice(m.value.as_deref().expect("not a tombstone")).unwrap()
}

#[test]
fn every_change_is_published_in_order_with_merges_and_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let mut store = Store::open(&db, StoreOptions::default()).unwrap();
    store.set_stream_commit(onetruth_store::StreamCommit {
        records: 1,
        interval: Duration::ZERO,
    });
    apply(&mut store, vec![rec("1", &["a@x.com"])]);
    apply(&mut store, vec![rec("2", &["b@x.com"])]);
    // Record 3 holds both emails: the two customers merge, cus_1 survives.
    apply(&mut store, vec![rec("3", &["a@x.com", "b@x.com"])]);

    let sink = Recorder::default();
    *sink.failures.lock().unwrap() = 1;
    publish(&mut store, &db, sink.clone(), 0, 5);
    let got = sink.messages.lock().unwrap().clone();
    // The failed attempt got part of the page out; the page was then published whole.
    let events: Vec<(&str, &str, bool)> = got
        .iter()
        .map(|m| (m.key.as_str(), m.event, m.value.is_some()))
        .collect();
    let whole = [
        ("cus_1", "created", true),
        ("cus_2", "created", true),
        ("cus_1", "merged", true),
        ("cus_2", "merged_into", true),
        ("cus_2", "merged_into", false),
    ];
    assert!(events.ends_with(&whole), "{events:?}");
    assert!(
        events.len() > whole.len(),
        "the failed publish got nothing out: {events:?}"
    );
    let merged = body(&got[got.len() - 3]);
    assert_eq!(merged["absorbed"], serde_json::json!(["cus_2"]));
    assert_eq!(merged["customer"]["records"].as_array().unwrap().len(), 3);
    assert_eq!(body(&got[got.len() - 2])["into"], "cus_1");
    let versions: Vec<i64> = got[got.len() - 5..got.len() - 1]
        .iter()
        .map(|m| body(m)["version"].as_i64().unwrap())
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "commit order: {versions:?}"
    );

    // The cursor was committed by the writer; a restarted feed publishes only what follows.
    let cursor = store.checkpoints("change_feed").unwrap()["customers"]
        .parse::<i64>()
        .unwrap();
    assert_eq!(cursor, store.stats().unwrap().changelog_version);
    apply(&mut store, vec![rec("4", &["c@x.com"])]);
    let sink = Recorder::default();
    publish(&mut store, &db, sink.clone(), cursor, 1);
    let got = sink.messages.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].key.as_str(), got[0].event), ("cus_3", "created"));
}
