//! A connector's stored checkpoints, read through a read-only connection of its own.

use std::path::PathBuf;

use onetruth_connect::{CheckpointReader, Checkpoints, SourceError};
use onetruth_store::{Store, StoreOptions};

/// Reads one connector's checkpoints from the store file (what is committed).
pub struct StoreCheckpoints {
    pub db: PathBuf,
    pub options: StoreOptions,
    pub connector: String,
}

impl CheckpointReader for StoreCheckpoints {
    fn checkpoints(&self) -> Result<Checkpoints, SourceError> {
        let options = StoreOptions {
            read_only: true,
            ..self.options.clone()
        };
        let store = Store::open(&self.db, options)
            .map_err(|e| SourceError::retryable("reading checkpoints", e))?;
        store
            .checkpoints(&self.connector)
            .map_err(|e| SourceError::retryable("reading checkpoints", e))
    }
}
