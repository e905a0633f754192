//! The `onetruth` binary: CLI, config and wiring. Thin: the work happens in the library crates.

mod config;
mod daemon;
mod demo;
mod export;
mod ingest;
mod output;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use onetruth_model::{CustomerId, IdentifierKind};
use onetruth_store::{CuratorDecision, Store, StoreOptions};

use crate::config::Config;

// Records are built on the mapping thread and freed on the writer thread; glibc malloc is slow
// at cross-thread frees, mimalloc is not (measured: see README, Benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One customer, one truth: merge customer records from every system into one
/// identity-resolved store and look anyone up by any identifier.
#[derive(Parser)]
#[command(
    name = "onetruth",
    version,
    about = "One customer, one truth: merge customer records from every system into one identity-resolved store"
)]
struct Cli {
    /// The SQLite store file.
    #[arg(long, global = true, env = "ONETRUTH_DB", value_name = "PATH")]
    db: Option<PathBuf>,
    /// Config file (TOML); `ONETRUTH__SECTION__KEY` environment variables override it.
    #[arg(long, global = true, env = "ONETRUTH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format: `text` (default; coloured on a terminal) or `json` (one object per line).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "ONETRUTH_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum CurateCommand {
    /// The two records are different people: they never share a customer.
    NeverMerge {
        /// SOURCE:SOURCE_ID
        left: String,
        /// SOURCE:SOURCE_ID
        right: String,
    },
    /// The two records are one person.
    ForceMerge {
        /// SOURCE:SOURCE_ID
        left: String,
        /// SOURCE:SOURCE_ID
        right: String,
    },
    /// Take the record out of its customer: it takes no links (force-merges still apply).
    Detach {
        /// SOURCE:SOURCE_ID
        record: String,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// Map a connector's quarantined records again through its manifest (after fixing it):
    /// those that map now are applied and leave the quarantine, the others stay with the new
    /// reason.
    Replay {
        /// The connector manifest (its `source` selects the records).
        #[arg(long, value_name = "MANIFEST")]
        connector: PathBuf,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Ingest CSV / JSONL files (optionally .gz) through a connector manifest.
    Ingest {
        /// The connector manifest (TOML or YAML).
        #[arg(long, value_name = "MANIFEST")]
        connector: PathBuf,
        /// Input files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// No progress bar, even on a terminal.
        #[arg(long)]
        quiet: bool,
    },
    /// Find customers by identifier: email:x@y.z, phone:+14155552671, external:system:id.
    Lookup {
        /// KIND:VALUE
        identifier: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a customer: golden profile with provenance, source records, recent events.
    Show {
        /// Customer id (cus_N); aliases resolve.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Score any two stored records the way the resolver does (active parameters, generic
    /// values ignored): each field's comparison level and weight, the total, the band and the
    /// decision the resolver stored for the pair.
    ExplainPair {
        /// SOURCE:SOURCE_ID of the first record, e.g. crm:003Dp00000mRaBa1YR
        left: String,
        /// SOURCE:SOURCE_ID of the second record
        right: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Explain a customer: every link inside it (per-field levels, weights, total), the links
    /// guards refused and the possible matches kept for review.
    Explain {
        /// Customer id (cus_N); aliases resolve.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Estimate match parameters from the stored records: u from random pairs, m by
    /// expectation-maximisation over candidate pairs. Saved as a new active version in the
    /// store; new and changed records are scored with it (`--reresolve` rescores everything).
    Train {
        /// Random record pairs compared to estimate u.
        #[arg(long, default_value_t = 200_000)]
        random_pairs: usize,
        /// Most candidate pairs EM runs over.
        #[arg(long, default_value_t = 500_000)]
        max_candidates: usize,
        /// EM iteration limit.
        #[arg(long, default_value_t = 50)]
        max_iterations: usize,
        /// Seed of the random pair sample.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print the estimates without saving them.
        #[arg(long)]
        dry_run: bool,
        /// After saving, rescore every pair and re-cluster every customer with the new
        /// parameters (what `onetruth reresolve` does).
        #[arg(long, conflicts_with = "dry_run")]
        reresolve: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rescore every candidate pair with the active parameters and settings and re-cluster
    /// every customer (ids stay stable; merges and splits go to the changelog).
    Reresolve,
    /// List possible matches kept for review (pairs scored between the possible and link
    /// thresholds, in different customers), strongest first.
    Possible {
        /// How many pairs to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Record a curator decision; it wins over any evidence from then on.
    Curate {
        #[command(subcommand)]
        decision: CurateCommand,
    },
    /// Stream customers, links or events as JSONL or CSV.
    Export {
        /// What to export.
        what: export::What,
        /// Output format.
        #[arg(long, default_value = "jsonl")]
        format: export::Format,
        /// Only customers changed after this changelog version (customers only).
        #[arg(long, value_name = "VERSION")]
        since: Option<i64>,
        /// Write to a file instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Counts of customers, records, identifiers, events, quarantine and checkpoints.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List quarantined records with their reasons.
    Quarantine {
        /// How many records to list, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(subcommand)]
        action: Option<QuarantineCommand>,
    },
    /// Run the sync daemon: every connector in `[daemon] connectors`, the HTTP API,
    /// `/metrics`, `/healthz` and `/readyz`, until SIGTERM / SIGINT.
    Run {
        /// Listen address (default from config, 127.0.0.1:7700).
        #[arg(long)]
        listen: Option<String>,
        /// Check the config and every connector manifest, then exit.
        #[arg(long)]
        check_config: bool,
    },
    /// Serve the HTTP API over a store (read-only; `run` serves it too).
    Serve {
        /// Listen address (default from config, 127.0.0.1:7700).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Ingest the bundled sample CRM, billing, helpdesk and phone data and serve the API.
    Demo {
        /// Listen address for the API (default from config, 127.0.0.1:7700).
        #[arg(long)]
        listen: Option<String>,
        /// Ingest only; do not serve.
        #[arg(long)]
        no_serve: bool,
    },
}

/// Exit status when `lookup` or `show` finds nothing (1 is an error, 2 a usage error).
const NOT_FOUND: u8 = 3;

/// `mi_option_purge_delay` in mimalloc v2's `mi_option_e` (the sys crate names no constant
/// for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keep freed memory for a second before giving it back to the OS (mimalloc's default is
/// 10 ms). Ingest frees and reallocates each group's records continuously; purging them
/// in between cost a third of the process's kernel time in page faults (measured: 223k
/// faults for 300k records, 70k with this). An idle daemon still returns its memory.
/// `MIMALLOC_PURGE_DELAY` in the environment wins.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads options atomically and allows
        // setting them at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
    }
}

fn main() -> ExitCode {
    tune_allocator();
    // Before any thread touches SQLite (see the store's `pcache` module). Without it the
    // default page cache stays: correct, slower commits.
    let page_cache = onetruth_store::install_page_cache();
    let cli = Cli::parse();
    if let Err(e) = init_tracing(
        matches!(
            cli.command,
            Command::Serve { .. } | Command::Demo { .. } | Command::Run { .. }
        ),
        cli.log_format,
    ) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    tracing::debug!(page_cache, "sqlite page cache wrapper");
    match run(cli) {
        Ok(code) => code,
        // `onetruth export ... | head` is not an error.
        Err(e) if e.chain().any(is_broken_pipe) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return io.kind() == BrokenPipe;
    }
    if let Some(json) = e.downcast_ref::<serde_json::Error>() {
        return json.io_error_kind() == Some(BrokenPipe);
    }
    if let Some(csv::ErrorKind::Io(io)) = e.downcast_ref::<csv::Error>().map(|c| c.kind()) {
        return io.kind() == BrokenPipe;
    }
    false
}

fn init_tracing(daemon: bool, format: LogFormat) -> anyhow::Result<()> {
    let default = if daemon { "info" } else { "warn" };
    let filter = match std::env::var("ONETRUTH_LOG") {
        Ok(spec) => tracing_subscriber::EnvFilter::try_new(&spec)
            .with_context(|| format!("ONETRUTH_LOG: `{spec}` is not a log filter"))?,
        Err(_) => tracing_subscriber::EnvFilter::new(default),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    Ok(())
}

pub(crate) fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    Store::open(&cfg.db, store_options(cfg, false)).context("cannot open the store")
}

pub(crate) fn open_store_read(cfg: &Config) -> anyhow::Result<Store> {
    Store::open(&cfg.db, store_options(cfg, true)).context("cannot open the store")
}

/// The record id of `SOURCE:SOURCE_ID`; prints "no record" and returns `None` when unknown.
fn record_id(store: &Store, key: &str) -> anyhow::Result<Option<i64>> {
    let (source, source_id) = key
        .split_once(':')
        .with_context(|| format!("write records as SOURCE:SOURCE_ID, not `{key}`"))?;
    let id = store.record_id(source, source_id)?;
    if id.is_none() {
        eprintln!("no record {key}");
    }
    Ok(id)
}

/// Resolve a customer id; when it does not resolve, say why (unknown, or split into others).
fn resolve_or_report(
    store: &Store,
    id: CustomerId,
) -> anyhow::Result<Option<onetruth_store::Resolved>> {
    if let Some(r) = store.resolve(id)? {
        return Ok(Some(r));
    }
    match store.split_into(id)? {
        Some(into) => {
            let into: Vec<String> = into.iter().map(|c| c.to_string()).collect();
            eprintln!("{id} was split into {}", into.join(", "));
        }
        None => eprintln!("no customer {id}"),
    }
    Ok(None)
}

pub(crate) fn store_options(cfg: &Config, read_only: bool) -> StoreOptions {
    StoreOptions {
        policy: cfg.policy.clone(),
        read_only,
        cache_mib: cfg.cache_mib,
        resolution: cfg.resolution.clone(),
        survivorship: cfg.survivorship.clone(),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(cli.config.as_deref(), cli.db)?;
    match cli.command {
        Command::Ingest {
            connector,
            files,
            quiet,
        } => {
            let connector = ingest::load_connector(&connector, &cfg)?;
            let report = ingest::ingest(&cfg, connector, &files, !quiet)?;
            use std::io::Write;
            writeln!(std::io::stdout(), "{}", report.line())?;
        }
        Command::Lookup { identifier, json } => {
            let (kind, value) = identifier
                .split_once(':')
                .context("write the identifier as KIND:VALUE, e.g. email:jane@example.com")?;
            let kind = IdentifierKind::parse(kind)
                .filter(|k| cfg.normalizer.is_declared(k))
                .with_context(|| {
                    format!(
                        "unknown identifier kind `{kind}`: use email, phone, external or a kind declared in identifiers.custom_kinds"
                    )
                })?;
            let id = cfg
                .normalizer
                .normalize(&kind, value, None)
                .with_context(|| format!("invalid {kind}"))?;
            let store = open_store_read(&cfg)?;
            let ids = store.lookup(&id.kind, &id.value)?;
            if ids.is_empty() {
                eprintln!("no customer has {kind} {}", id.value);
                return Ok(ExitCode::from(NOT_FOUND));
            }
            let mut profiles = Vec::new();
            for c in ids {
                profiles.extend(store.customer(c)?);
            }
            output::print_lookup(&profiles, json)?;
        }
        Command::Show { id, json } => {
            let id: CustomerId = id.parse().map_err(anyhow::Error::msg)?;
            let store = open_store_read(&cfg)?;
            let Some(resolved) = resolve_or_report(&store, id)? else {
                return Ok(ExitCode::from(NOT_FOUND));
            };
            let profile = store
                .customer(resolved.id)?
                .with_context(|| format!("customer {} vanished while reading", resolved.id))?;
            output::print_profile(&profile, resolved.alias, json)?;
        }
        Command::ExplainPair { left, right, json } => {
            let store = open_store_read(&cfg)?;
            let (Some(a), Some(b)) = (record_id(&store, &left)?, record_id(&store, &right)?) else {
                return Ok(ExitCode::from(NOT_FOUND));
            };
            let p = store
                .explain_pair(a, b)?
                .context("record vanished while reading")?;
            output::print_pair(&p, json)?;
        }
        Command::Explain { id, json } => {
            let id: CustomerId = id.parse().map_err(anyhow::Error::msg)?;
            let store = open_store_read(&cfg)?;
            let Some(resolved) = resolve_or_report(&store, id)? else {
                return Ok(ExitCode::from(NOT_FOUND));
            };
            let e = store
                .explain_customer(resolved.id)?
                .with_context(|| format!("customer {} has no records", resolved.id))?;
            output::print_explanation(&e, json)?;
        }
        Command::Train {
            random_pairs,
            max_candidates,
            max_iterations,
            seed,
            dry_run,
            reresolve,
            json,
        } => {
            let mut store = open_store(&cfg)?;
            let outcome = store.train(onetruth_store::TrainingSettings {
                random_pairs,
                max_candidates,
                seed,
                max_iterations,
                save: !dry_run,
            })?;
            output::print_training(&outcome, json)?;
            if reresolve {
                let s = store.reresolve()?;
                eprintln!(
                    "re-resolved: {} customers created, {} merged, {} split; {} pairs scored",
                    s.customers_created, s.merges, s.splits, s.pairs_scored
                );
            }
        }
        Command::Reresolve => {
            if daemon::route_to_daemon(&cfg, "/v1/admin/reresolve", serde_json::json!({}))? {
                println!("re-resolved by the running daemon");
                return Ok(ExitCode::SUCCESS);
            }
            let mut store = open_store(&cfg)?;
            let s = store.reresolve()?;
            println!(
                "re-resolved: {} customers created, {} merged, {} split; {} pairs scored",
                s.customers_created, s.merges, s.splits, s.pairs_scored
            );
        }
        Command::Possible { limit, json } => {
            let store = open_store_read(&cfg)?;
            output::print_possible(&store.possible_matches(limit)?, json)?;
        }
        Command::Curate { decision } => {
            let body = match &decision {
                CurateCommand::NeverMerge { left, right } => {
                    serde_json::json!({"action": "never_merge", "records": [left, right]})
                }
                CurateCommand::ForceMerge { left, right } => {
                    serde_json::json!({"action": "force_merge", "records": [left, right]})
                }
                CurateCommand::Detach { record } => {
                    serde_json::json!({"action": "detach", "records": [record]})
                }
            };
            if daemon::route_to_daemon(&cfg, "/v1/curation", body)? {
                println!("recorded by the running daemon");
                return Ok(ExitCode::SUCCESS);
            }
            let mut store = open_store(&cfg)?;
            let decision = match &decision {
                CurateCommand::NeverMerge { left, right }
                | CurateCommand::ForceMerge { left, right } => {
                    let (Some(a), Some(b)) = (record_id(&store, left)?, record_id(&store, right)?)
                    else {
                        return Ok(ExitCode::from(NOT_FOUND));
                    };
                    if a == b {
                        anyhow::bail!("a record cannot be curated against itself");
                    }
                    if matches!(decision, CurateCommand::NeverMerge { .. }) {
                        CuratorDecision::NeverMerge(a, b)
                    } else {
                        CuratorDecision::ForceMerge(a, b)
                    }
                }
                CurateCommand::Detach { record } => {
                    let Some(a) = record_id(&store, record)? else {
                        return Ok(ExitCode::from(NOT_FOUND));
                    };
                    CuratorDecision::Detach(a)
                }
            };
            let s = store.curate(&decision)?;
            println!(
                "recorded; {} customers created, {} merged, {} split",
                s.customers_created, s.merges, s.splits
            );
        }
        Command::Export {
            what,
            format,
            since,
            output,
        } => {
            if since.is_some() && !matches!(what, export::What::Customers) {
                anyhow::bail!("--since applies to `export customers` only");
            }
            let store = open_store_read(&cfg)?;
            let n = export::export(&store, what, format, since, output.as_deref())?;
            eprintln!("exported {n} rows");
        }
        Command::Stats { json } => {
            let store = open_store_read(&cfg)?;
            output::print_stats(&store.stats()?, json)?;
        }
        Command::Quarantine {
            action: Some(QuarantineCommand::Replay { connector }),
            ..
        } => {
            let connector = ingest::load_connector(&connector, &cfg)?;
            let (replayed, s) = ingest::replay_quarantine(&cfg, connector)?;
            println!(
                "replayed {replayed} quarantined records: applied {}, unchanged {}, still quarantined {}",
                s.applied, s.unchanged, s.quarantined
            );
        }
        Command::Quarantine { limit, .. } => {
            let store = open_store_read(&cfg)?;
            let total = store.stats()?.quarantined;
            output::print_quarantine(&store.quarantined(limit)?, total)?;
        }
        Command::Serve { listen } => {
            // Serving a mistyped path would answer 404 forever: insist the store exists, and
            // migrate it so readers find the current schema.
            if !cfg.db.exists() {
                anyhow::bail!(
                    "database {} does not exist (run `onetruth ingest` or `onetruth demo` first)",
                    cfg.db.display()
                );
            }
            drop(open_store(&cfg)?);
            serve::serve(&cfg, listen.as_deref())?;
        }
        Command::Run {
            listen,
            check_config,
        } => {
            if check_config {
                daemon::check(&cfg)?;
            } else {
                return daemon::run(&cfg, listen.as_deref());
            }
        }
        Command::Demo { listen, no_serve } => {
            demo::run(&cfg, listen.as_deref(), no_serve)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
