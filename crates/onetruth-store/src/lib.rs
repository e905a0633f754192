//! The store: one SQLite file in WAL mode holding source records, identifiers, evidence,
//! customers and aliases, events, changelog, connector checkpoints and quarantine.
//!
//! The only crate that knows SQL. Its API speaks in model types ([`SourceRecord`],
//! [`CustomerId`]) so another backend can sit behind it. Writes go through [`Store::apply`]: one
//! transaction per [`Batch`] covers records, links, changelog and the connector checkpoint, so a
//! crash at any point neither loses nor double-applies a record.

mod apply;
mod changes;
mod codec;
mod explain;
mod initial;
mod pcache;
mod pipeline;
mod query;
mod schema;
mod train;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use onetruth_resolve::{IdentifierPolicy, ResolverConfig, Survivorship};
use rusqlite::{Connection, OpenFlags};

pub use apply::{
    ApplySummary, Batch, CuratorDecision, OnCommit, PreparedBatch, QuarantineEntry,
    StreamCheckpoint, WriteCommand,
};
pub use changes::{Change, ChangeEntry};
pub use explain::*;
pub use initial::{INITIAL_LOAD_CACHE_MIB, InitialLoad};
pub use onetruth_model::SourceRecord;
pub use pcache::{install_page_cache, skipped_truncations};
pub use pipeline::{SpentGroup, StreamCommit};
pub use query::*;
pub use schema::{SCHEMA_VERSION, identifier_key, identifier_key_columns};
pub use train::{ParametersInfo, TrainingOutcome, TrainingSettings};

/// Errors at the store boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "database schema version {found} was written by a newer onetruth (this build supports up to {supported}); upgrade onetruth"
    )]
    NewerSchema { found: i64, supported: i64 },
    // The cause is in the message, not the error chain, so `{:#}` prints it once.
    #[error("database {path}: {cause}")]
    Open { path: PathBuf, cause: BackendError },
    #[error("database {path} does not exist (run `onetruth ingest` or `onetruth demo` first)")]
    Missing { path: PathBuf },
    #[error(
        "database {path} does not exist yet: its first ingest is still running or was interrupted ({path}.loading)"
    )]
    StillLoading { path: PathBuf },
    #[error("stored match parameters {id} are invalid: {message}")]
    Parameters { id: i64, message: String },
    #[error("corrupt stored record {record_id}: {message}")]
    Corrupt { record_id: i64, message: String },
    #[error("corrupt changelog entry {seq}: {message}")]
    CorruptChange { seq: i64, message: String },
    #[error("sqlite: {0}")]
    Backend(BackendError),
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "another onetruth process is loading {path} for the first time ({path}.loading is locked); wait for it to finish"
    )]
    LoadInProgress { path: PathBuf },
    #[error(
        "{path} was created by another process during this first load; the load was discarded, run the ingest again"
    )]
    CreatedDuringLoad { path: PathBuf },
    /// A helper thread of the store stopped (a bug: its panic message is on stderr).
    #[error("{0} stopped unexpectedly")]
    ThreadStopped(&'static str),
}

/// An error from the database engine. Opaque so the engine can change behind the store's API.
#[derive(Debug)]
pub struct BackendError(rusqlite::Error);

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BackendError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(BackendError(e))
    }
}

/// How the store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Which identifiers may link records.
    pub policy: IdentifierPolicy,
    /// Open read-only; fails if the file does not exist.
    pub read_only: bool,
    /// SQLite page cache in MiB.
    pub cache_mib: u32,
    /// How records are matched and clustered (writers only).
    pub resolution: ResolverConfig,
    /// How golden values are chosen.
    pub survivorship: Survivorship,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            policy: IdentifierPolicy::default(),
            read_only: false,
            cache_mib: 256,
            resolution: ResolverConfig::default(),
            survivorship: Survivorship::default(),
        }
    }
}

/// A connection to the store. Cheap to open; open one per thread (SQLite connections are not
/// shared across threads here), readers alongside one writer thanks to WAL.
pub struct Store {
    conn: Connection,
    /// The database file, for the pipelined writer's second connection.
    path: PathBuf,
    policy: IdentifierPolicy,
    /// Resolution settings for writes.
    resolution: ResolverConfig,
    /// Golden value rules for reads.
    survivorship: Survivorship,
    /// The writer's resolver and record-key cache; see [`apply::WriterState`].
    state: Option<apply::WriterState>,
    /// See [`Store::set_stream_checkpoint_pages`].
    stream_checkpoint_pages: u32,
    /// See [`Store::set_stream_commit`].
    stream_commit: pipeline::StreamCommit,
    /// See [`Store::set_stream_spent`].
    stream_spent: Option<std::sync::mpsc::Sender<pipeline::SpentGroup>>,
    /// See [`Store::set_stream_backlog_interval`].
    stream_backlog_interval: Option<std::time::Duration>,
    /// See [`Store::set_stream_failure_flag`].
    stream_failed: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// How a writable connection journals its transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Journal {
    /// WAL with `synchronous = NORMAL`: every store.
    Wal,
    /// No journal and no fsync: only for a file no one else can see ([`InitialLoad`]), where a
    /// failed transaction discards the file.
    Off,
}

/// WAL pages between automatic checkpoints (80 MiB of 8 KiB pages).
pub(crate) const CHECKPOINT_PAGES: u32 = 10_000;

impl Store {
    /// Open (and create or migrate, unless read-only) the store at `path`.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        Store::open_with(path, options, Journal::Wal)
    }

    pub(crate) fn open_with(
        path: &Path,
        options: StoreOptions,
        journal: Journal,
    ) -> Result<Store, StoreError> {
        let open_err = |e| StoreError::Open {
            path: path.to_path_buf(),
            cause: BackendError(e),
        };
        let mut conn = if options.read_only {
            if !path.exists() {
                let path = path.to_path_buf();
                return Err(if initial::loading_path(&path).exists() {
                    StoreError::StillLoading { path }
                } else {
                    StoreError::Missing { path }
                });
            }
            Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(open_err)?
        } else {
            // One connection per thread: SQLite's own mutexes are dead weight.
            Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(open_err)?
        };
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open_err)?;
        // The write path alone prepares some thirty statements (each multi-row insert in two
        // sizes); the default cache of 16 would re-prepare them every transaction.
        conn.set_prepared_statement_cache_capacity(64);
        let cache_kib = -(i64::from(options.cache_mib) * 1024);
        conn.execute_batch(&format!(
            "PRAGMA foreign_keys = ON; PRAGMA cache_size = {cache_kib}; PRAGMA temp_store = MEMORY;"
        ))
        .map_err(open_err)?;
        if options.read_only {
            let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if v > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            if v < SCHEMA_VERSION {
                // A store written by an older build: upgrade it through a writable connection
                // (its migrations run in their own transactions), then read as asked.
                drop(conn);
                drop(Store::open(
                    path,
                    StoreOptions {
                        read_only: false,
                        cache_mib: options.cache_mib,
                        ..StoreOptions::default()
                    },
                )?);
                return Store::open(path, options);
            }
        } else {
            // WAL: readers never block the writer; NORMAL sync is durable against process
            // crashes (a power loss may drop the last transactions, never corrupt the file).
            // A first load, which nobody else sees until it is whole, needs neither.
            let pragmas = match journal {
                Journal::Wal => format!(
                    "PRAGMA page_size = 8192; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES};",
                ),
                Journal::Off => {
                    "PRAGMA page_size = 8192; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
                        .to_string()
                }
            };
            conn.execute_batch(&pragmas).map_err(open_err)?;
            schema::register_functions(&conn)?;
            schema::migrate(&mut conn)?;
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            policy: options.policy,
            resolution: options.resolution,
            survivorship: options.survivorship,
            state: None,
            stream_checkpoint_pages: pipeline::STREAM_CHECKPOINT_PAGES,
            stream_commit: pipeline::StreamCommit::default(),
            stream_spent: None,
            stream_backlog_interval: None,
            stream_failed: None,
        })
    }

    /// Leak the writer's in-memory state instead of freeing it (for a process about to exit;
    /// the next write reloads it from the tables).
    pub fn forget_writer_state(&mut self) {
        std::mem::forget(self.state.take());
    }

    /// The identifier policy this store links with.
    pub fn policy(&self) -> &IdentifierPolicy {
        &self.policy
    }
}
