//! The contract between a transport and the pipeline that applies what it reads.
//!
//! A [`Source`] is polled on its own thread. Each poll says what happened ([`Poll`]): a batch of
//! records, nothing for now (with a hint how long to wait), or the end of a bounded source. A
//! [`RawBatch`] carries where each of its streams stands after it ([`Checkpoint`]s), which the
//! store writes in the transaction holding the batch's records, and an [`Ack`] the store runs
//! once that transaction has committed, never before: it is what lets Kafka commit offsets and a
//! webhook answer 2xx. A source learns where it stood from [`CheckpointReader`] when it starts
//! (and a Kafka source again on each partition assignment).

use std::collections::BTreeMap;
use std::time::Duration;

/// Where a record sits in its source (`path:line`, `topic/partition@offset`), shown with a
/// quarantined record so it can be found again.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Position(pub String);

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The body of a raw record: a parsed JSON object, the text of one, or text that could not be
/// read as a record (kept so it can be quarantined with its reason instead of being dropped).
#[derive(Debug, Clone, PartialEq)]
pub enum RawBody {
    Parsed(serde_json::Map<String, serde_json::Value>),
    /// The text of a JSON object as delivered (a JSONL line). The mapper parses it, borrowing
    /// its strings, and keeps it as the raw payload; text that is not a JSON object is
    /// quarantined with serde_json's reason.
    Json(String),
    Malformed {
        text: String,
        reason: String,
    },
}

/// One record as the transport delivered it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    pub position: Position,
    pub body: RawBody,
    /// For a parsed body, the JSON text it was parsed from, when the transport had one (a
    /// JSONL line): kept as the record's raw payload exactly as delivered.
    pub text: Option<String>,
    /// What the transport knows beyond the body (a Kafka key and headers, a CDC operation).
    pub meta: Option<Box<RecordMeta>>,
}

/// What a transport knows about a record beyond its body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordMeta {
    /// Readable by the mapping as `_meta.<path>` (`_meta.key`, `_meta.headers.tenant`).
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// The transport says the record was deleted (a Debezium `d` event): mapped as a delete
    /// whatever the manifest's `delete_when` says.
    pub delete: bool,
    /// The transport's version of the record (a Debezium LSN), used when the manifest names
    /// no version field.
    pub version: Option<i64>,
}

/// Where one stream of a connector stands after a batch: a Kafka partition's next offset, a
/// file's last line, an HTTP stream's cursor. Written in the same transaction as the batch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Checkpoint {
    /// The stream within the connector (`orders/2`, `export-2026-12-01.csv`); `""` for a
    /// connector with a single stream.
    pub stream: String,
    /// Opaque to everything but the connector that wrote it.
    pub position: String,
}

impl Checkpoint {
    pub fn new(stream: impl Into<String>, position: impl Into<String>) -> Checkpoint {
        Checkpoint {
            stream: stream.into(),
            position: position.into(),
        }
    }
}

/// Stored checkpoints of one connector: stream -> position.
pub type Checkpoints = BTreeMap<String, String>;

/// What became of a committed batch, for its source's acknowledgement.
#[derive(Debug, Default)]
pub struct Delivered {
    /// Records of the batch that were quarantined instead of applied (committed to the
    /// quarantine table all the same): what a dead-letter topic receives.
    pub quarantined: Vec<Rejected>,
}

/// A quarantined record: where it was, what it held, why it was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub position: Position,
    pub raw: String,
    pub reason: String,
}

/// What to run once the transaction holding a batch has committed. Dropping an `Ack` without
/// running it means the batch was not committed (the pipeline stopped, the write failed): the
/// source must not treat its records as delivered.
pub struct Ack(Box<dyn FnOnce(&Delivered) + Send>);

impl Ack {
    pub fn new(f: impl FnOnce(&Delivered) + Send + 'static) -> Ack {
        Ack(Box::new(f))
    }

    /// Run it: the batch is durably applied.
    pub fn committed(self, delivered: &Delivered) {
        (self.0)(delivered)
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ack")
    }
}

/// Records read together, with where their streams stand after them.
#[derive(Debug, Default)]
pub struct RawBatch {
    pub records: Vec<RawRecord>,
    /// One per stream the batch advances (several for a Kafka consumer reading partitions).
    pub checkpoints: Vec<Checkpoint>,
    /// Run after the batch's transaction commits.
    pub ack: Option<Ack>,
}

/// What a poll found.
#[derive(Debug)]
pub enum Poll {
    /// Records to apply (possibly none but a checkpoint to advance, e.g. an empty file).
    Records(RawBatch),
    /// Nothing right now; poll again after about this long (or sooner when woken).
    Idle(Duration),
    /// A bounded source read everything it will ever read.
    End,
}

/// A transport failure (not a bad record: bad records are yielded as [`RawBody::Malformed`]).
#[derive(Debug, thiserror::Error)]
// The cause is in the message, not the error chain, so `{:#}` prints it once.
#[error("{context}: {cause}")]
pub struct SourceError {
    pub context: String,
    pub cause: Box<dyn std::error::Error + Send + Sync>,
    /// Whether trying again later may succeed (a broker or API that is down, a timeout), as
    /// opposed to a failure that needs a person (a missing file, a bad credential).
    pub retryable: bool,
}

impl SourceError {
    /// A failure that trying again will not mend.
    pub fn new(
        context: impl Into<String>,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        SourceError {
            context: context.into(),
            cause: cause.into(),
            retryable: false,
        }
    }

    /// A failure that may pass: the pipeline backs off and polls again.
    pub fn retryable(
        context: impl Into<String>,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        SourceError {
            retryable: true,
            ..SourceError::new(context, cause)
        }
    }
}

/// How far a bounded read has come, in the source's own units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    /// What the units are, for display.
    pub unit: ProgressUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressUnit {
    Bytes,
    Records,
}

/// A connector's transport. Pull-based and synchronous: each source runs on its own thread and
/// the pipeline decides batch sizes, so back-pressure is simply not polling.
pub trait Source: Send {
    /// Read up to about `max` records.
    fn poll(&mut self, max: usize) -> Result<Poll, SourceError>;

    /// How far a bounded read has come.
    fn progress(&self) -> Option<Progress> {
        None
    }

    /// Release what the source holds (leave a consumer group, close connections). Called once,
    /// after the last poll, when every batch it yielded was committed or dropped.
    fn close(&mut self) {}
}

/// Reads a connector's stored checkpoints: what a source resumes from when it starts, and a
/// Kafka source on every partition assignment.
pub trait CheckpointReader: Send + Sync {
    fn checkpoints(&self) -> Result<Checkpoints, SourceError>;
}

/// No stored checkpoints: every source starts from its beginning (tests, dry runs).
pub struct NoCheckpoints;

impl CheckpointReader for NoCheckpoints {
    fn checkpoints(&self) -> Result<Checkpoints, SourceError> {
        Ok(Checkpoints::new())
    }
}
