//! `onetruth quarantine replay`: a connector's quarantined records, read back from the store and
//! mapped again through its (fixed) manifest. Those that map are applied and leave the
//! quarantine in the same transaction; the others stay, with the new reason.

use std::sync::Arc;

use onetruth_connect::{Poll, Position, RawBatch, RawRecord, Source, SourceError};
use onetruth_store::Store;

use crate::Connector;

/// Yields one connector's quarantined records, oldest first, then ends.
pub struct QuarantineSource {
    store: Store,
    connector: Arc<Connector>,
    /// The row id of the last record yielded.
    after: i64,
    /// Rows yielded so far.
    pub read: u64,
}

impl QuarantineSource {
    /// `store`: a read-only connection to the store whose quarantine is replayed.
    pub fn new(store: Store, connector: Arc<Connector>) -> QuarantineSource {
        QuarantineSource {
            store,
            connector,
            after: 0,
            read: 0,
        }
    }
}

impl Source for QuarantineSource {
    fn poll(&mut self, max: usize) -> Result<Poll, SourceError> {
        let rows = self
            .store
            .quarantined_of(&self.connector.manifest.source, self.after, max.max(1))
            .map_err(|e| SourceError::new("reading the quarantine", e))?;
        let Some((last, _)) = rows.last() else {
            return Ok(Poll::End);
        };
        self.after = *last;
        self.read += rows.len() as u64;
        let records = rows
            .into_iter()
            .map(|(_, q)| {
                let again = self.connector.transport.replay(&q.raw, &q.reason);
                RawRecord {
                    body: again.body,
                    position: Position(q.position),
                    text: None,
                    meta: again.meta,
                }
            })
            .collect();
        Ok(Poll::Records(RawBatch {
            records,
            checkpoints: Vec::new(),
            ack: None,
        }))
    }
}
