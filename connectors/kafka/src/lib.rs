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
use onetruth_connect::{
    RawBody, RecordMeta, Replayed, Source, SourceContext, SourceError, TypedSourceFactory,
};

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
    /// is decoded again (an upsert's `after` row, a delete's `before` row marked as a delete,
    /// each with its version, as when it was first read); a JSON object is mapped again as it
    /// is. The message's key and headers are not in the quarantine: a manifest that reads
    /// `_meta.*` leaves such records quarantined.
    fn replay(&self, params: &KafkaParams, raw: &str, reason: &str) -> Replayed {
        match params.format {
            PayloadFormat::Json => Replayed {
                body: replay_json(raw, reason),
                meta: None,
            },
            PayloadFormat::Debezium => match debezium::decode(raw) {
                Ok(change) => {
                    let version = change.version();
                    let (row, delete) = match change {
                        debezium::Change::Upsert { row, .. } => (row, false),
                        debezium::Change::Delete { row, .. } => (row, true),
                    };
                    Replayed {
                        body: RawBody::Parsed(row),
                        meta: Some(Box::new(RecordMeta {
                            delete,
                            version,
                            ..RecordMeta::default()
                        })),
                    }
                }
                Err(why) => Replayed {
                    body: RawBody::Malformed {
                        text: raw.to_string(),
                        reason: why,
                    },
                    meta: None,
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
        let again = t.replay(
            &params("debezium"),
            update,
            "record.id: missing field `key`",
        );
        match &again.body {
            RawBody::Parsed(row) => assert_eq!(row["id"], 1001),
            other => panic!("{other:?}"),
        }
        // Its version is the event's, not the replay's: a later event still supersedes it.
        let meta = again.meta.unwrap();
        assert_eq!((meta.version, meta.delete), (Some(7), false));
        let delete = r#"{"before":{"id":1001},"after":null,"source":{"lsn":8},"op":"d"}"#;
        let again = t.replay(&params("debezium"), delete, "why");
        assert!(matches!(&again.body, RawBody::Parsed(row) if row["id"] == 1001));
        let meta = again.meta.unwrap();
        assert_eq!((meta.version, meta.delete), (Some(8), true));
        assert_eq!(
            t.replay(&params("debezium"), "[1]", "why").body,
            RawBody::Malformed {
                text: "[1]".into(),
                reason: "message value is not a JSON object".into()
            }
        );
        assert_eq!(
            t.replay(&params("json"), r#"{"id":1}"#, "why").body,
            RawBody::Json(r#"{"id":1}"#.into())
        );
    }
}
