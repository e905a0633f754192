//! The manifest's `transport` table for `type = "kafka"`, and the checks serde cannot make.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// Kafka transport settings, from the manifest's `transport` table (`type = "kafka"`).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaParams {
    /// Bootstrap servers, `host:port[,host:port...]` (librdkafka's `bootstrap.servers`).
    pub brokers: String,
    /// The consumer group (`group.id`). Consumers sharing it share the topics' partitions; the
    /// offsets that count are the ones stored with the records, committed to the group only
    /// for lag tooling.
    pub group_id: String,
    /// Topics to read. Give exactly one of `topics` and `topic_pattern`.
    #[serde(default)]
    pub topics: Option<Vec<String>>,
    /// A regular expression (POSIX extended) matched against topic names from their start:
    /// every matching topic is read, also topics created later. Give exactly one of `topics`
    /// and `topic_pattern`.
    #[serde(default)]
    pub topic_pattern: Option<String>,
    /// The message value: `json` (a JSON object, the default) or `debezium` (a Debezium change
    /// event, with or without its `schema`/`payload` envelope).
    #[serde(default)]
    pub format: PayloadFormat,
    /// How the message key is exposed to the mapping as `_meta.key`: `text` (UTF-8 text, the
    /// default) or `json` (parsed, so `_meta.key.id` reads a field of a JSON key; a Debezium
    /// key's `payload` is unwrapped).
    #[serde(default)]
    pub key: KeyFormat,
    /// Where a partition without a stored checkpoint starts: `earliest` (the default) or
    /// `latest`.
    #[serde(default)]
    pub start: StartFrom,
    /// A topic that receives every quarantined message (its raw bytes, with its original key)
    /// after the batch holding it has committed, with headers `onetruth-reason`,
    /// `onetruth-source-topic`, `onetruth-source-partition` and `onetruth-source-offset`.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// How long one poll waits for the first message, in milliseconds (default 100).
    #[serde(default)]
    pub poll_timeout_ms: Option<u64>,
    /// Any librdkafka property, passed as is (`security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `ssl.ca.location`, `fetch.max.bytes`...). A value `env:NAME` is read
    /// from environment variable NAME, `file:PATH` from a file (relative to the manifest's
    /// directory), when the source starts; values are never logged.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// What a message value holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// A JSON object: the record.
    #[default]
    Json,
    /// A Debezium change event: `c`/`u`/`r` upsert the `after` row, `d` deletes the `before`
    /// row; a tombstone (no value) is skipped.
    Debezium,
}

/// How the message key reads as `_meta.key`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyFormat {
    /// The key's UTF-8 text (absent when the key is not UTF-8).
    #[default]
    Text,
    /// The key parsed as JSON (its text when it is not JSON); a Debezium key's `payload` is
    /// unwrapped.
    Json,
}

/// Where a partition without a stored checkpoint starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    /// The oldest message the broker still holds.
    #[default]
    Earliest,
    /// The end: only messages produced after the partition is first assigned.
    Latest,
}

/// librdkafka properties onetruth sets itself.
const RESERVED: &[(&str, &str)] = &[
    ("bootstrap.servers", "use transport.brokers"),
    ("metadata.broker.list", "use transport.brokers"),
    ("group.id", "use transport.group_id"),
    (
        "enable.auto.commit",
        "offsets are stored with the records, not auto-committed",
    ),
    (
        "enable.auto.offset.store",
        "offsets are stored with the records",
    ),
];

impl KafkaParams {
    /// The poll timeout (default 100 ms).
    pub fn poll_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.poll_timeout_ms.unwrap_or(100))
    }

    /// The subscription: topic names, or the pattern as librdkafka takes it (`^...`).
    pub fn subscription(&self) -> Vec<String> {
        match (&self.topics, &self.topic_pattern) {
            (Some(topics), _) => topics.clone(),
            (None, Some(p)) if p.starts_with('^') => vec![p.clone()],
            (None, Some(p)) => vec![format!("^{p}")],
            (None, None) => Vec::new(),
        }
    }

    /// Every problem serde cannot see, each starting with its key.
    pub fn problems(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.brokers.split(',').all(|b| b.trim().is_empty()) {
            errors.push("transport.brokers: must name at least one `host:port`".to_string());
        }
        if self.group_id.trim().is_empty() {
            errors.push("transport.group_id: must not be empty".to_string());
        }
        match (&self.topics, &self.topic_pattern) {
            (Some(_), Some(_)) | (None, None) => errors.push(
                "transport.topics: give exactly one of `topics` and `topic_pattern`".to_string(),
            ),
            (Some(topics), None) => {
                if topics.is_empty() {
                    errors.push("transport.topics: must name at least one topic".to_string());
                }
                for t in topics {
                    if let Some(why) = topic_name_problem(t) {
                        errors.push(format!("transport.topics: `{t}` {why}"));
                    }
                }
            }
            (None, Some(p)) => {
                if let Err(e) = regex::Regex::new(p) {
                    let e = e.to_string().replace('\n', " ");
                    errors.push(format!(
                        "transport.topic_pattern: not a regular expression: {e}"
                    ));
                }
            }
        }
        if let Some(dlq) = &self.dead_letter_topic {
            if let Some(why) = topic_name_problem(dlq) {
                errors.push(format!("transport.dead_letter_topic: `{dlq}` {why}"));
            } else if self.reads_topic(dlq) {
                errors.push(format!(
                    "transport.dead_letter_topic: `{dlq}` is also read by this connector"
                ));
            }
        }
        if let Some(ms) = self.poll_timeout_ms
            && !(1..=60_000).contains(&ms)
        {
            errors.push("transport.poll_timeout_ms: must be between 1 and 60000".to_string());
        }
        for (key, value) in &self.properties {
            if let Some((_, why)) = RESERVED.iter().find(|(k, _)| k == key) {
                errors.push(format!(
                    "transport.properties.{key}: set by onetruth ({why})"
                ));
            }
            if let Err(why) = crate::secrets::check(value) {
                errors.push(format!("transport.properties.{key}: {why}"));
            }
        }
        errors
    }

    /// Whether the subscription takes `topic`.
    fn reads_topic(&self, topic: &str) -> bool {
        match (&self.topics, &self.topic_pattern) {
            (Some(topics), _) => topics.iter().any(|t| t == topic),
            (None, Some(p)) => {
                let anchored = if p.starts_with('^') {
                    p.clone()
                } else {
                    format!("^{p}")
                };
                regex::Regex::new(&anchored).is_ok_and(|r| r.is_match(topic))
            }
            (None, None) => false,
        }
    }
}

/// Why `name` cannot be a Kafka topic, if it cannot.
fn topic_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.len() > 249 {
        Some("is longer than 249 characters")
    } else if name == "." || name == ".." {
        Some("is not a topic name")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        Some("may hold only ASCII letters, digits, `.`, `_` and `-`")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: serde_json::Value) -> Result<KafkaParams, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    fn base() -> serde_json::Value {
        serde_json::json!({"brokers": "127.0.0.1:9092", "group_id": "onetruth", "topics": ["crm"]})
    }

    #[test]
    fn defaults() {
        let p = params(base()).unwrap();
        assert_eq!(p.format, PayloadFormat::Json);
        assert_eq!(p.key, KeyFormat::Text);
        assert_eq!(p.start, StartFrom::Earliest);
        assert_eq!(p.poll_timeout(), std::time::Duration::from_millis(100));
        assert!(p.problems().is_empty(), "{:?}", p.problems());
        assert_eq!(p.subscription(), ["crm"]);
    }

    #[test]
    fn unknown_keys_and_values_are_refused() {
        let mut v = base();
        v["topic"] = "x".into();
        assert!(params(v).unwrap_err().contains("unknown field `topic`"));
        let mut v = base();
        v["format"] = "avro".into();
        assert!(params(v).unwrap_err().contains("unknown variant `avro`"));
        let mut v = base();
        v["start"] = "beginning".into();
        assert!(
            params(v)
                .unwrap_err()
                .contains("unknown variant `beginning`")
        );
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let p = params(serde_json::json!({
            "brokers": " , ",
            "group_id": "",
            "topics": ["ok", "bad topic"],
            "topic_pattern": "crm.*",
            "dead_letter_topic": "bad/dlq",
            "poll_timeout_ms": 0,
            "properties": {"enable.auto.commit": "true", "sasl.password": "env:", "ssl.key.location": "file:"}
        }))
        .unwrap();
        assert_eq!(
            p.problems(),
            [
                "transport.brokers: must name at least one `host:port`",
                "transport.group_id: must not be empty",
                "transport.topics: give exactly one of `topics` and `topic_pattern`",
                "transport.dead_letter_topic: `bad/dlq` may hold only ASCII letters, digits, `.`, `_` and `-`",
                "transport.poll_timeout_ms: must be between 1 and 60000",
                "transport.properties.enable.auto.commit: set by onetruth (offsets are stored with the records, not auto-committed)",
                "transport.properties.sasl.password: `env:` needs a variable name",
                "transport.properties.ssl.key.location: `file:` needs a path",
            ]
        );
        let p = params(serde_json::json!({
            "brokers": "b:9092", "group_id": "g", "topics": ["ok", "bad topic", ""]
        }))
        .unwrap();
        assert_eq!(
            p.problems(),
            [
                "transport.topics: `bad topic` may hold only ASCII letters, digits, `.`, `_` and `-`",
                "transport.topics: `` is empty",
            ]
        );
        let p = params(serde_json::json!({"brokers": "b:9092", "group_id": "g"})).unwrap();
        assert_eq!(
            p.problems(),
            ["transport.topics: give exactly one of `topics` and `topic_pattern`"]
        );
    }

    #[test]
    fn patterns_are_anchored_and_checked() {
        let p = params(serde_json::json!({
            "brokers": "b:9092", "group_id": "g", "topic_pattern": "crm\\..*", "dead_letter_topic": "crm.dlq"
        }))
        .unwrap();
        assert_eq!(p.subscription(), ["^crm\\..*"]);
        assert_eq!(
            p.problems(),
            ["transport.dead_letter_topic: `crm.dlq` is also read by this connector"]
        );
        let p = params(serde_json::json!({
            "brokers": "b:9092", "group_id": "g", "topic_pattern": "crm(", "dead_letter_topic": "dlq"
        }))
        .unwrap();
        let problems = p.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("transport.topic_pattern: not a regular expression"),
            "{problems:?}"
        );
    }
}
