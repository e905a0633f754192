//! The connector boundary and the manifest mapping engine.
//!
//! A connector's transport implements [`Source`] (see [`source`]): polled on its own thread, it
//! yields [`RawBatch`]es with per-stream [`Checkpoint`]s and an [`Ack`] that runs only after the
//! store has committed the batch. Transports register by `type` in a [`Registry`], each with a
//! typed params struct read from the manifest's `transport` table. A [`Manifest`] describes the
//! source system and how its raw records map onto canonical [`onetruth_model::SourceRecord`]s;
//! [`Mapper`] applies it. Connectors never touch the store: the pipeline applies what they yield
//! and writes their checkpoints in the same transaction.

pub mod backoff;
mod json;
mod manifest;
mod mapping;
pub mod registry;
pub mod source;

pub use json::JsonRef;
pub use manifest::*;
pub use mapping::{MapError, Mapped, Mapper};
pub use registry::{Registry, Replayed, SourceContext, Transport, TypedSourceFactory};
pub use source::{
    Ack, Checkpoint, CheckpointReader, Checkpoints, Delivered, NoCheckpoints, Poll, Position,
    Progress, ProgressUnit, RawBatch, RawBody, RawRecord, RecordMeta, Rejected, Source,
    SourceError,
};
