//! Sources into the store: a thread per source polls, maps and prepares batches (CPU), the
//! calling thread runs the store's pipelined writer over them (SQLite), joined by a bounded
//! channel so memory stays flat whatever the backlog. Each batch's checkpoints are written in
//! the transaction holding its records, and its source's [`Ack`](onetruth_connect::Ack) runs
//! only once that transaction has committed.
//!
//! Stopping ([`Stop::stop`]) ends intake: every source thread finishes the batch it holds and
//! stops polling, the writer applies and commits what is queued, acknowledges it, and `run`
//! returns. Nothing queued is lost either way: what was not committed was not acknowledged and
//! is read again on the next start.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use onetruth_connect::backoff::Backoff;
use onetruth_connect::{
    Delivered, Poll, Position, Progress, RawBatch, RawBody, Rejected, Source, SourceError,
};
use onetruth_resolve::{IdentifierPolicy, Matching};
use onetruth_store::{
    ApplySummary, Batch, OnCommit, PreparedBatch, QuarantineEntry, Store, StoreError,
    StreamCheckpoint, WriteCommand,
};

use crate::Connector;
use crate::health::{ConnectorState, Health};

/// A source, ready to run: a connector's, whose records are mapped through its manifest, or
/// an internal one that only advances checkpoints (the change feed's cursor).
pub struct Input {
    /// What its checkpoints, metrics and health are kept under.
    pub name: String,
    /// The manifest its records are mapped with; `None` for a source that yields no records.
    pub connector: Option<Arc<Connector>>,
    pub source: Box<dyn Source>,
    /// Its records come from the quarantine: those that map are released from it.
    pub replay: bool,
}

impl Input {
    /// A connector's source.
    pub fn connector(connector: Arc<Connector>, source: Box<dyn Source>) -> Input {
        Input {
            name: connector.name.clone(),
            connector: Some(connector),
            source,
            replay: false,
        }
    }

    /// A connector's quarantined records, mapped again ([`crate::QuarantineSource`]).
    pub fn replay(connector: Arc<Connector>, source: Box<dyn Source>) -> Input {
        Input {
            replay: true,
            ..Input::connector(connector, source)
        }
    }

    /// A source whose batches carry only checkpoints (records it yields are quarantined).
    pub fn checkpoints_only(name: impl Into<String>, source: Box<dyn Source>) -> Input {
        Input {
            name: name.into(),
            connector: None,
            source,
            replay: false,
        }
    }
}

/// What version a record gets when its manifest names no version field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionClock {
    /// One version for the whole run (unix µs of its start): a later run supersedes an
    /// earlier one, and a record repeated within a run keeps its first content.
    Fixed(i64),
    /// The time each batch was read: for a live source, where there is no run.
    PerBatch,
}

impl VersionClock {
    /// [`VersionClock::Fixed`] at the current time: a run starting now.
    pub fn starting_now() -> VersionClock {
        VersionClock::Fixed(now_micros())
    }
}

/// What a source failure that retrying cannot mend does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSourceError {
    /// Stop the whole pipeline and return the error (`onetruth ingest`).
    StopAll,
    /// Stop that connector, mark it failed, keep the others running (the daemon).
    StopConnector,
}

/// Called after each poll of a bounded source with how far it has come.
pub type ProgressFn = Arc<dyn Fn(&str, Progress) + Send + Sync>;

/// How the pipeline runs.
#[derive(Clone)]
pub struct PipelineOptions {
    /// Records per poll (default 5000).
    pub batch_size: usize,
    /// Screens placeholder identifiers, as the store would.
    pub policy: IdentifierPolicy,
    /// The store's matching mode: resolver inputs are prepared for it.
    pub matching: Matching,
    /// When batches queue up faster than they are written, the writer resolves and writes up
    /// to this many records as one group (default 50,000).
    pub group_records: usize,
    pub versions: VersionClock,
    pub on_source_error: OnSourceError,
    /// Backoff between retries of a failing source.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub progress: Option<ProgressFn>,
}

impl PipelineOptions {
    pub fn new(policy: IdentifierPolicy, matching: Matching) -> PipelineOptions {
        PipelineOptions {
            batch_size: 5000,
            policy,
            matching,
            group_records: 50_000,
            versions: VersionClock::PerBatch,
            on_source_error: OnSourceError::StopAll,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
            progress: None,
        }
    }
}

/// Tells a running pipeline to stop taking input; wakes sources waiting for input.
#[derive(Default)]
pub struct Stop {
    stopped: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let _guard = self.lock.lock();
        self.wake.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Sleep for `d` or until stopped; true when stopped.
    pub fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        while !self.is_stopped() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            guard = match self.wake.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        self.is_stopped()
    }
}

/// A pipeline that could not go on. Each message holds its cause, so `{:#}` prints it once.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("writing to the store: {0}")]
    Store(StoreError),
    #[error("connector {connector}: {error}")]
    Source {
        connector: String,
        error: SourceError,
    },
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
}

/// What a run did.
#[derive(Debug, Default)]
pub struct PipelineReport {
    /// Raw records read, per connector.
    pub read: BTreeMap<String, u64>,
    pub summary: ApplySummary,
    /// Connectors that stopped on an error (with [`OnSourceError::StopConnector`]).
    pub failed: Vec<(String, SourceError)>,
}

impl PipelineReport {
    pub fn total_read(&self) -> u64 {
        self.read.values().sum()
    }
}

/// Writes other than records for a running pipeline (curator decisions, re-resolving), each
/// with what to run once it is committed.
pub type Commands = mpsc::Receiver<(WriteCommand, OnCommit)>;

/// Run `inputs` into `store` until every source has ended or `stop` is set, then commit
/// what is queued and return. The store's writer state (the warm resolver) stays in `store`.
pub fn run(
    store: &mut Store,
    inputs: Vec<Input>,
    options: &PipelineOptions,
    stop: &Stop,
    health: &Health,
) -> Result<PipelineReport, PipelineError> {
    run_with_commands(store, inputs, options, stop, health, None)
}

/// [`run`], also applying `commands` between record groups, in the order they come, on the
/// writer's warm resolver.
pub fn run_with_commands(
    store: &mut Store,
    inputs: Vec<Input>,
    options: &PipelineOptions,
    stop: &Stop,
    health: &Health,
    commands: Option<Commands>,
) -> Result<PipelineReport, PipelineError> {
    let (tx, rx) = mpsc::sync_channel::<PreparedBatch>(8);
    let live = AtomicUsize::new(inputs.len());
    let all_done = AtomicBool::new(inputs.is_empty());
    // Written groups come back to a source thread, which allocated their records, to be
    // freed there (see `Store::set_stream_spent`).
    let (spent_tx, spent_rx) = mpsc::channel();
    let spent_rx = Mutex::new(spent_rx);
    store.set_stream_spent(Some(spent_tx));
    let fatal: Mutex<Option<PipelineError>> = Mutex::new(None);
    for input in &inputs {
        health.set(&input.name, ConnectorState::Running);
    }

    let (written, threads) = std::thread::scope(|scope| {
        let mut threads = Vec::new();
        for input in inputs {
            let tx = tx.clone();
            let (live, all_done, spent_rx, fatal) = (&live, &all_done, &spent_rx, &fatal);
            let name = format!("source-{}", input.name);
            let handle = std::thread::Builder::new()
                .name(name)
                .spawn_scoped(scope, move || {
                    let connector = input.name.clone();
                    let mut worker = SourceWorker::new(input, options, health);
                    let outcome = worker.run(&tx, stop, spent_rx);
                    drop(tx);
                    if live.fetch_sub(1, Ordering::AcqRel) == 1 {
                        all_done.store(true, Ordering::Release);
                    }
                    match outcome {
                        Ok(()) => {}
                        Err(error) => {
                            health.set(
                                &connector,
                                ConnectorState::Failed(error.to_string()),
                            );
                            match options.on_source_error {
                                OnSourceError::StopAll => {
                                    stop.stop();
                                    let mut f = fatal.lock().unwrap_or_else(|p| p.into_inner());
                                    f.get_or_insert(PipelineError::Source {
                                        connector: connector.clone(),
                                        error,
                                    });
                                }
                                OnSourceError::StopConnector => {
                                    tracing::error!(connector = %connector, error = %error, "connector stopped");
                                    worker.failed = Some(error);
                                }
                            }
                        }
                    }
                    worker
                });
            match handle {
                Ok(h) => threads.push(h),
                Err(_) => {
                    live.fetch_sub(1, Ordering::AcqRel);
                    *fatal.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(PipelineError::Panicked("source (spawn)"));
                    stop.stop();
                }
            }
        }
        if let Some(commands) = commands {
            let tx = tx.clone();
            let spawned = std::thread::Builder::new()
                .name("commands".into())
                .spawn_scoped(scope, move || {
                    // Until stopped: the channel to the writer closes only once this is gone.
                    while !stop.is_stopped() {
                        match commands.recv_timeout(Duration::from_millis(50)) {
                            Ok((command, on_commit)) => {
                                let batch = PreparedBatch::command(command, Some(on_commit));
                                if tx.send(batch).is_err() {
                                    return;
                                }
                            }
                            Err(mpsc::RecvTimeoutError::Timeout) => {}
                            Err(mpsc::RecvTimeoutError::Disconnected) => return,
                        }
                    }
                });
            if spawned.is_err() {
                *fatal.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(PipelineError::Panicked("commands (spawn)"));
                stop.stop();
            }
        }
        drop(tx);
        let written = write_all(store, rx, &all_done, options.group_records);
        // The writer ends when every sender is gone, or on an error: then sources waiting
        // for input (and the command thread) would never learn of it by sending.
        stop.stop();
        let threads: Vec<_> = threads.into_iter().map(|h| h.join()).collect();
        (written, threads)
    });
    let mut report = PipelineReport::default();
    for worker in threads {
        let mut worker = worker.map_err(|_| PipelineError::Panicked("source"))?;
        // Every batch it yielded is committed (and acknowledged) or dropped by now.
        worker.input.source.close();
        let name = worker.input.name.clone();
        *report.read.entry(name.clone()).or_default() += worker.read;
        if let Some(e) = worker.failed.take() {
            report.failed.push((name, e));
        } else if health
            .state(&name)
            .is_some_and(|s| s == ConnectorState::Running)
        {
            health.set(&name, ConnectorState::Stopped);
        }
    }
    report.summary = written?;
    if let Some(e) = fatal.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(report)
}

/// The writer: groups what is queued and hands it to the store's pipelined writer.
fn write_all(
    store: &mut Store,
    rx: mpsc::Receiver<PreparedBatch>,
    all_done: &AtomicBool,
    group_records: usize,
) -> Result<ApplySummary, PipelineError> {
    // Block for one batch, then take whatever else is already waiting, up to `group_records`:
    // a slow source still commits batch by batch, a fast one commits in large groups.
    // Once every source is done, what is queued goes one batch per group: a last group of
    // everything queued (40,000 records) was resolved while the writer waited and then
    // written while the planner waited, about a second with one core idle at 1M records;
    // in batches, resolving one overlaps writing the one before.
    // The store's writer raises this when it fails; the planner hears of a failure only when
    // it hands over its next group, which live sources may never send.
    let failed = Arc::new(AtomicBool::new(false));
    store.set_stream_failure_flag(failed.clone());
    let groups = std::iter::from_fn(|| {
        let first = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(b) => break b,
                Err(mpsc::RecvTimeoutError::Timeout) if !failed.load(Ordering::Acquire) => {}
                Err(_) => return None,
            }
        };
        let mut records = first.len();
        let mut group = vec![first];
        while records < group_records && !all_done.load(Ordering::Acquire) {
            match rx.try_recv() {
                Ok(b) => {
                    records += b.len();
                    group.push(b);
                }
                Err(_) => break,
            }
        }
        // A large group means input is queued faster than it is written: a backlog, which
        // the writer commits in large transactions. Live traffic comes a few hundred records
        // at a time and commits within the live interval.
        if records >= group_records / 4
            && let Some(last) = group.last_mut()
        {
            last.set_backlog(true);
        }
        Some(group)
    });
    // Resolving the next group overlaps writing the previous one.
    store.apply_stream(groups).map_err(PipelineError::Store)
}

/// One source's thread: poll, map, prepare, send; back off on retryable failures.
struct SourceWorker<'a> {
    input: Input,
    options: &'a PipelineOptions,
    health: &'a Health,
    read: u64,
    failed: Option<SourceError>,
    metrics: SourceMetrics,
}

impl<'a> SourceWorker<'a> {
    fn new(input: Input, options: &'a PipelineOptions, health: &'a Health) -> SourceWorker<'a> {
        let metrics = SourceMetrics::new(&input.name);
        SourceWorker {
            input,
            options,
            health,
            read: 0,
            failed: None,
            metrics,
        }
    }

    fn run(
        &mut self,
        tx: &mpsc::SyncSender<PreparedBatch>,
        stop: &Stop,
        spent: &Mutex<mpsc::Receiver<onetruth_store::SpentGroup>>,
    ) -> Result<(), SourceError> {
        let name = self.input.name.clone();
        let mut backoff = Backoff::new(self.options.retry_initial, self.options.retry_max);
        while !stop.is_stopped() {
            if let Ok(rx) = spent.try_lock() {
                rx.try_iter().for_each(drop);
            }
            let polled = self.input.source.poll(self.options.batch_size);
            if polled.is_ok() && backoff.attempts() > 0 {
                tracing::info!(connector = %name, retries = backoff.attempts(), "source recovered");
                self.health.set(&name, ConnectorState::Running);
                backoff.reset();
            }
            match polled {
                Ok(Poll::Records(raw)) => {
                    self.read += raw.records.len() as u64;
                    self.metrics.read.increment(raw.records.len() as u64);
                    let batch = self.batch(raw);
                    if let (Some(progress), Some(p)) =
                        (&self.options.progress, self.input.source.progress())
                    {
                        progress(&name, p);
                    }
                    if tx.send(batch).is_err() {
                        // The writer stopped on an error; it reports it.
                        return Ok(());
                    }
                }
                Ok(Poll::Idle(wait)) => {
                    stop.sleep(wait);
                }
                Ok(Poll::End) => return Ok(()),
                Err(e) if e.retryable => {
                    self.metrics.retries.increment(1);
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        connector = %name,
                        attempt = backoff.attempts(),
                        retry_in_ms = delay.as_millis() as u64,
                        error = %e,
                        "source failed; retrying"
                    );
                    self.health
                        .set(&name, ConnectorState::Retrying(e.to_string()));
                    stop.sleep(delay);
                }
                Err(e) => {
                    self.metrics.errors.increment(1);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The `source` its records are stored under: the manifest's.
    fn source_name(&self) -> &str {
        match &self.input.connector {
            Some(c) => &c.manifest.source,
            None => &self.input.name,
        }
    }

    /// Map a raw batch; failures become quarantine entries with the raw payload and the
    /// reason. The batch's acknowledgement runs after its commit, with the metrics.
    fn batch(&self, raw: RawBatch) -> PreparedBatch {
        let name = &self.input.name;
        let version = match self.options.versions {
            VersionClock::Fixed(v) => v,
            VersionClock::PerBatch => now_micros(),
        };
        let read_at = Instant::now();
        let mut records = Vec::with_capacity(raw.records.len());
        let mut quarantine = Vec::new();
        let mut released = Vec::new();
        for r in raw.records {
            let position = if self.input.replay {
                r.position.0.clone()
            } else {
                String::new()
            };
            let mapped = match &self.input.connector {
                Some(c) => c.mapper.map_owned(r, version),
                None => Err(Box::new((
                    onetruth_connect::MapError("this source has no mapping".into()),
                    r,
                ))),
            };
            match mapped {
                Ok(record) => {
                    if self.input.replay {
                        released.push((self.source_name().to_string(), position));
                    }
                    records.push(record)
                }
                Err(failed) => {
                    let (e, r) = *failed;
                    let text = match r.body {
                        RawBody::Parsed(obj) => r
                            .text
                            .unwrap_or_else(|| serde_json::Value::Object(obj).to_string()),
                        RawBody::Json(text) | RawBody::Malformed { text, .. } => text,
                    };
                    tracing::debug!(connector = %name, position = %r.position, reason = %e, "record quarantined");
                    quarantine.push(QuarantineEntry {
                        source: self.source_name().to_string(),
                        position: r.position.0,
                        raw: text,
                        reason: e.to_string(),
                    });
                }
            }
        }
        let committed = (records.len() + quarantine.len()) as u64;
        let quarantined = quarantine.len() as u64;
        let metrics = self.metrics.clone();
        let ack = raw.ack;
        // What the acknowledgement hears about quarantined records (a dead-letter topic
        // publishes them); copied only when there is an acknowledgement to hear it.
        let delivered = Delivered {
            quarantined: match ack {
                Some(_) => quarantine
                    .iter()
                    .map(|q| Rejected {
                        position: Position(q.position.clone()),
                        raw: q.raw.clone(),
                        reason: q.reason.clone(),
                    })
                    .collect(),
                None => Vec::new(),
            },
        };
        let on_commit = OnCommit::new(move || {
            metrics.committed.increment(committed);
            metrics.quarantined.increment(quarantined);
            metrics.batches.increment(1);
            metrics.latency.record(read_at.elapsed().as_secs_f64());
            metrics.last_commit.set(now_micros() as f64 / 1e6);
            if let Some(ack) = ack {
                ack.committed(&delivered);
            }
        });
        Batch {
            connector: name.clone(),
            records,
            quarantine,
            checkpoints: raw
                .checkpoints
                .into_iter()
                .map(|c| StreamCheckpoint {
                    stream: c.stream,
                    position: c.position,
                })
                .collect(),
            on_commit: Some(on_commit),
            released,
        }
        .prepare_for(&self.options.policy, self.options.matching)
    }
}

/// A connector's metrics (no record content in labels: the connector's name only).
#[derive(Clone)]
struct SourceMetrics {
    read: metrics::Counter,
    committed: metrics::Counter,
    quarantined: metrics::Counter,
    batches: metrics::Counter,
    retries: metrics::Counter,
    errors: metrics::Counter,
    latency: metrics::Histogram,
    last_commit: metrics::Gauge,
}

impl SourceMetrics {
    fn new(connector: &str) -> SourceMetrics {
        let c = connector.to_string();
        SourceMetrics {
            read: metrics::counter!("onetruth_connector_records_read_total", "connector" => c.clone()),
            committed: metrics::counter!("onetruth_connector_records_committed_total", "connector" => c.clone()),
            quarantined: metrics::counter!("onetruth_connector_records_quarantined_total", "connector" => c.clone()),
            batches: metrics::counter!("onetruth_connector_batches_committed_total", "connector" => c.clone()),
            retries: metrics::counter!("onetruth_connector_retries_total", "connector" => c.clone()),
            errors: metrics::counter!("onetruth_connector_errors_total", "connector" => c.clone()),
            latency: metrics::histogram!("onetruth_connector_batch_latency_seconds", "connector" => c.clone()),
            last_commit: metrics::gauge!("onetruth_connector_last_commit_timestamp_seconds", "connector" => c),
        }
    }
}

pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
