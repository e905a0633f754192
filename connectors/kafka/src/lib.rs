//! The Kafka transport (`type = "kafka"`): a consumer group's topics, read into batches whose
//! checkpoints are the partitions' next offsets, stored with the records they cover.
//!
//! - [`KafkaParams`]: the manifest's `transport` table; [`KafkaTransport`] registers it.
//! - [`KafkaSource`]: the source (one `BaseConsumer` on the pipeline's source thread). Offsets
//!   live in the store: every assignment starts each partition at its stored checkpoint,
//!   revocations wait for the revoked partitions' batches to commit, and group offset commits
//!   (after each batch's commit) are only for lag tooling.
//! - Payloads: a JSON object (`format = "json"`), or a Debezium change event
//!   (`format = "debezium"`, [`debezium`]): `c`/`u`/`r` upsert the `after` row, `d` deletes
//!   the `before` row, tombstones are skipped. A message that cannot be read is yielded as
//!   [`RawBody::Malformed`](onetruth_connect::RawBody::Malformed), so it is quarantined (and
//!   published to the dead-letter topic, if there is one) while the partition moves on.
//! - Positions are `TOPIC/PARTITION@OFFSET`, checkpoint streams `TOPIC/PARTITION` with the
//!   next offset to read. The mapping reads the message's `key`, `topic`, `partition`,
//!   `offset`, `timestamp` and `headers.NAME` as `_meta.*` fields.

mod dead_letter;
pub mod debezium;
mod decode;
mod params;
mod publish;
mod secrets;
mod source;

pub use dead_letter::{REASON, SOURCE_OFFSET, SOURCE_PARTITION, SOURCE_TOPIC};
pub use decode::{Decoder, Message, parse_position, position, stream};
pub use params::{KafkaParams, KeyFormat, PayloadFormat, StartFrom};
pub use publish::{EVENT_HEADER, Outgoing, PublishParams, Publisher};
pub use source::{KafkaSource, REVOKE_WAIT};

use onetruth_connect::registry::replay_json;
use onetruth_connect::{RawBody, Source, SourceContext, SourceError, TypedSourceFactory};

/// `type = "kafka"`.
pub struct KafkaTransport;

impl TypedSourceFactory for KafkaTransport {
    type Params = KafkaParams;
    const TYPE: &'static str = "kafka";

    fn validate(&self, params: &KafkaParams) -> Vec<String> {
        params.problems()
    }

    fn create(
        &self,
        params: &KafkaParams,
        ctx: SourceContext,
    ) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(KafkaSource::new(
            params,
            &ctx.connector,
            ctx.checkpoints,
            &ctx.base_dir,
        )?))
    }

    /// A quarantined message's raw payload, for `onetruth quarantine replay`: a Debezium event
    /// is decoded again (an upsert's `after` row); a JSON object is mapped again as it is.
    /// A Debezium delete stays quarantined: the body alone cannot say it is a delete.
    fn replay(&self, params: &KafkaParams, raw: &str, reason: &str) -> RawBody {
        match params.format {
            PayloadFormat::Json => replay_json(raw, reason),
            PayloadFormat::Debezium => match debezium::decode(raw) {
                Ok(debezium::Change::Upsert { row, .. }) => RawBody::Parsed(row),
                Ok(debezium::Change::Delete { .. }) => RawBody::Malformed {
                    text: raw.to_string(),
                    reason: format!(
                        "{reason} (a Debezium delete is not replayed: apply it again from the topic)"
                    ),
                },
                Err(why) => RawBody::Malformed {
                    text: raw.to_string(),
                    reason: why,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(format: &str) -> KafkaParams {
        serde_json::from_value(serde_json::json!({
            "brokers": "b:9092", "group_id": "g", "topics": ["t"], "format": format
        }))
        .unwrap()
    }

    #[test]
    fn quarantined_payloads_are_decoded_again_for_replay() {
        let t = KafkaTransport;
        let update = r#"{"before":null,"after":{"id":1001,"email":"a@example.com"},"source":{"lsn":7},"op":"u"}"#;
        match t.replay(
            &params("debezium"),
            update,
            "record.id: missing field `key`",
        ) {
            RawBody::Parsed(row) => assert_eq!(row["id"], 1001),
            other => panic!("{other:?}"),
        }
        let delete = r#"{"before":{"id":1001},"after":null,"source":{"lsn":8},"op":"d"}"#;
        assert!(matches!(
            t.replay(&params("debezium"), delete, "why"),
            RawBody::Malformed { .. }
        ));
        assert_eq!(
            t.replay(&params("debezium"), "[1]", "why"),
            RawBody::Malformed {
                text: "[1]".into(),
                reason: "message value is not a JSON object".into()
            }
        );
        assert_eq!(
            t.replay(&params("json"), r#"{"id":1}"#, "why"),
            RawBody::Json(r#"{"id":1}"#.into())
        );
    }
}
