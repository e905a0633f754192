//! The connector boundary and the manifest mapping engine.
//!
//! A connector (transport) implements [`Source`]: it yields [`RawRecord`]s, each with the
//! [`Position`] to checkpoint once the record is durably applied. A [`Manifest`] describes the
//! source system and how its raw records map onto canonical [`onetruth_model::SourceRecord`]s;
//! [`Mapper`] applies it. Connectors never touch the store: the daemon applies what they yield
//! and writes their checkpoint in the same transaction.

mod json;
mod manifest;
mod mapping;

pub use json::JsonRef;
pub use manifest::*;
pub use mapping::{MapError, Mapped, Mapper};

/// Where a record sits in its source, written by the store with the data it covers so a restart
/// resumes exactly after the last applied record. Opaque to everything but its connector.
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
}

/// A transport failure (not a bad record: bad records are yielded as [`RawBody::Malformed`]).
#[derive(Debug, thiserror::Error)]
// The cause is in the message, not the error chain, so `{:#}` prints it once.
#[error("{context}: {cause}")]
pub struct SourceError {
    pub context: String,
    pub cause: Box<dyn std::error::Error + Send + Sync>,
}

impl SourceError {
    pub fn new(
        context: impl Into<String>,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        SourceError {
            context: context.into(),
            cause: cause.into(),
        }
    }
}

/// A connector's transport. Pull-based and synchronous: each source runs on its own thread and
/// the daemon decides batch sizes, so back-pressure is simply not calling `read`.
pub trait Source: Send {
    /// Read up to `max` records. An empty vector means the source is exhausted (a bounded source
    /// such as a file) or has nothing right now (an unbounded one).
    fn read(&mut self, max: usize) -> Result<Vec<RawRecord>, SourceError>;

    /// Rough progress for long reads: (units done, units total), e.g. bytes of a file.
    fn progress(&self) -> Option<(u64, u64)> {
        None
    }
}
