//! One Kafka message into a raw record: its body by the payload format, its key, topic,
//! partition, offset, timestamp and headers as `_meta` fields for the mapping.

use onetruth_connect::{Position, RawBody, RawRecord, RecordMeta};
use serde_json::{Map, Value};

use crate::debezium::{self, Change};
use crate::params::{KeyFormat, PayloadFormat};

/// A message as the decoder needs it (borrowed from the consumer's buffer).
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    /// `None`: a tombstone.
    pub value: Option<&'a [u8]>,
    /// Milliseconds since the epoch, when the broker gave one.
    pub timestamp: Option<i64>,
}

/// The position of a message: `TOPIC/PARTITION@OFFSET`.
pub fn position(topic: &str, partition: i32, offset: i64) -> Position {
    Position(format!("{topic}/{partition}@{offset}"))
}

/// The checkpoint stream of a partition: `TOPIC/PARTITION`.
pub fn stream(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// (topic, partition, offset) of a position made by [`position`].
pub fn parse_position(position: &str) -> Option<(&str, i32, i64)> {
    let (stream, offset) = position.rsplit_once('@')?;
    let (topic, partition) = stream.rsplit_once('/')?;
    Some((topic, partition.parse().ok()?, offset.parse().ok()?))
}

/// Turns messages into raw records.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    pub format: PayloadFormat,
    pub key: KeyFormat,
}

impl Decoder {
    /// The record a message holds; `None` for a tombstone (nothing to apply; its offset still
    /// counts). `headers` are (name, value) with UTF-8 values; others are left out.
    pub fn decode<'h>(
        &self,
        m: &Message<'_>,
        headers: impl Iterator<Item = (&'h str, &'h str)>,
    ) -> Option<RawRecord> {
        let value = m.value?;
        let position = position(m.topic, m.partition, m.offset);
        let mut meta = RecordMeta {
            fields: self.fields(m, headers),
            delete: false,
            version: None,
        };
        let text = match std::str::from_utf8(value) {
            Ok(t) => t,
            Err(_) => {
                return Some(malformed(
                    position,
                    String::from_utf8_lossy(value).into_owned(),
                    "message value is not UTF-8",
                    meta,
                ));
            }
        };
        let record = match self.format {
            PayloadFormat::Json => match json_object_problem(text) {
                None => RawRecord {
                    position,
                    body: RawBody::Json(text.to_string()),
                    text: None,
                    meta: Some(Box::new(meta)),
                },
                Some(reason) => malformed(position, text.to_string(), &reason, meta),
            },
            PayloadFormat::Debezium => match debezium::decode(text) {
                Ok(change) => {
                    meta.version = change.version();
                    let row = match change {
                        Change::Upsert { row, .. } => row,
                        Change::Delete { row, .. } => {
                            meta.delete = true;
                            row
                        }
                    };
                    RawRecord {
                        position,
                        body: RawBody::Parsed(row),
                        text: Some(text.to_string()),
                        meta: Some(Box::new(meta)),
                    }
                }
                Err(reason) => malformed(position, text.to_string(), &reason, meta),
            },
        };
        Some(record)
    }

    /// `key`, `topic`, `partition`, `offset`, `timestamp`, `headers.{name}`.
    fn fields<'h>(
        &self,
        m: &Message<'_>,
        headers: impl Iterator<Item = (&'h str, &'h str)>,
    ) -> Map<String, Value> {
        let mut fields = Map::new();
        if let Some(key) = m.key.and_then(|k| self.key_value(k)) {
            fields.insert("key".into(), key);
        }
        fields.insert("topic".into(), Value::String(m.topic.to_string()));
        fields.insert("partition".into(), m.partition.into());
        fields.insert("offset".into(), m.offset.into());
        if let Some(ts) = m.timestamp {
            fields.insert("timestamp".into(), ts.into());
        }
        let mut named = Map::new();
        for (name, value) in headers {
            // A repeated header reads as its last value, as a repeated JSON key does.
            named.insert(name.to_string(), Value::String(value.to_string()));
        }
        if !named.is_empty() {
            fields.insert("headers".into(), Value::Object(named));
        }
        fields
    }

    fn key_value(&self, key: &[u8]) -> Option<Value> {
        let text = std::str::from_utf8(key).ok()?;
        Some(match self.key {
            KeyFormat::Text => Value::String(text.to_string()),
            KeyFormat::Json => match serde_json::from_str::<Value>(text) {
                // Kafka Connect's envelope: the key is its payload.
                Ok(Value::Object(mut o))
                    if o.len() == 2 && o.contains_key("schema") && o.contains_key("payload") =>
                {
                    o.remove("payload").unwrap_or(Value::Null)
                }
                Ok(v) => v,
                Err(_) => Value::String(text.to_string()),
            },
        })
    }
}

fn malformed(position: Position, text: String, reason: &str, meta: RecordMeta) -> RawRecord {
    RawRecord {
        position,
        body: RawBody::Malformed {
            text,
            reason: reason.to_string(),
        },
        text: None,
        meta: Some(Box::new(meta)),
    }
}

/// Why `text` is not a JSON object, if it is not (checked without building a tree; the mapper
/// parses it again, borrowing its strings).
fn json_object_problem(text: &str) -> Option<String> {
    match text.trim_start().as_bytes().first() {
        Some(b'{') => serde_json::from_str::<serde::de::IgnoredAny>(text)
            .err()
            .map(|e| format!("message value is not JSON: {e}")),
        None => Some("message value is empty".into()),
        Some(_) => match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => Some("message value is not a JSON object".into()),
            Err(e) => Some(format!("message value is not JSON: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg<'a>(value: Option<&'a [u8]>, key: Option<&'a [u8]>) -> Message<'a> {
        Message {
            topic: "crm.contacts",
            partition: 2,
            offset: 41,
            key,
            value,
            timestamp: Some(1_733_600_000_000),
        }
    }

    const JSON: Decoder = Decoder {
        format: PayloadFormat::Json,
        key: KeyFormat::Text,
    };

    #[test]
    fn a_json_message_is_its_text_with_meta_fields() {
        let r = JSON
            .decode(
                &msg(Some(br#"{"id":"c1"}"#), Some(b"c1")),
                [("tenant", "eu"), ("x.trace", "t1"), ("tenant", "us")].into_iter(),
            )
            .unwrap();
        assert_eq!(r.position.0, "crm.contacts/2@41");
        assert_eq!(r.body, RawBody::Json(r#"{"id":"c1"}"#.into()));
        let meta = r.meta.unwrap();
        assert_eq!(
            Value::Object(meta.fields),
            serde_json::json!({
                "key": "c1", "topic": "crm.contacts", "partition": 2, "offset": 41,
                "timestamp": 1_733_600_000_000i64,
                "headers": {"tenant": "us", "x.trace": "t1"}
            })
        );
        assert!(!meta.delete);
        assert_eq!(meta.version, None);
    }

    #[test]
    fn tombstones_are_nothing_to_apply() {
        assert_eq!(
            JSON.decode(&msg(None, Some(b"c1")), std::iter::empty()),
            None
        );
    }

    #[test]
    fn bad_values_are_malformed_with_a_reason() {
        let cases: [(&[u8], &str); 6] = [
            (b"\xff\xfe{}", "message value is not UTF-8"),
            (b"", "message value is empty"),
            (b"[1,2]", "message value is not a JSON object"),
            (b"\"text\"", "message value is not a JSON object"),
            (
                b"not json",
                "message value is not JSON: expected ident at line 1 column 2",
            ),
            (
                b"{\"id\": ",
                "message value is not JSON: EOF while parsing a value at line 1 column 7",
            ),
        ];
        for (value, reason) in cases {
            let r = JSON
                .decode(&msg(Some(value), None), std::iter::empty())
                .unwrap();
            assert_eq!(r.position.0, "crm.contacts/2@41");
            match r.body {
                RawBody::Malformed { text, reason: why } => {
                    assert_eq!(why, reason);
                    assert_eq!(text, String::from_utf8_lossy(value));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn json_keys_are_parsed_and_unwrapped() {
        let d = Decoder {
            format: PayloadFormat::Json,
            key: KeyFormat::Json,
        };
        let key_of = |k: &[u8]| {
            d.decode(&msg(Some(b"{}"), Some(k)), std::iter::empty())
                .unwrap()
                .meta
                .unwrap()
                .fields
                .get("key")
                .cloned()
        };
        assert_eq!(
            key_of(br#"{"id":1004}"#),
            Some(serde_json::json!({"id": 1004}))
        );
        assert_eq!(
            key_of(br#"{"schema":{"type":"struct"},"payload":{"id":1004}}"#),
            Some(serde_json::json!({"id": 1004}))
        );
        assert_eq!(key_of(b"plain"), Some(Value::String("plain".into())));
        assert_eq!(key_of(b"\xff"), None, "a key that is not UTF-8 is absent");
    }

    #[test]
    fn debezium_deletes_and_versions_reach_the_meta() {
        let d = Decoder {
            format: PayloadFormat::Debezium,
            key: KeyFormat::Json,
        };
        let event = br#"{"before":{"id":1004},"after":null,"source":{"connector":"postgresql","lsn":24023128},"op":"d","ts_ms":1733600000123}"#;
        let r = d
            .decode(&msg(Some(event), None), std::iter::empty())
            .unwrap();
        assert_eq!(r.text.as_deref(), Some(std::str::from_utf8(event).unwrap()));
        assert_eq!(
            r.body,
            RawBody::Parsed(serde_json::json!({"id": 1004}).as_object().unwrap().clone())
        );
        let meta = r.meta.unwrap();
        assert!(meta.delete);
        assert_eq!(meta.version, Some(24_023_128));

        let r = d
            .decode(&msg(Some(br#"{"op":"t"}"#), None), std::iter::empty())
            .unwrap();
        assert!(matches!(r.body, RawBody::Malformed { .. }));
        assert_eq!(d.decode(&msg(None, None), std::iter::empty()), None);
    }

    #[test]
    fn positions_parse_back() {
        assert_eq!(
            parse_position("crm.contacts/2@41"),
            Some(("crm.contacts", 2, 41))
        );
        assert_eq!(parse_position("file.csv:3"), None);
    }
}
