//! `onetruth ingest`: the pipeline over the named files, with a progress bar on a terminal.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use onetruth_pipeline::{
    Connector, IngestOptions, IngestReport, OnSourceError, PipelineOptions, ProgressFn,
};

use crate::config::Config;

/// Load a manifest against the config and the registered transports.
pub fn load_connector(path: &Path, cfg: &Config) -> anyhow::Result<Arc<Connector>> {
    Ok(Arc::new(Connector::load(
        path,
        &onetruth_pipeline::transports(),
        &cfg.normalizer,
    )?))
}

/// The pipeline settings the config gives.
pub fn pipeline_options(cfg: &Config) -> PipelineOptions {
    let mut p = PipelineOptions::new(cfg.policy.clone(), cfg.resolution.matching);
    p.batch_size = cfg.batch_size;
    p.on_source_error = OnSourceError::StopAll;
    p
}

/// Ingest `files` with `connector` into the store.
pub fn ingest(
    cfg: &Config,
    connector: Arc<Connector>,
    files: &[PathBuf],
    show_progress: bool,
) -> anyhow::Result<IngestReport> {
    let mut pipeline = pipeline_options(cfg);
    let bar = if show_progress && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(connector.name.clone());
        Some(bar)
    } else {
        None
    };
    if let Some(bar) = &bar {
        let bar = bar.clone();
        let progress: ProgressFn = Arc::new(move |_, p| {
            bar.set_length(p.total);
            bar.set_position(p.done);
        });
        pipeline.progress = Some(progress);
    }
    let options = IngestOptions {
        db: cfg.db.clone(),
        store: crate::store_options(cfg, false),
        pipeline,
        commit: cfg.commit,
        initial_load: cfg.initial_load,
    };
    let report = onetruth_pipeline::ingest(connector, files, &options)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(report)
}

/// `onetruth quarantine replay`: the connector's quarantined records through its manifest
/// again. Returns how many were replayed and what applying them did.
pub fn replay_quarantine(
    cfg: &Config,
    connector: Arc<Connector>,
) -> anyhow::Result<(u64, onetruth_store::ApplySummary)> {
    if crate::daemon::running_daemon(&cfg.db).is_some() {
        eprintln!(
            "note: a daemon runs on this store; it will reload its resolver after the replay"
        );
    }
    let reader = crate::open_store_read(cfg)?;
    let mut store = crate::open_store(cfg)?;
    let mut options = pipeline_options(cfg);
    options.versions = onetruth_pipeline::VersionClock::starting_now();
    let source = onetruth_pipeline::QuarantineSource::new(reader, connector.clone());
    let report = onetruth_pipeline::run(
        &mut store,
        vec![onetruth_pipeline::Input::replay(
            connector,
            Box::new(source),
        )],
        &options,
        &onetruth_pipeline::Stop::new(),
        &onetruth_pipeline::Health::new(),
    )?;
    Ok((report.total_read(), report.summary))
}
