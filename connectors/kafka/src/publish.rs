//! Publishing to a topic and waiting until every message is delivered: what the change feed
//! needs (its cursor moves only after the broker has the whole page). One request in flight per
//! connection and `acks=all`, so a page lands complete and in order, or the call fails and the
//! page is published again.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use onetruth_connect::SourceError;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use schemars::JsonSchema;
use serde::Deserialize;

/// Where the change feed is published (`[change_feed]` in the daemon's config).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishParams {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The topic (create it first; a compacted topic keeps each customer's latest message).
    pub topic: String,
    /// Any librdkafka producer property, passed as is; values `env:NAME` / `file:PATH` are
    /// read when the daemon starts and never logged.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// One message: key, value (`None`: a tombstone) and the `onetruth-event` header.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub key: String,
    pub value: Option<Vec<u8>>,
    pub event: &'static str,
}

/// Header carrying what happened.
pub const EVENT_HEADER: &str = "onetruth-event";

/// A producer that publishes pages and waits for them.
pub struct Publisher {
    topic: String,
    producer: BaseProducer<Deliveries>,
}

impl Publisher {
    /// Relative `file:` references start from `base_dir`.
    pub fn new(params: &PublishParams, base_dir: &Path) -> Result<Publisher, SourceError> {
        let context = || format!("change feed {}", params.topic);
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &params.brokers)
            .set("client.id", "onetruth-change-feed")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "1")
            .set("linger.ms", "5");
        for (key, value) in &params.properties {
            let resolved = crate::secrets::resolve(value, base_dir)
                .map_err(|why| SourceError::new(format!("{}: properties.{key}", context()), why))?;
            config.set(key, resolved);
        }
        let producer = config
            .create_with_context(Deliveries::default())
            .map_err(|e| SourceError::new(context(), e))?;
        Ok(Publisher {
            topic: params.topic.clone(),
            producer,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publish `messages` in order and wait until the broker has every one (at most
    /// `timeout`). A failure is retryable: the caller publishes the page again.
    pub fn publish(&self, messages: &[Outgoing], timeout: Duration) -> Result<(), SourceError> {
        let context = || format!("change feed {}", self.topic);
        let deliveries = self.producer.context();
        deliveries.reset();
        let deadline = Instant::now() + timeout;
        for m in messages {
            let headers = OwnedHeaders::new_with_capacity(1).insert(Header {
                key: EVENT_HEADER,
                value: Some(m.event),
            });
            let mut record: BaseRecord<'_, str, [u8]> = BaseRecord::to(&self.topic)
                .key(m.key.as_str())
                .headers(headers);
            record.payload = m.value.as_deref();
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((e, back))
                        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) =>
                    {
                        if Instant::now() > deadline {
                            return Err(SourceError::retryable(
                                context(),
                                "the producer queue stayed full",
                            ));
                        }
                        record = back;
                        self.producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => return Err(SourceError::retryable(context(), e)),
                }
            }
        }
        self.producer
            .flush(deadline.saturating_duration_since(Instant::now()))
            .map_err(|e| SourceError::retryable(context(), e))?;
        if let Some(e) = deliveries.failure() {
            return Err(SourceError::retryable(context(), e));
        }
        let delivered = deliveries.delivered.load(Ordering::Acquire);
        if delivered != messages.len() as u64 {
            return Err(SourceError::retryable(
                context(),
                format!("{delivered} of {} messages delivered", messages.len()),
            ));
        }
        Ok(())
    }
}

/// Delivery reports of the current page.
#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: Mutex<Option<String>>,
}

impl Deliveries {
    fn reset(&self) {
        self.delivered.store(0, Ordering::Release);
        *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::AcqRel);
            }
            Err((e, _)) => {
                let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
                failed.get_or_insert_with(|| e.to_string());
            }
        }
    }
}
