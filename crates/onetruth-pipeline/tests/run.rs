//! The pipeline on a real SQLite store, with sources written here: acknowledgements follow the
//! commit, checkpoints land per stream, failures back off or stop one connector, and stopping
//! drains what is queued.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use onetruth_connect::{
    Ack, Checkpoint, Manifest, Poll, Position, RawBatch, RawBody, RawRecord, Source, SourceError,
};
use onetruth_model::Normalizer;
use onetruth_pipeline::{
    Connector, ConnectorState, Health, Input, OnSourceError, PipelineError, PipelineOptions, Stop,
    run,
};
use onetruth_resolve::{IdentifierPolicy, Matching};
use onetruth_store::{Store, StoreOptions};

const MANIFEST: &str = r#"
source = "shop"
[record]
id = "id"
[[identifiers]]
kind = "email"
value = "email"
"#;

fn connector(source: &str) -> Arc<Connector> {
    let text = MANIFEST.replace("\"shop\"", &format!("\"{source}\""));
    let manifest = Manifest::parse_str(&text, config::FileFormat::Toml).unwrap();
    Arc::new(
        Connector::from_manifest(
            manifest,
            Path::new("shop.toml"),
            &onetruth_pipeline::transports(),
            &Normalizer::default(),
        )
        .unwrap(),
    )
}

/// What a scripted source does on each poll.
enum Step {
    /// Records `ids` (a line `{"id": .., "email": ..}` each; "bad" is not JSON), then a
    /// checkpoint of stream `s` at the last id.
    Records(&'static str, Vec<&'static str>),
    Idle,
    Fail {
        retryable: bool,
    },
}

/// Plays its steps, then ends (or idles, if `live`). Every ack it hands out reports to `acked`
/// what a reader of the store saw committed when it ran.
struct Scripted {
    steps: VecDeque<Step>,
    live: bool,
    db: std::path::PathBuf,
    acked: Arc<Mutex<Vec<(String, i64)>>>,
    closed: Arc<Mutex<bool>>,
}

fn committed(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM source_records", [], |r| r.get(0))
        .unwrap()
}

impl Source for Scripted {
    fn poll(&mut self, _max: usize) -> Result<Poll, SourceError> {
        match self.steps.pop_front() {
            Some(Step::Records(stream, ids)) => {
                let records = ids
                    .iter()
                    .map(|id| RawRecord {
                        position: Position(format!("{stream}@{id}")),
                        body: if *id == "bad" {
                            RawBody::Json("{not json".into())
                        } else {
                            RawBody::Json(format!(r#"{{"id":"{id}","email":"{id}@x.com"}}"#))
                        },
                        text: None,
                        meta: None,
                    })
                    .collect();
                let last = ids.last().copied().unwrap_or_default().to_string();
                let (db, acked) = (self.db.clone(), self.acked.clone());
                let label = format!("{stream}:{last}");
                Ok(Poll::Records(RawBatch {
                    records,
                    checkpoints: vec![Checkpoint::new(stream, last)],
                    ack: Some(Ack::new(move |delivered| {
                        assert!(delivered.quarantined.iter().all(|q| q.raw == "{not json"));
                        acked.lock().unwrap().push((label, committed(&db)));
                    })),
                }))
            }
            Some(Step::Idle) => Ok(Poll::Idle(Duration::from_millis(5))),
            Some(Step::Fail { retryable: true }) => {
                Err(SourceError::retryable("test", "broker unreachable"))
            }
            Some(Step::Fail { retryable: false }) => {
                Err(SourceError::new("test", "bad credentials"))
            }
            None if self.live => Ok(Poll::Idle(Duration::from_millis(5))),
            None => Ok(Poll::End),
        }
    }

    fn close(&mut self) {
        *self.closed.lock().unwrap() = true;
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    store: Store,
    acked: Arc<Mutex<Vec<(String, i64)>>>,
    closed: Arc<Mutex<bool>>,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let store = Store::open(&db, StoreOptions::default()).unwrap();
        Harness {
            _dir: dir,
            db,
            store,
            acked: Arc::default(),
            closed: Arc::default(),
        }
    }

    fn input(&self, source: &str, steps: Vec<Step>, live: bool) -> Input {
        Input::connector(
            connector(source),
            Box::new(Scripted {
                steps: steps.into(),
                live,
                db: self.db.clone(),
                acked: self.acked.clone(),
                closed: self.closed.clone(),
            }),
        )
    }
}

fn options() -> PipelineOptions {
    let mut o = PipelineOptions::new(IdentifierPolicy::default(), Matching::Probabilistic);
    o.retry_initial = Duration::from_millis(1);
    o.retry_max = Duration::from_millis(5);
    o
}

#[test]
fn batches_are_acknowledged_after_their_commit_with_checkpoints_per_stream() {
    let mut h = Harness::new();
    let input = h.input(
        "shop",
        vec![
            Step::Records("p0", vec!["1", "2"]),
            Step::Idle,
            Step::Records("p1", vec!["3", "bad"]),
            Step::Records("p0", vec!["4"]),
        ],
        false,
    );
    let report = run(
        &mut h.store,
        vec![input],
        &options(),
        &Stop::new(),
        &Health::new(),
    )
    .unwrap();
    assert_eq!(report.total_read(), 5);
    assert_eq!((report.summary.applied, report.summary.quarantined), (4, 1));
    let acked = h.acked.lock().unwrap().clone();
    let labels: Vec<&str> = acked.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        labels,
        ["p0:2", "p1:bad", "p0:4"],
        "every batch acked, in order"
    );
    // When each ack ran, its records were visible to another connection: committed.
    for ((_, seen), at_least) in acked.iter().zip([2, 3, 4]) {
        assert!(*seen >= at_least, "ack ran before the commit: {acked:?}");
    }
    let checkpoints = h.store.checkpoints("shop").unwrap();
    assert_eq!(checkpoints["p0"], "4");
    assert_eq!(checkpoints["p1"], "bad");
    assert!(*h.closed.lock().unwrap(), "the source is closed at the end");
}

#[test]
fn a_retryable_failure_backs_off_and_a_fatal_one_stops_only_its_connector() {
    let mut h = Harness::new();
    let flaky = h.input(
        "flaky",
        vec![
            Step::Fail { retryable: true },
            Step::Fail { retryable: true },
            Step::Records("", vec!["1"]),
        ],
        false,
    );
    let broken = h.input(
        "broken",
        vec![
            Step::Records("", vec!["2"]),
            Step::Fail { retryable: false },
            Step::Records("", vec!["never"]),
        ],
        false,
    );
    let mut o = options();
    o.on_source_error = OnSourceError::StopConnector;
    let health = Health::new();
    let report = run(&mut h.store, vec![flaky, broken], &o, &Stop::new(), &health).unwrap();
    assert_eq!(
        report.summary.applied, 2,
        "the batch before the failure stays"
    );
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, "broken");
    assert!(
        matches!(health.state("broken"), Some(ConnectorState::Failed(e)) if e.contains("bad credentials"))
    );
    assert_eq!(health.state("flaky"), Some(ConnectorState::Stopped));
    assert!(h.store.record_id("broken", "never").unwrap().is_none());

    // Where one failure stops everything (`ingest`), the error comes back.
    let mut h = Harness::new();
    let broken = h.input("broken", vec![Step::Fail { retryable: false }], false);
    let err = run(
        &mut h.store,
        vec![broken],
        &options(),
        &Stop::new(),
        &Health::new(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, PipelineError::Source { connector, .. } if connector == "broken"),
        "{err}"
    );
    assert_eq!(err.to_string(), "connector broken: test: bad credentials");
}

#[test]
fn stopping_a_live_pipeline_commits_and_acknowledges_what_it_read() {
    let mut h = Harness::new();
    let live = h.input(
        "live",
        vec![
            Step::Records("", vec!["1", "2"]),
            Step::Records("", vec!["3"]),
        ],
        true,
    );
    let stop = Arc::new(Stop::new());
    let stopper = {
        let (stop, acked) = (stop.clone(), h.acked.clone());
        std::thread::spawn(move || {
            // Stop once both batches are acknowledged; a live source never ends by itself.
            while acked.lock().unwrap().len() < 2 {
                std::thread::sleep(Duration::from_millis(2));
            }
            stop.stop();
        })
    };
    let health = Health::new();
    let report = run(&mut h.store, vec![live], &options(), &stop, &health).unwrap();
    stopper.join().unwrap();
    assert_eq!(report.summary.applied, 3);
    assert_eq!(health.state("live"), Some(ConnectorState::Stopped));
    assert!(*h.closed.lock().unwrap());
    assert_eq!(committed(&h.db), 3);
}

#[test]
fn a_store_that_cannot_be_written_stops_every_source_and_says_why() {
    let h = Harness::new();
    // A read-only connection: the first transaction fails.
    let mut read_only = Store::open(
        &h.db,
        StoreOptions {
            read_only: true,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let live = h.input("live", vec![Step::Records("", vec!["1"])], true);
    let idle = h.input("idle", Vec::new(), true);
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = run(
            &mut read_only,
            vec![live, idle],
            &options(),
            &Stop::new(),
            &Health::new(),
        );
        let _ = done.send(r.map(|_| ()).map_err(|e| e.to_string()));
    });
    // Live sources never end by themselves: the pipeline must stop them, not hang.
    let outcome = finished
        .recv_timeout(Duration::from_secs(10))
        .expect("the pipeline returned");
    let err = outcome.unwrap_err();
    assert!(err.starts_with("writing to the store"), "{err}");
    assert!(
        h.acked.lock().unwrap().is_empty(),
        "nothing was acknowledged"
    );
}
