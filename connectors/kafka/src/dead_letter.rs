//! The dead-letter topic: every quarantined message, published after the batch holding it has
//! committed (its quarantine entry is in the store either way).

use std::collections::HashMap;
use std::time::Duration;

use onetruth_connect::{Position, Rejected};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::decode::parse_position;

/// Header names of a dead-letter message.
pub const REASON: &str = "onetruth-reason";
pub const SOURCE_TOPIC: &str = "onetruth-source-topic";
pub const SOURCE_PARTITION: &str = "onetruth-source-partition";
pub const SOURCE_OFFSET: &str = "onetruth-source-offset";

/// What a message was, where its record cannot say it exactly: its key, and its value when
/// the record's text is a lossy copy (a value that is not UTF-8). By position.
pub(crate) type Originals = HashMap<String, Original>;

#[derive(Debug, Default)]
pub(crate) struct Original {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

pub(crate) struct DeadLetter {
    topic: String,
    producer: ThreadedProducer<Deliveries>,
}

impl DeadLetter {
    pub fn new(
        topic: &str,
        config: &ClientConfig,
        connector: &str,
    ) -> Result<DeadLetter, KafkaError> {
        let producer = config.create_with_context(Deliveries::new(connector))?;
        Ok(DeadLetter {
            topic: topic.to_string(),
            producer,
        })
    }

    /// Publish the quarantined records of a committed batch.
    pub fn publish(&self, rejected: &[Rejected], originals: &Originals) {
        for r in rejected {
            let original = originals.get(&r.position.0);
            let value = original
                .and_then(|o| o.value.as_deref())
                .unwrap_or(r.raw.as_bytes());
            let mut headers = OwnedHeaders::new_with_capacity(4).insert(Header {
                key: REASON,
                value: Some(r.reason.as_str()),
            });
            if let Some((topic, partition, offset)) = parse_position(&r.position.0) {
                headers = headers
                    .insert(Header {
                        key: SOURCE_TOPIC,
                        value: Some(topic),
                    })
                    .insert(Header {
                        key: SOURCE_PARTITION,
                        value: Some(&partition.to_string()),
                    })
                    .insert(Header {
                        key: SOURCE_OFFSET,
                        value: Some(&offset.to_string()),
                    });
            }
            let mut record: BaseRecord<'_, [u8], [u8], Box<Position>> =
                BaseRecord::with_opaque_to(&self.topic, Box::new(r.position.clone()))
                    .payload(value)
                    .headers(headers);
            record.key = original.and_then(|o| o.key.as_deref());
            self.send(record);
        }
    }

    fn send(&self, mut record: BaseRecord<'_, [u8], [u8], Box<Position>>) {
        // A full queue drains as the producer's thread delivers; wait for it, boundedly.
        for _ in 0..100 {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err((e, back)) => {
                    self.producer.context().failed(&back.delivery_opaque, &e);
                    return;
                }
            }
        }
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull);
        self.producer.context().failed(&record.delivery_opaque, &e);
    }

    /// Wait (boundedly) for what was published to be delivered.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(topic = %self.topic, error = %e, "dead-letter topic not flushed");
        }
    }
}

/// Counts deliveries and logs failures (by position: the payload may hold personal data).
struct Deliveries {
    connector: String,
    published: metrics::Counter,
    failed: metrics::Counter,
}

impl Deliveries {
    fn new(connector: &str) -> Deliveries {
        let c = connector.to_string();
        Deliveries {
            connector: c.clone(),
            published: metrics::counter!("onetruth_kafka_dead_letters_total", "connector" => c.clone(), "outcome" => "published"),
            failed: metrics::counter!("onetruth_kafka_dead_letters_total", "connector" => c, "outcome" => "failed"),
        }
    }

    fn failed(&self, position: &Position, e: &KafkaError) {
        self.failed.increment(1);
        tracing::error!(connector = %self.connector, position = %position, error = %e, "quarantined message not published to the dead-letter topic (it is in quarantine)");
    }
}

impl ClientContext for Deliveries {
    fn stats_raw(&self, _statistics: &[u8]) {}
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Position>;

    fn delivery(&self, result: &DeliveryResult<'_>, position: Box<Position>) {
        match result {
            Ok(_) => self.published.increment(1),
            Err((e, _)) => self.failed(&position, e),
        }
    }
}
