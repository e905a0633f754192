//! Debezium change events: which row a message upserts or deletes, and its version.
//!
//! An event is `{"before": ROW|null, "after": ROW|null, "source": {...}, "op": "c", "ts_ms": N}`,
//! or the same inside `{"schema": {...}, "payload": EVENT}` when Kafka Connect's JSON converter
//! writes schemas. `op` is `c` (create), `u` (update), `r` (a snapshot read), `d` (delete), `t`
//! (truncate) or `m` (a logical decoding message). A delete is usually followed by a tombstone
//! (a message with the same key and no value) for log compaction; the caller skips those.

use serde_json::{Map, Value};

/// What a change event does to its row.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `c`, `u`, `r`: the row as it is after the change (`after`).
    Upsert {
        row: Map<String, Value>,
        version: Option<i64>,
    },
    /// `d`: the row as it was (`before`; with PostgreSQL's default replica identity, only its
    /// key columns).
    Delete {
        row: Map<String, Value>,
        version: Option<i64>,
    },
}

impl Change {
    pub fn version(&self) -> Option<i64> {
        match self {
            Change::Upsert { version, .. } | Change::Delete { version, .. } => *version,
        }
    }
}

/// Decode an event's text. The error is the reason it is quarantined (it names fields, never
/// values).
pub fn decode(text: &str) -> Result<Change, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("message value is not JSON: {e}"))?;
    decode_value(value)
}

/// Decode a parsed event.
pub fn decode_value(value: Value) -> Result<Change, String> {
    let Value::Object(mut event) = value else {
        return Err("message value is not a JSON object".into());
    };
    // The converter's envelope: the event is its payload.
    if !event.contains_key("op") && event.contains_key("payload") {
        event = match event.remove("payload") {
            Some(Value::Object(payload)) => payload,
            _ => return Err("Debezium envelope without an object `payload`".into()),
        };
    }
    let op = match event.get("op") {
        Some(Value::String(op)) => op.clone(),
        Some(_) => return Err("Debezium event: `op` is not a string".into()),
        None => return Err("not a Debezium change event: no `op`".into()),
    };
    let version = version(&event);
    let mut row = |field: &str| match event.remove(field) {
        Some(Value::Object(row)) => Ok(row),
        _ => Err(format!("Debezium `{op}` event without an object `{field}`")),
    };
    match op.as_str() {
        "c" | "u" | "r" => Ok(Change::Upsert {
            row: row("after")?,
            version,
        }),
        "d" => Ok(Change::Delete {
            row: row("before")?,
            version,
        }),
        "t" => Err("Debezium `t` (truncate) event: not a row change".into()),
        "m" => Err("Debezium `m` (message) event: not a row change".into()),
        other => Err(format!("Debezium event with unknown `op` `{other}`")),
    }
}

/// The event's version: `source.lsn` (PostgreSQL's log position) when present, else when the
/// connector processed it, in microseconds (`ts_us`, else `ts_ms` × 1000; `source.ts_us` /
/// `source.ts_ms`, the database's time, when the event has no time of its own).
fn version(event: &Map<String, Value>) -> Option<i64> {
    let source = event.get("source").and_then(Value::as_object);
    let int = |v: Option<&Value>| v.and_then(Value::as_i64);
    let micros = |m: &Map<String, Value>| {
        int(m.get("ts_us")).or_else(|| int(m.get("ts_ms")).and_then(|ms| ms.checked_mul(1000)))
    };
    source
        .and_then(|s| int(s.get("lsn")))
        .or_else(|| micros(event))
        .or_else(|| source.and_then(micros))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A PostgreSQL connector's event for `inventory.customers`, without schemas.
    fn postgres(op: &str, before: Value, after: Value) -> Value {
        json!({
            "before": before,
            "after": after,
            "source": {
                "version": "2.7.3.Final", "connector": "postgresql", "name": "dbserver1",
                "ts_ms": 1_733_600_000_000i64, "snapshot": "false", "db": "inventory",
                "sequence": "[\"24023119\",\"24023128\"]", "schema": "inventory",
                "table": "customers", "txId": 555, "lsn": 24_023_128, "xmin": null
            },
            "op": op,
            "ts_ms": 1_733_600_000_123i64,
            "transaction": null
        })
    }

    fn anne() -> Value {
        json!({"id": 1004, "first_name": "Anne", "last_name": "Kretchmar", "email": "annek@noanswer.org"})
    }

    #[test]
    fn creates_updates_and_snapshot_reads_upsert_the_after_row() {
        for op in ["c", "u", "r"] {
            let change = decode_value(postgres(op, Value::Null, anne())).unwrap();
            assert_eq!(
                change,
                Change::Upsert {
                    row: anne().as_object().unwrap().clone(),
                    version: Some(24_023_128)
                },
                "{op}"
            );
        }
    }

    #[test]
    fn deletes_carry_the_before_row() {
        // PostgreSQL's default replica identity: only the key columns are in `before`.
        let change = decode_value(postgres(
            "d",
            json!({"id": 1004, "first_name": null}),
            Value::Null,
        ))
        .unwrap();
        let Change::Delete { row, version } = change else {
            panic!("a delete")
        };
        assert_eq!(row["id"], 1004);
        assert_eq!(version, Some(24_023_128));
    }

    #[test]
    fn the_schema_envelope_is_unwrapped() {
        let event = json!({
            "schema": {"type": "struct", "fields": [], "optional": false,
                       "name": "dbserver1.inventory.customers.Envelope", "version": 2},
            "payload": postgres("u", anne(), anne()),
        });
        let text = event.to_string();
        assert!(matches!(decode(&text), Ok(Change::Upsert { .. })));
    }

    #[test]
    fn without_an_lsn_the_version_is_the_event_time_in_microseconds() {
        // A MySQL connector's event: its source has binlog coordinates, no lsn.
        let mysql = json!({
            "before": null, "after": anne(),
            "source": {"version": "2.7.3.Final", "connector": "mysql", "name": "mysql-server-1",
                       "ts_ms": 1_733_600_000_000i64, "snapshot": "false", "db": "inventory",
                       "table": "customers", "server_id": 223344, "gtid": null,
                       "file": "mysql-bin.000003", "pos": 484, "row": 0, "thread": 7, "query": null},
            "op": "c", "ts_ms": 1_733_600_000_456i64
        });
        assert_eq!(
            decode_value(mysql.clone()).unwrap().version(),
            Some(1_733_600_000_456_000)
        );
        let mut newer = mysql.clone();
        newer["ts_us"] = json!(1_733_600_000_456_789i64);
        assert_eq!(
            decode_value(newer).unwrap().version(),
            Some(1_733_600_000_456_789)
        );
        let mut bare = mysql;
        bare.as_object_mut().unwrap().remove("ts_ms");
        assert_eq!(
            decode_value(bare).unwrap().version(),
            Some(1_733_600_000_000_000),
            "the source's time"
        );
        assert_eq!(
            decode_value(json!({"op": "c", "after": {"id": 1}}))
                .unwrap()
                .version(),
            None
        );
    }

    #[test]
    fn events_that_are_not_row_changes_say_why() {
        let cases = [
            (json!([1]), "message value is not a JSON object"),
            (json!({"id": 1}), "not a Debezium change event: no `op`"),
            (json!({"op": 1}), "Debezium event: `op` is not a string"),
            (
                postgres("c", Value::Null, Value::Null),
                "Debezium `c` event without an object `after`",
            ),
            (
                postgres("d", Value::Null, Value::Null),
                "Debezium `d` event without an object `before`",
            ),
            (
                postgres("t", Value::Null, Value::Null),
                "Debezium `t` (truncate) event: not a row change",
            ),
            (
                json!({"op": "m", "message": {"prefix": "x", "content": "eA=="}}),
                "Debezium `m` (message) event: not a row change",
            ),
            (
                json!({"op": "x", "after": {}}),
                "Debezium event with unknown `op` `x`",
            ),
            (
                json!({"schema": {}, "payload": null}),
                "Debezium envelope without an object `payload`",
            ),
        ];
        for (event, reason) in cases {
            assert_eq!(decode_value(event.clone()).unwrap_err(), reason, "{event}");
        }
        assert!(
            decode("{\"op\":")
                .unwrap_err()
                .starts_with("message value is not JSON: ")
        );
    }
}
