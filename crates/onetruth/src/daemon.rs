//! `onetruth run`: every configured connector into the store through one long-lived writer
//! (the resolver stays warm), the HTTP API with `/healthz`, `/readyz` and `/metrics`, and a
//! bounded drain on SIGTERM / SIGINT.
//!
//! Shutdown: the first signal stops intake (every source finishes the batch it holds), the
//! writer commits and acknowledges what is queued, the API stops taking requests, and the
//! process exits 0 once both are done, or 1 after `daemon.drain_timeout_ms`. A second signal
//! exits at once: nothing is lost, what was not committed was not acknowledged and is read
//! again on the next start.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use onetruth_api::{ApiState, Operations, Readiness};
use onetruth_connect::SourceContext;
use onetruth_pipeline::{
    Connector, Health, Input, OnSourceError, PipelineReport, Stop, StoreCheckpoints, VersionClock,
};
use onetruth_store::{OnCommit, Store, WriteCommand};
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Load and check every configured connector, reporting every problem at once.
pub fn load_connectors(cfg: &Config) -> anyhow::Result<Vec<Arc<Connector>>> {
    if cfg.daemon.connectors.is_empty() {
        bail!("daemon.connectors: list at least one connector manifest to run");
    }
    let registry = onetruth_pipeline::transports();
    let mut connectors: Vec<Arc<Connector>> = Vec::new();
    let mut errors = Vec::new();
    for path in &cfg.daemon.connectors {
        match Connector::load(path, &registry, &cfg.normalizer) {
            Ok(c) if c.name == CHANGE_FEED => errors.push(format!(
                "manifest {}: source `{CHANGE_FEED}` is reserved for the change feed's cursor",
                path.display()
            )),
            Ok(c) => {
                if let Some(other) = connectors.iter().find(|o| o.name == c.name) {
                    errors.push(format!(
                        "manifest {}: source `{}` is also the source of {} (each connector needs its own source name)",
                        path.display(),
                        c.name,
                        other.path.display()
                    ));
                } else {
                    connectors.push(Arc::new(c));
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(connectors)
}

/// `run --check-config`: config and manifests valid.
pub fn check(cfg: &Config) -> anyhow::Result<()> {
    let connectors = load_connectors(cfg)?;
    let names: Vec<String> = connectors
        .iter()
        .map(|c| format!("{} ({})", c.name, c.transport.kind()))
        .collect();
    println!(
        "config ok: {} connector{}: {}",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    Ok(())
}

/// What `/readyz` and `/metrics` read, and where client writes go.
struct DaemonOps {
    /// Set once a signal asked the daemon to stop: not ready any more.
    draining: AtomicBool,
    health: Arc<Health>,
    warm: Arc<AtomicBool>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    commands: std::sync::mpsc::Sender<(WriteCommand, OnCommit)>,
}

impl Operations for DaemonOps {
    fn readiness(&self) -> Readiness {
        let connectors = self.health.snapshot();
        let resolver = self.warm.load(Ordering::Acquire);
        // A connector that is retrying serves stale data: not ready until it reads again.
        let ready = resolver
            && !self.draining.load(Ordering::Acquire)
            && !connectors.is_empty()
            && connectors
                .values()
                .all(|s| *s == onetruth_pipeline::ConnectorState::Running);
        Readiness {
            ready,
            store: "open",
            resolver: if resolver { "loaded" } else { "loading" },
            connectors: connectors
                .into_iter()
                .map(|(k, v)| (k, v.as_str().to_string()))
                .collect(),
        }
    }

    fn metrics(&self) -> String {
        self.metrics.render()
    }

    fn apply(&self, command: WriteCommand) -> Result<(), String> {
        let (done, committed) = std::sync::mpsc::channel();
        let on_commit = OnCommit::new(move || {
            let _ = done.send(());
        });
        self.commands
            .send((command, on_commit))
            .map_err(|_| "the writer has stopped".to_string())?;
        // Dropped unrun (the daemon stopped, the write failed): the sender goes with it.
        committed
            .recv()
            .map_err(|_| "the command was not committed".to_string())
    }
}

/// Where a running daemon says it is, beside its store (`onetruth.db.daemon`): CLI commands
/// that write (`curate`, `reresolve`) send their write there instead of writing the store
/// themselves, which would make the daemon reload its resolver.
pub fn daemon_file(db: &std::path::Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".daemon");
    std::path::PathBuf::from(name)
}

/// Send a write to the daemon running on the configured store, if there is one: true when it
/// applied it, false when no daemon runs there (the caller writes the store itself).
pub fn route_to_daemon(cfg: &Config, path: &str, body: serde_json::Value) -> anyhow::Result<bool> {
    let Some(url) = running_daemon(&cfg.db) else {
        return Ok(false);
    };
    match send_to_daemon(&url, path, body)? {
        Some(()) => Ok(true),
        None => {
            eprintln!(
                "note: {} names a daemon at {url} that does not answer; writing the store directly",
                daemon_file(&cfg.db).display()
            );
            Ok(false)
        }
    }
}

/// The URL of the daemon running on `db`, if its file says there is one.
pub fn running_daemon(db: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(daemon_file(db)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["url"].as_str().map(str::to_string)
}

/// Send a write to the daemon at `url`. `Ok(None)` when nothing answers there (a daemon
/// killed without cleaning up): the caller writes the store itself.
fn send_to_daemon(url: &str, path: &str, body: serde_json::Value) -> anyhow::Result<Option<()>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = match agent.post(format!("{url}{path}")).send_json(body) {
        Ok(r) => r,
        Err(ureq::Error::Io(_)) | Err(ureq::Error::ConnectionFailed) => return Ok(None),
        Err(e) => return Err(e).context("cannot reach the running daemon"),
    };
    if resp.status().is_success() {
        return Ok(Some(()));
    }
    let body: serde_json::Value = resp.body_mut().read_json().unwrap_or_default();
    bail!(
        "the running daemon refused: {}",
        body["error"].as_str().unwrap_or("no reason given")
    )
}

/// Removes the daemon file when the daemon stops.
struct DaemonFile(std::path::PathBuf);

impl Drop for DaemonFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn run(cfg: &Config, listen: Option<&str>) -> anyhow::Result<ExitCode> {
    let connectors = load_connectors(cfg)?;
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let addr: std::net::SocketAddr = match listen {
        Some(l) => l
            .parse()
            .with_context(|| format!("--listen `{l}` is not an address like 127.0.0.1:7700"))?,
        None => cfg.listen,
    };

    let mut store = crate::open_store(cfg)?;
    store.set_stream_commit(cfg.daemon.commit);
    // A backlog commits like a bulk ingest: `[ingest] commit_interval_ms`.
    store.set_stream_backlog_interval(cfg.commit.interval);
    let mut inputs = Vec::new();
    for c in &connectors {
        let source = c
            .transport
            .create(SourceContext {
                connector: c.name.clone(),
                checkpoints: Arc::new(StoreCheckpoints {
                    db: cfg.db.clone(),
                    options: crate::store_options(cfg, true),
                    connector: c.name.clone(),
                }),
                files: Vec::new(),
                base_dir: onetruth_pipeline::base_dir(&c.path),
            })
            .with_context(|| format!("connector {} ({})", c.name, c.path.display()))?;
        inputs.push(Input::connector(c.clone(), source));
    }

    if let Some((params, base)) = &cfg.change_feed {
        inputs.push(change_feed(cfg, params, base)?);
    }
    let (commands_tx, commands) = std::sync::mpsc::channel();
    let health = Arc::new(Health::new());
    let warm = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(Stop::new());
    let mut options = crate::ingest::pipeline_options(cfg);
    options.versions = VersionClock::PerBatch;
    options.on_source_error = OnSourceError::StopConnector;

    // The writer: warm the resolver, then run every source until told to stop.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let pipeline = {
        let (health, warm, stop) = (health.clone(), warm.clone(), stop.clone());
        std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || {
                let result = writer(
                    &mut store, inputs, &options, &stop, &health, &warm, commands,
                );
                let _ = done_tx.send(result);
            })
            .context("cannot start the writer thread")?
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let ops = Arc::new(DaemonOps {
        draining: AtomicBool::new(false),
        health,
        warm,
        metrics: recorder.clone(),
        commands: commands_tx,
    });
    let state = ApiState::new(
        cfg.db.clone(),
        crate::store_options(cfg, true),
        cfg.normalizer.clone(),
    );
    let drain = cfg.daemon.drain_timeout;
    let db = cfg.db.clone();
    let code = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        let _daemon_file = {
            let path = daemon_file(&db);
            let info = serde_json::json!({"pid": std::process::id(), "url": format!("http://{local}")});
            std::fs::write(&path, info.to_string())
                .with_context(|| format!("cannot write {}", path.display()))?;
            DaemonFile(path)
        };
        crate::serve::announce(local);
        tracing::info!(%local, connectors = connectors.len(), "daemon running");
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                recorder.run_upkeep();
            }
        });
        let shutdown = CancellationToken::new();
        let api = tokio::spawn(onetruth_api::serve_router(
            listener,
            onetruth_api::daemon_router(state, ops.clone()),
            shutdown.clone().cancelled_owned(),
        ));
        let mut signals = crate::serve::Signals::new()?;
        let mut done_rx = done_rx;
        let outcome = tokio::select! {
            () = signals.next() => None,
            r = &mut done_rx => Some(r),
        };
        let outcome = match outcome {
            // The writer stopped by itself: a store failure.
            Some(r) => r.unwrap_or(Err(anyhow::anyhow!("the writer thread stopped"))),
            None => {
                tracing::info!(drain_timeout_ms = drain.as_millis() as u64, "stopping: draining in-flight batches");
                ops.draining.store(true, Ordering::Release);
                stop.stop();
                tokio::select! {
                    r = tokio::time::timeout(drain, &mut done_rx) => match r {
                        Ok(r) => r.unwrap_or(Err(anyhow::anyhow!("the writer thread stopped"))),
                        Err(_) => {
                            tracing::error!("drain timed out; exiting with batches in flight (they are read again on the next start)");
                            return Ok(ExitCode::FAILURE);
                        }
                    },
                    () = signals.next() => {
                        tracing::warn!("second signal: exiting now (uncommitted batches are read again on the next start)");
                        return Ok(ExitCode::from(130));
                    }
                }
            }
        };
        shutdown.cancel();
        match api.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "api server failed"),
            Err(e) => tracing::error!(error = %e, "api task failed"),
        }
        match outcome {
            Ok(report) => {
                tracing::info!(
                    read = report.total_read(),
                    applied = report.summary.applied,
                    quarantined = report.summary.quarantined,
                    "stopped"
                );
                Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "writer failed");
                Err(e)
            }
        }
    })?;
    if code == ExitCode::SUCCESS {
        let _ = pipeline.join();
    }
    Ok(code)
}

/// The connector name the change feed's cursor and health are kept under.
pub const CHANGE_FEED: &str = "change_feed";

/// The change feed as a pipeline input: publishes the changelog from its stored cursor.
fn change_feed(
    cfg: &Config,
    params: &onetruth_connector_kafka::PublishParams,
    base: &std::path::Path,
) -> anyhow::Result<Input> {
    let publisher = onetruth_connector_kafka::Publisher::new(params, base)?;
    let reader = crate::open_store_read(cfg)?;
    let cursor = reader
        .checkpoints(CHANGE_FEED)?
        .get(&params.topic)
        .and_then(|p| onetruth_pipeline::ChangeFeed::parse_cursor(p))
        .unwrap_or(0);
    tracing::info!(topic = %params.topic, after_seq = cursor, "change feed");
    let encode: onetruth_pipeline::FeedEncoder = Box::new(|store, entry| {
        Ok(onetruth_api::change_messages(store, entry)?
            .into_iter()
            .map(|m| onetruth_pipeline::FeedMessage {
                key: m.key,
                value: m.value.map(|v| v.to_string().into_bytes()),
                event: m.event,
            })
            .collect())
    });
    let feed = onetruth_pipeline::ChangeFeed::new(
        reader,
        encode,
        Box::new(KafkaFeed(publisher)),
        cursor,
        std::time::Duration::from_millis(50),
    );
    Ok(Input::checkpoints_only(CHANGE_FEED, Box::new(feed)))
}

/// The change feed's Kafka topic.
struct KafkaFeed(onetruth_connector_kafka::Publisher);

impl onetruth_pipeline::FeedSink for KafkaFeed {
    fn publish(
        &mut self,
        messages: &[onetruth_pipeline::FeedMessage],
    ) -> Result<(), onetruth_connect::SourceError> {
        let outgoing: Vec<onetruth_connector_kafka::Outgoing> = messages
            .iter()
            .map(|m| onetruth_connector_kafka::Outgoing {
                key: m.key.clone(),
                value: m.value.clone(),
                event: m.event,
            })
            .collect();
        self.0
            .publish(&outgoing, std::time::Duration::from_secs(30))
    }

    fn stream(&self) -> String {
        self.0.topic().to_string()
    }
}

/// The writer thread: load the resolver, then apply every source's batches until stopped.
fn writer(
    store: &mut Store,
    inputs: Vec<Input>,
    options: &onetruth_pipeline::PipelineOptions,
    stop: &Stop,
    health: &Health,
    warm: &AtomicBool,
    commands: onetruth_pipeline::Commands,
) -> anyhow::Result<PipelineReport> {
    let started = std::time::Instant::now();
    store.warm_up().context("cannot load the resolver")?;
    warm.store(true, Ordering::Release);
    tracing::info!(
        load_ms = started.elapsed().as_millis() as u64,
        "resolver loaded"
    );
    let report =
        onetruth_pipeline::run_with_commands(store, inputs, options, stop, health, Some(commands))?;
    Ok(report)
}
