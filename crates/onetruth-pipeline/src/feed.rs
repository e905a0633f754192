//! The change feed: every committed customer change, published in commit order to a sink (a
//! Kafka topic). The changelog is the outbox: the feed reads it through a read-only connection
//! (only what is committed), publishes a page, waits until the sink has it, and only then
//! moves its cursor — a checkpoint written by the pipeline's writer like any other, so the
//! resolver's writer never sees another connection write. A crash between publishing and
//! that commit publishes the page again: every change at least once, never dropped.

use std::time::Duration;

use onetruth_connect::{Checkpoint, Poll, RawBatch, Source, SourceError};
use onetruth_store::{ChangeEntry, Store, StoreError};

/// One message of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedMessage {
    /// The customer id (`cus_N`): a customer's messages stay in order on one partition.
    pub key: String,
    /// JSON; `None` is a tombstone (the id no longer names a customer).
    pub value: Option<Vec<u8>>,
    /// What happened (`created`, `updated`, `merged`, `split`, `merged_into`, `split_into`,
    /// `deleted`), also sent as a header.
    pub event: &'static str,
}

/// Turns one changelog entry into its messages (reading the customer's current profile).
pub type FeedEncoder =
    Box<dyn Fn(&Store, &ChangeEntry) -> Result<Vec<FeedMessage>, StoreError> + Send>;

/// Where the feed goes.
pub trait FeedSink: Send {
    /// Publish `messages` in order; return once the sink has every one durably (or fail, and
    /// the page is published again).
    fn publish(&mut self, messages: &[FeedMessage]) -> Result<(), SourceError>;
    /// What the feed's cursor is stored under (the topic).
    fn stream(&self) -> String;
}

/// The change feed as a [`Source`] whose batches carry only its cursor.
pub struct ChangeFeed {
    store: Store,
    encode: FeedEncoder,
    sink: Box<dyn FeedSink>,
    /// The last changelog seq published and committed (or about to be).
    cursor: i64,
    page: usize,
    poll_interval: Duration,
}

impl ChangeFeed {
    /// `store`: a read-only connection; `cursor`: the stored checkpoint (0 to publish every
    /// change ever made).
    pub fn new(
        store: Store,
        encode: FeedEncoder,
        sink: Box<dyn FeedSink>,
        cursor: i64,
        poll_interval: Duration,
    ) -> ChangeFeed {
        ChangeFeed {
            store,
            encode,
            sink,
            cursor,
            page: 1000,
            poll_interval,
        }
    }

    /// The cursor a stored checkpoint holds.
    pub fn parse_cursor(position: &str) -> Option<i64> {
        position.parse().ok()
    }
}

impl Source for ChangeFeed {
    fn poll(&mut self, max: usize) -> Result<Poll, SourceError> {
        let page = self.page.min(max.max(1));
        let changes = self
            .store
            .changes_since(self.cursor, page)
            .map_err(|e| SourceError::retryable("reading the changelog", e))?;
        let Some(last) = changes.last().map(|c| c.seq) else {
            return Ok(Poll::Idle(self.poll_interval));
        };
        let mut messages = Vec::with_capacity(changes.len());
        for c in &changes {
            messages.extend(
                (self.encode)(&self.store, c)
                    .map_err(|e| SourceError::retryable("reading a changed customer", e))?,
            );
        }
        self.sink.publish(&messages)?;
        metrics::counter!("onetruth_change_feed_messages_total").increment(messages.len() as u64);
        metrics::gauge!("onetruth_change_feed_seq").set(last as f64);
        self.cursor = last;
        Ok(Poll::Records(RawBatch {
            records: Vec::new(),
            checkpoints: vec![Checkpoint::new(self.sink.stream(), last.to_string())],
            ack: None,
        }))
    }
}
