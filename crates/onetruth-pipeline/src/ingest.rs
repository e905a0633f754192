//! `onetruth ingest` (and `demo`): the named files of one connector, read once into the store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onetruth_connect::{NoCheckpoints, SourceContext};
use onetruth_resolve::Matching;
use onetruth_store::{ApplySummary, InitialLoad, Store, StoreError, StoreOptions, StreamCommit};

use crate::{
    Connector, Health, Input, PipelineError, PipelineOptions, Stop, VersionClock, base_dir,
};

/// How an ingest runs.
#[derive(Clone)]
pub struct IngestOptions {
    pub db: PathBuf,
    pub store: StoreOptions,
    pub pipeline: PipelineOptions,
    /// When the transaction of a store that exists commits.
    pub commit: StreamCommit,
    /// Write a store that does not exist yet as a new file moved into place at the end
    /// ([`InitialLoad`]).
    pub initial_load: bool,
}

/// What an ingest run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct IngestReport {
    pub read: u64,
    pub summary: ApplySummary,
    pub elapsed: Duration,
    /// How pairs became links, for the wording of the summary.
    pub matching: Matching,
}

impl IngestReport {
    pub fn line(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        // Identifier matching scores nothing: its candidate pairs share an identifier and are
        // linked unless a guard refuses them.
        let pairs = match self.matching {
            Matching::Probabilistic => "candidate pairs scored",
            Matching::Identifiers => "candidate pairs sharing an identifier",
        };
        format!(
            "read {} / applied {} / unchanged {} / quarantined {} in {:.2}s ({:.0} records/s); customers created {}, merges {}, splits {}; {} {pairs}",
            self.read,
            self.summary.applied,
            self.summary.unchanged,
            self.summary.quarantined,
            secs,
            self.read as f64 / secs,
            self.summary.customers_created,
            self.summary.merges,
            self.summary.splits,
            self.summary.pairs_scored,
        )
    }
}

/// Why an ingest failed.
// Each message holds its cause, so `{:#}` prints it once: no `#[source]` chains.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no input files: give one or more files after the manifest")]
    NoFiles,
    #[error("cannot read input: {0}")]
    Open(onetruth_connect::SourceError),
    #[error("cannot create the store: {0}")]
    Create(StoreError),
    #[error("cannot open the store: {0}")]
    OpenStore(StoreError),
    #[error("cannot move the new store into place: {0}")]
    Finish(StoreError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Read `files` through `connector` into the store at `options.db`, once.
pub fn ingest(
    connector: Arc<Connector>,
    files: &[PathBuf],
    options: &IngestOptions,
) -> Result<IngestReport, IngestError> {
    if files.is_empty() {
        return Err(IngestError::NoFiles);
    }
    // Opening reads nothing yet, but fails on a missing file before anything is written.
    let source = connector
        .transport
        .create(SourceContext {
            connector: connector.name.clone(),
            checkpoints: Arc::new(NoCheckpoints),
            files: files.to_vec(),
            base_dir: base_dir(&connector.path),
        })
        .map_err(IngestError::Open)?;

    // A store's first ingest writes a new file and moves it into place at the end (see
    // `InitialLoad`); `load` discards it on every early return.
    let mut load = if options.initial_load {
        InitialLoad::begin(&options.db, options.store.clone()).map_err(IngestError::Create)?
    } else {
        None
    };
    let mut opened = None;
    let store: &mut Store = match load.as_mut() {
        Some(load) => {
            tracing::debug!(db = %options.db.display(), "first ingest into a new store: initial load");
            load.store()
        }
        None => {
            let store = opened.insert(
                Store::open(&options.db, options.store.clone()).map_err(IngestError::OpenStore)?,
            );
            // A first load commits only at its end: what `commit` bounds (what a crash loses)
            // is all or nothing there.
            store.set_stream_commit(options.commit);
            store
        }
    };
    let started = Instant::now();
    let mut pipeline = options.pipeline.clone();
    pipeline.versions = VersionClock::starting_now();
    let matching = pipeline.matching;
    let report = crate::run(
        store,
        vec![Input::connector(connector, source)],
        &pipeline,
        &Stop::new(),
        &Health::new(),
    )?;
    // The process exits after an ingest: freeing the resolver's million small allocations one
    // by one would add seconds for nothing.
    store.forget_writer_state();
    if let Some(load) = load {
        load.finish().map_err(IngestError::Finish)?;
    }
    // Closing copies the rest of the WAL into the database (up to 2 s at 1M records): part of
    // the ingest, so part of its time.
    drop(opened);
    Ok(IngestReport {
        read: report.total_read(),
        summary: report.summary,
        elapsed: started.elapsed(),
        matching,
    })
}
