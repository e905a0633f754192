//! The ingest pipeline, shared by `onetruth ingest`, `demo` and the daemon: connectors'
//! sources polled on their own threads, records mapped and prepared there, applied by the
//! store's one writer, checkpoints in the same transaction, acknowledgements after the commit.
//!
//! [`transports`] is the one place transports register.

mod checkpoints;
mod connector;
mod feed;
mod health;
mod ingest;
mod replay;
mod run;

pub use checkpoints::StoreCheckpoints;
pub use connector::{Connector, ConnectorError, base_dir};
pub use feed::{ChangeFeed, FeedEncoder, FeedMessage, FeedSink};
pub use health::{ConnectorState, Health};
pub use ingest::{IngestError, IngestOptions, IngestReport, ingest};
pub use replay::QuarantineSource;
pub use run::{
    Commands, Input, OnSourceError, PipelineError, PipelineOptions, PipelineReport, ProgressFn,
    Stop, VersionClock, run, run_with_commands,
};

use onetruth_connect::Registry;

/// Every transport this build knows: `type = "..."` in a manifest's `transport` table.
pub fn transports() -> Registry {
    let mut registry = Registry::new();
    registry.register(onetruth_connector_file::FileTransport);
    registry.register(onetruth_connector_kafka::KafkaTransport);
    registry
}
