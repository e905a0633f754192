//! `onetruth ingest`: read files through a manifest, map, and apply batch by batch.
//!
//! Two threads: one reads and maps (CPU), the other applies to SQLite (IO), joined by a
//! bounded channel so memory stays flat whatever the file size.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use onetruth_connect::{Manifest, Mapper, RawBody, Source};
use onetruth_connector_file::{FileParams, FileSource};
use onetruth_resolve::Matching;
use onetruth_store::{ApplySummary, Batch, InitialLoad, PreparedBatch, QuarantineEntry, Store};

use crate::config::Config;

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

/// A manifest loaded and validated against the config.
pub struct Connector {
    pub manifest: Manifest,
    pub mapper: Mapper,
    pub params: FileParams,
}

impl Connector {
    pub fn load(path: &Path, cfg: &Config) -> anyhow::Result<Connector> {
        let manifest = Manifest::load(path)?;
        Self::from_manifest(manifest, path, cfg)
    }

    pub fn from_manifest(
        manifest: Manifest,
        path: &Path,
        cfg: &Config,
    ) -> anyhow::Result<Connector> {
        match (
            Mapper::new(&manifest, &cfg.normalizer),
            FileParams::from_manifest(manifest.transport.as_ref()),
        ) {
            (Ok(mapper), Ok(params)) => Ok(Connector {
                manifest,
                mapper,
                params,
            }),
            (mapper, params) => {
                let mut errors = mapper.err().unwrap_or_default();
                errors.extend(params.err());
                bail!("manifest {}: {}", path.display(), errors.join("; "))
            }
        }
    }
}

/// Ingest `files` with `connector` into the store.
pub fn ingest(
    cfg: &Config,
    connector: &Connector,
    files: &[PathBuf],
    show_progress: bool,
) -> anyhow::Result<IngestReport> {
    if files.is_empty() {
        bail!("no input files: give one or more files after the manifest");
    }
    // Open every file before writing anything, so a typo in the last path fails fast.
    let mut sources = Vec::new();
    for f in files {
        sources.push(FileSource::open(f, &connector.params).with_context(|| "cannot read input")?);
    }
    let total_bytes: u64 = sources
        .iter()
        .filter_map(|s| s.progress())
        .map(|p| p.1)
        .sum();
    let bar = if show_progress && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(total_bytes);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(connector.manifest.source.clone());
        bar
    } else {
        ProgressBar::hidden()
    };

    // A store's first ingest writes a new file and moves it into place at the end (see
    // `InitialLoad`); `load` discards it on every early return.
    let mut load = if cfg.initial_load {
        InitialLoad::begin(&cfg.db, crate::store_options(cfg, false))
            .context("cannot create the store")?
    } else {
        None
    };
    let mut opened = None;
    let store = match load.as_mut() {
        Some(load) => {
            tracing::debug!(db = %cfg.db.display(), "first ingest into a new store: initial load");
            load.store()
        }
        None => {
            let store = opened.insert(crate::open_store(cfg)?);
            // A first load commits only at its end: what `commit` bounds (what a crash loses) is
            // all or nothing there.
            store.set_stream_commit(cfg.commit);
            store
        }
    };
    let started = Instant::now();
    let run_version = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let connector_name = format!("file:{}", connector.manifest.source);
    let (tx, rx) = mpsc::sync_channel::<PreparedBatch>(8);
    let batch_size = cfg.batch_size;
    let mut report = IngestReport {
        matching: cfg.resolution.matching,
        ..IngestReport::default()
    };

    // Set when every batch is queued: see `apply_all`.
    let reader_done = AtomicBool::new(false);
    // Written groups come back to the reader, which allocated their records, to be freed
    // there (see `Store::set_stream_spent`).
    let (spent_tx, spent_rx) = mpsc::channel();
    store.set_stream_spent(Some(spent_tx));
    let read = std::thread::scope(|scope| -> anyhow::Result<u64> {
        let reader = scope.spawn(|| -> anyhow::Result<u64> {
            // Moved in: dropped when the reader returns, after which the writer frees groups.
            let spent = spent_rx;
            let mut read = 0u64;
            let mut done_bytes = 0u64;
            for mut source in sources {
                loop {
                    spent.try_iter().for_each(drop);
                    let raws = source.read(batch_size).context("reading input")?;
                    if raws.is_empty() {
                        break;
                    }
                    read += raws.len() as u64;
                    // Mapping and preparing (screening, serializing) run here, off the writer thread.
                    let batch = map_batch(connector, &connector_name, raws, run_version)
                        .prepare_for(&cfg.policy, cfg.resolution.matching);
                    if let Some((done, _)) = source.progress() {
                        bar.set_position(done_bytes + done);
                    }
                    if tx.send(batch).is_err() {
                        // The writer stopped on an error; it reports it.
                        return Ok(read);
                    }
                }
                done_bytes += source.progress().map(|p| p.1).unwrap_or(0);
            }
            reader_done.store(true, Ordering::Release);
            // Groups written from here on are freed by the writer, not kept for nobody.
            drop(spent);
            drop(tx);
            Ok(read)
        });
        let written = apply_all(store, rx, &reader_done, &mut report.summary);
        let read = reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
        written?;
        Ok(read)
    })?;
    // The process exits after an ingest: freeing the resolver's million small allocations one
    // by one would add seconds for nothing.
    store.forget_writer_state();
    if let Some(load) = load {
        load.finish()
            .context("cannot move the new store into place")?;
    }
    // Closing copies the rest of the WAL into the database (up to 2 s at 1M records): part of
    // the ingest, so part of its time.
    drop(opened);
    bar.finish_and_clear();
    report.read = read;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Records per transaction when batches queue up faster than they are written (group commit).
const GROUP_RECORDS: usize = 50_000;

fn apply_all(
    store: &mut Store,
    rx: mpsc::Receiver<PreparedBatch>,
    reader_done: &AtomicBool,
    summary: &mut ApplySummary,
) -> anyhow::Result<()> {
    // Block for one batch, then take whatever else is already waiting, up to GROUP_RECORDS:
    // a slow source still commits batch by batch, a fast one commits in large groups.
    // Once the reader is done, what is queued goes one batch per group: a last group of
    // everything queued (40,000 records) was resolved while the writer waited and then
    // written while the planner waited, about a second with one core idle at 1M records;
    // in batches, resolving one overlaps writing the one before.
    let groups = std::iter::from_fn(|| {
        let first = rx.recv().ok()?;
        let mut records = first.len();
        let mut group = vec![first];
        while records < GROUP_RECORDS && !reader_done.load(Ordering::Acquire) {
            match rx.try_recv() {
                Ok(b) => {
                    records += b.len();
                    group.push(b);
                }
                Err(_) => break,
            }
        }
        Some(group)
    });
    // Resolving the next group overlaps writing the previous one.
    *summary += store.apply_stream(groups).context("writing to the store")?;
    Ok(())
}

/// Map raw records; failures become quarantine entries with the raw payload and the reason.
pub fn map_batch(
    connector: &Connector,
    connector_name: &str,
    raws: Vec<onetruth_connect::RawRecord>,
    run_version: i64,
) -> Batch {
    let mut batch = Batch {
        connector: connector_name.to_string(),
        records: Vec::with_capacity(raws.len()),
        quarantine: Vec::new(),
        checkpoint: raws.last().map(|r| r.position.0.clone()),
    };
    for raw in raws {
        match connector.mapper.map_owned(raw, run_version) {
            Ok(record) => batch.records.push(record),
            Err((e, raw)) => {
                let text = match raw.body {
                    RawBody::Parsed(obj) => raw
                        .text
                        .unwrap_or_else(|| serde_json::Value::Object(obj).to_string()),
                    RawBody::Json(text) | RawBody::Malformed { text, .. } => text,
                };
                tracing::debug!(position = %raw.position, reason = %e, "record quarantined");
                batch.quarantine.push(QuarantineEntry {
                    source: connector.manifest.source.clone(),
                    position: raw.position.0,
                    raw: text,
                    reason: e.to_string(),
                });
            }
        }
    }
    batch
}
