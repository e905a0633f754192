//! The changelog read back in commit order: what the change feed publishes and incremental
//! consumers follow. Every customer change is one row, numbered by `seq` (the customer's
//! version), written in the transaction that made the change.

use onetruth_model::CustomerId;
use rusqlite::params;
use serde::Serialize;

use crate::{Store, StoreError};

/// What happened to a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A new customer.
    Created,
    /// Its records changed.
    Updated,
    /// It absorbed other customers (they are aliases of it now).
    Merged { absorbed: Vec<CustomerId> },
    /// Some of its records went to new customers; it keeps the rest.
    Split { split_off: Vec<CustomerId> },
    /// It was absorbed into `into`: the id now resolves to `into`.
    MergedInto { into: CustomerId },
    /// Its records went to several customers; the id no longer names one.
    SplitInto { into: Vec<CustomerId> },
    /// Its last record was removed.
    Emptied,
}

impl Change {
    /// Whether the customer still exists after the change.
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            Change::Created | Change::Updated | Change::Merged { .. } | Change::Split { .. }
        )
    }
}

/// One changelog row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeEntry {
    /// The changelog sequence number: the customer's version after the change.
    pub seq: i64,
    pub customer: CustomerId,
    #[serde(flatten)]
    pub change: Change,
    /// When it was committed, unix µs.
    pub at: i64,
}

fn ids(details: &serde_json::Value, key: &str) -> Option<Vec<CustomerId>> {
    details
        .get(key)?
        .as_array()?
        .iter()
        .map(|v| v.as_i64().map(CustomerId))
        .collect()
}

fn decode(seq: i64, change: &str, details: Option<&str>) -> Result<Change, StoreError> {
    let corrupt = |message: String| StoreError::CorruptChange { seq, message };
    let details: serde_json::Value = match details {
        Some(d) => serde_json::from_str(d).map_err(|e| corrupt(format!("details: {e}")))?,
        None => serde_json::Value::Null,
    };
    let list = |key: &str| {
        ids(&details, key).ok_or_else(|| corrupt(format!("`{change}` without a `{key}` list")))
    };
    Ok(match change {
        "created" => Change::Created,
        "updated" => Change::Updated,
        "emptied" => Change::Emptied,
        "merged" => Change::Merged {
            absorbed: list("absorbed")?,
        },
        "split" => Change::Split {
            split_off: list("split_off")?,
        },
        "merged_into" => Change::MergedInto {
            into: details
                .get("into")
                .and_then(serde_json::Value::as_i64)
                .map(CustomerId)
                .ok_or_else(|| corrupt("`merged_into` without `into`".into()))?,
        },
        "split_into" => Change::SplitInto {
            into: list("into")?,
        },
        other => return Err(corrupt(format!("unknown change `{other}`"))),
    })
}

impl Store {
    /// Changelog rows after `after` (a seq; 0 for all), oldest first, at most `limit`.
    pub fn changes_since(&self, after: i64, limit: usize) -> Result<Vec<ChangeEntry>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, customer_id, change, details, at FROM changelog WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![after, limit as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let change: String = r.get(2)?;
            let details: Option<String> = r.get(3)?;
            out.push(ChangeEntry {
                seq,
                customer: CustomerId(r.get(1)?),
                change: decode(seq, &change, details.as_deref())?,
                at: r.get(4)?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_change_decodes_and_an_unknown_one_is_an_error() {
        assert_eq!(decode(1, "created", Some("{}")).unwrap(), Change::Created);
        assert_eq!(
            decode(2, "merged", Some(r#"{"absorbed":[3,4]}"#)).unwrap(),
            Change::Merged {
                absorbed: vec![CustomerId(3), CustomerId(4)]
            }
        );
        assert_eq!(
            decode(3, "merged_into", Some(r#"{"into":7}"#)).unwrap(),
            Change::MergedInto {
                into: CustomerId(7)
            }
        );
        assert_eq!(
            decode(4, "split_into", Some(r#"{"into":[1,2]}"#)).unwrap(),
            Change::SplitInto {
                into: vec![CustomerId(1), CustomerId(2)]
            }
        );
        assert_eq!(
            decode(5, "split", Some(r#"{"split_off":[9]}"#)).unwrap(),
            Change::Split {
                split_off: vec![CustomerId(9)]
            }
        );
        assert!(decode(6, "teleported", None).is_err());
        assert!(decode(7, "merged", Some("{}")).is_err());
    }
}
