//! The batch `apply` transaction: records, identifiers, links, events, changelog and the
//! connector checkpoint commit together or not at all.

use std::collections::BTreeSet;

use onetruth_model::{Attributes, Event, Identifier, Op, SourceRecord};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::{Store, StoreError, now_micros};

/// A record that could not be mapped, kept with its raw payload and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineEntry {
    pub source: String,
    /// Where it came from (`file:line`, a Kafka offset...).
    pub position: String,
    pub raw: String,
    pub reason: String,
}

/// One unit of durable progress for one connector.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The connector whose checkpoint this batch advances.
    pub connector: String,
    pub records: Vec<SourceRecord>,
    pub quarantine: Vec<QuarantineEntry>,
    /// The connector position after the last record of the batch.
    pub checkpoint: Option<String>,
}

/// What one or more batches did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ApplySummary {
    /// Records whose new version was written.
    pub applied: u64,
    /// Records ignored because their version was not newer or their content was unchanged.
    pub unchanged: u64,
    pub quarantined: u64,
    pub customers_created: u64,
    /// Customers absorbed into an older one.
    pub merges: u64,
}

impl std::ops::AddAssign for ApplySummary {
    fn add_assign(&mut self, o: Self) {
        self.applied += o.applied;
        self.unchanged += o.unchanged;
        self.quarantined += o.quarantined;
        self.customers_created += o.customers_created;
        self.merges += o.merges;
    }
}

/// The canonical part of a record as stored in `source_records.record`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredRecord {
    #[serde(default)]
    pub identifiers: Vec<Identifier>,
    #[serde(default)]
    pub attributes: Attributes,
    #[serde(default)]
    pub events: Vec<Event>,
}

/// FNV-1a: stable across builds, unlike std's hasher, because stored hashes outlive the binary.
fn fnv1a(bytes: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h as i64
}

struct Existing {
    id: i64,
    version: i64,
    hash: i64,
    customer: Option<i64>,
    record: String,
}

impl Store {
    /// Apply a batch in one transaction.
    pub fn apply(&mut self, mut batch: Batch) -> Result<ApplySummary, StoreError> {
        let now = now_micros();
        for r in &mut batch.records {
            self.policy.screen(&mut r.identifiers);
            for e in &mut r.events {
                self.policy.screen(&mut e.identifiers);
            }
        }
        let tx = self.conn.transaction()?;
        let mut summary = ApplySummary::default();
        for record in &batch.records {
            apply_record(&tx, record, now, &mut summary)?;
        }
        {
            let mut q = tx.prepare_cached(
                "INSERT INTO quarantine (source, position, raw, reason, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT (source, position) DO UPDATE SET raw = ?3, reason = ?4, last_seen = ?5",
            )?;
            for e in &batch.quarantine {
                q.execute(params![e.source, e.position, e.raw, e.reason, now])?;
                summary.quarantined += 1;
            }
        }
        if let Some(position) = &batch.checkpoint {
            tx.prepare_cached(
                "INSERT INTO checkpoints (connector, position, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (connector) DO UPDATE SET position = ?2, updated_at = ?3",
            )?
            .execute(params![batch.connector, position, now])?;
        }
        tx.commit()?;
        Ok(summary)
    }
}

fn apply_record(
    tx: &Transaction,
    rec: &SourceRecord,
    now: i64,
    summary: &mut ApplySummary,
) -> Result<(), StoreError> {
    let existing = tx
        .prepare_cached(
            "SELECT id, version, content_hash, customer_id, record FROM source_records
             WHERE source = ?1 AND source_id = ?2",
        )?
        .query_row(params![rec.source, rec.source_id], |r| {
            Ok(Existing {
                id: r.get(0)?,
                version: r.get(1)?,
                hash: r.get(2)?,
                customer: r.get(3)?,
                record: r.get(4)?,
            })
        })
        .optional()?;
    let deleted = rec.op == Op::Delete;
    let stored = if deleted {
        StoredRecord {
            identifiers: vec![],
            attributes: Attributes::default(),
            events: vec![],
        }
    } else {
        StoredRecord {
            identifiers: rec.identifiers.clone(),
            attributes: rec.attributes.clone(),
            events: rec.events.clone(),
        }
    };
    // Serialized once: both the stored text and the change detector.
    let record_json = serde_json::to_string(&stored).map_err(|e| StoreError::Corrupt {
        record_id: 0,
        message: e.to_string(),
    })?;
    let hash = fnv1a(record_json.as_bytes()) ^ i64::from(deleted);

    if let Some(e) = &existing {
        if rec.version <= e.version {
            summary.unchanged += 1;
            return Ok(());
        }
        if e.hash == hash {
            // Same content under a newer version: remember the version so older replays stay
            // no-ops, but nothing changed for anyone.
            tx.prepare_cached("UPDATE source_records SET version = ?2 WHERE id = ?1")?
                .execute(params![e.id, rec.version])?;
            summary.unchanged += 1;
            return Ok(());
        }
    }
    summary.applied += 1;
    let raw = if rec.raw.is_null() {
        None
    } else {
        Some(rec.raw.to_string())
    };

    let record_id = match &existing {
        Some(e) => {
            let old: StoredRecord =
                serde_json::from_str(&e.record).map_err(|err| StoreError::Corrupt {
                    record_id: e.id,
                    message: err.to_string(),
                })?;
            remove_indexes(tx, e.id, &old)?;
            tx.prepare_cached(
                "UPDATE source_records SET version = ?2, deleted = ?3, content_hash = ?4,
                 record = ?5, raw = ?6, updated_at = ?7 WHERE id = ?1",
            )?
            .execute(params![e.id, rec.version, deleted, hash, record_json, raw, now])?;
            e.id
        }
        None => {
            tx.prepare_cached(
                "INSERT INTO source_records
                 (source, source_id, version, deleted, content_hash, record, raw, first_seen, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
            )?
            .execute(params![rec.source, rec.source_id, rec.version, deleted, hash, record_json, raw, now])?;
            tx.last_insert_rowid()
        }
    };

    {
        let mut ins = tx.prepare_cached(
            "INSERT OR IGNORE INTO identifiers (kind, value, record_id, linkable) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for id in &stored.identifiers {
            ins.execute(params![id.kind.as_str(), id.value, record_id, id.linkable])?;
        }
        let mut ev = tx.prepare_cached(
            "INSERT INTO events (record_id, seq, kind, occurred_at, data) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut evid = tx.prepare_cached(
            "INSERT OR IGNORE INTO event_identifiers (kind, value, record_id, seq) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (seq, e) in stored.events.iter().enumerate() {
            let data = serde_json::Value::Object(e.data.clone()).to_string();
            ev.execute(params![record_id, seq as i64, e.kind, e.occurred_at, data])?;
            for id in e.identifiers.iter().filter(|i| i.linkable) {
                evid.execute(params![id.kind.as_str(), id.value, record_id, seq as i64])?;
            }
        }
    }

    let is_entity = !deleted && (!stored.identifiers.is_empty() || !stored.attributes.is_empty());
    let old_customer = existing.as_ref().and_then(|e| e.customer);
    if !is_entity {
        if let Some(c) = old_customer {
            tx.prepare_cached("UPDATE source_records SET customer_id = NULL WHERE id = ?1")?
                .execute(params![record_id])?;
            let remaining: i64 = tx
                .prepare_cached("SELECT count(*) FROM source_records WHERE customer_id = ?1")?
                .query_row(params![c], |r| r.get(0))?;
            let details = serde_json::json!({ "record": format!("{}:{}", rec.source, rec.source_id) });
            let version = changelog(tx, c, "record_removed", Some(&details), now)?;
            let status = if remaining == 0 { "empty" } else { "active" };
            tx.prepare_cached("UPDATE customers SET version = ?2, status = ?3 WHERE id = ?1")?
                .execute(params![c, version, status])?;
        }
        return Ok(());
    }

    // Identifier resolution: every customer holding one of this record's linkable identifiers.
    let mut linked: BTreeSet<i64> = old_customer.into_iter().collect();
    let mut evidence: Vec<(i64, &'static str)> = Vec::new();
    {
        let mut probe = tx.prepare_cached(
            "SELECT r.customer_id, min(r.id) FROM identifiers i JOIN source_records r ON r.id = i.record_id
             WHERE i.kind = ?1 AND i.value = ?2 AND i.linkable = 1 AND i.record_id != ?3
               AND r.customer_id IS NOT NULL
             GROUP BY r.customer_id",
        )?;
        for id in stored.identifiers.iter().filter(|i| i.linkable) {
            let mut rows = probe.query(params![id.kind.as_str(), id.value, record_id])?;
            while let Some(row) = rows.next()? {
                let customer: i64 = row.get(0)?;
                let other: i64 = row.get(1)?;
                if linked.insert(customer) {
                    evidence.push((other, rule_name(id)));
                }
            }
        }
    }
    for (other, rule) in &evidence {
        tx.prepare_cached(
            "INSERT INTO evidence (record_a, record_b, kind, rule, created_at) VALUES (?1, ?2, 'identifier', ?3, ?4)",
        )?
        .execute(params![record_id, other, rule, now])?;
    }

    let source_key = format!("{}:{}", rec.source, rec.source_id);
    let survivor = match linked.first().copied() {
        Some(oldest) => oldest,
        None => {
            tx.prepare_cached("INSERT INTO customers (created_at, version) VALUES (?1, 0)")?
                .execute(params![now])?;
            summary.customers_created += 1;
            let id = tx.last_insert_rowid();
            let version = changelog(tx, id, "created", Some(&serde_json::json!({ "record": source_key })), now)?;
            tx.prepare_cached("UPDATE customers SET version = ?2 WHERE id = ?1")?
                .execute(params![id, version])?;
            id
        }
    };
    if old_customer != Some(survivor) {
        tx.prepare_cached("UPDATE source_records SET customer_id = ?2 WHERE id = ?1")?
            .execute(params![record_id, survivor])?;
    }
    // The oldest customer survives; the others become aliases pointing straight at it (aliases
    // of aliases are re-pointed so resolving an alias is one hop).
    let absorbed: Vec<i64> = linked.iter().copied().filter(|c| *c != survivor).collect();
    for other in &absorbed {
        tx.prepare_cached("UPDATE source_records SET customer_id = ?2 WHERE customer_id = ?1")?
            .execute(params![other, survivor])?;
        tx.prepare_cached(
            "UPDATE customers SET merged_into = ?2 WHERE merged_into = ?1",
        )?
        .execute(params![other, survivor])?;
        let v = changelog(tx, *other, "merged_into", Some(&serde_json::json!({ "into": survivor, "record": source_key })), now)?;
        tx.prepare_cached("UPDATE customers SET status = 'merged', merged_into = ?2, version = ?3 WHERE id = ?1")?
            .execute(params![other, survivor, v])?;
        summary.merges += 1;
    }
    if !linked.is_empty() {
        let (change, details) = if absorbed.is_empty() {
            ("updated", serde_json::json!({ "record": source_key }))
        } else {
            ("merged", serde_json::json!({ "record": source_key, "absorbed": absorbed }))
        };
        let v = changelog(tx, survivor, change, Some(&details), now)?;
        tx.prepare_cached("UPDATE customers SET version = ?2, status = 'active' WHERE id = ?1")?
            .execute(params![survivor, v])?;
    }
    Ok(())
}

fn rule_name(id: &Identifier) -> &'static str {
    match id.kind {
        onetruth_model::IdentifierKind::Email => "shared_email",
        onetruth_model::IdentifierKind::Phone => "shared_phone",
        onetruth_model::IdentifierKind::External => "shared_external_id",
        onetruth_model::IdentifierKind::Custom(_) => "shared_custom_identifier",
    }
}

fn remove_indexes(tx: &Transaction, record_id: i64, old: &StoredRecord) -> Result<(), StoreError> {
    let mut del = tx.prepare_cached(
        "DELETE FROM identifiers WHERE kind = ?1 AND value = ?2 AND record_id = ?3",
    )?;
    for id in &old.identifiers {
        del.execute(params![id.kind.as_str(), id.value, record_id])?;
    }
    let mut del_ev = tx.prepare_cached(
        "DELETE FROM event_identifiers WHERE kind = ?1 AND value = ?2 AND record_id = ?3",
    )?;
    for e in &old.events {
        for id in &e.identifiers {
            del_ev.execute(params![id.kind.as_str(), id.value, record_id])?;
        }
    }
    tx.prepare_cached("DELETE FROM events WHERE record_id = ?1")?
        .execute(params![record_id])?;
    Ok(())
}

fn changelog(
    tx: &Transaction,
    customer: i64,
    change: &str,
    details: Option<&serde_json::Value>,
    now: i64,
) -> Result<i64, StoreError> {
    tx.prepare_cached("INSERT INTO changelog (customer_id, change, details, at) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![customer, change, details.map(|d| d.to_string()), now])?;
    Ok(tx.last_insert_rowid())
}
