//! The change feed's wire format: one JSON message per changelog entry, keyed by customer id,
//! plus a tombstone (no value) once an id no longer names a customer.
//!
//! ```json
//! {"event":"updated","id":"cus_7","version":1042,"at":1796696229224997,"customer":{...}}
//! {"event":"merged","id":"cus_7","version":1043,"at":...,"absorbed":["cus_9"],"customer":{...}}
//! {"event":"merged_into","id":"cus_9","version":1044,"at":...,"into":"cus_7"}   then a tombstone for cus_9
//! {"event":"split_into","id":"cus_3","version":1050,"at":...,"into":["cus_3","cus_12"]} then a tombstone
//! ```

use onetruth_model::CustomerId;
use onetruth_store::{Change, ChangeEntry, Store, StoreError};
use serde_json::{Value, json};

/// One change-feed message: `value` `None` is a tombstone.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeMessage {
    pub key: String,
    pub value: Option<Value>,
    /// `created`, `updated`, `merged`, `split`, `merged_into`, `split_into` or `deleted`.
    pub event: &'static str,
}

fn ids(list: &[CustomerId]) -> Value {
    list.iter().map(|c| Value::String(c.to_string())).collect()
}

/// The messages for one changelog entry. A live customer's message carries its profile as it
/// is now (a later change may already show in it; its own message follows in order).
pub fn change_messages(
    store: &Store,
    entry: &ChangeEntry,
) -> Result<Vec<ChangeMessage>, StoreError> {
    let key = entry.customer.to_string();
    let mut body = json!({
        "id": key,
        "version": entry.seq,
        "at": entry.at,
    });
    let event = match &entry.change {
        Change::Created => "created",
        Change::Updated => "updated",
        Change::Merged { absorbed } => {
            body["absorbed"] = ids(absorbed);
            "merged"
        }
        Change::Split { split_off } => {
            body["split_off"] = ids(split_off);
            "split"
        }
        Change::MergedInto { into } => {
            body["into"] = Value::String(into.to_string());
            "merged_into"
        }
        Change::SplitInto { into } => {
            body["into"] = ids(into);
            "split_into"
        }
        Change::Emptied => "deleted",
    };
    body["event"] = Value::String(event.into());
    if entry.change.is_live() {
        let profile = store.customer(entry.customer)?;
        body["customer"] = serde_json::to_value(profile).unwrap_or(Value::Null);
        return Ok(vec![ChangeMessage {
            key,
            value: Some(body),
            event,
        }]);
    }
    // The id no longer names a customer: the event, then a tombstone so that a compacted
    // topic forgets it.
    let mut out = Vec::with_capacity(2);
    if !matches!(entry.change, Change::Emptied) {
        out.push(ChangeMessage {
            key: key.clone(),
            value: Some(body),
            event,
        });
    }
    out.push(ChangeMessage {
        key,
        value: None,
        event: if matches!(entry.change, Change::Emptied) {
            "deleted"
        } else {
            event
        },
    });
    Ok(out)
}
