//! The batch `apply` transaction: records, identifiers, links, events, changelog and the
//! connector checkpoint commit together or not at all.

use std::collections::BTreeSet;

use onetruth_model::{Attributes, Event, Identifier, Op, SourceRecord};
use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use onetruth_resolve::IdentifierPolicy;

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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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

/// A record made ready for the writer: placeholders screened, JSON serialized, content hashed.
/// Preparing is pure CPU work, so the ingest pipeline does it off the writer thread.
#[derive(Debug, Clone)]
pub struct PreparedRecord {
    source: String,
    source_id: String,
    version: i64,
    deleted: bool,
    /// Identifiers and events of the record (its attributes live only in `record_json`: the
    /// writer never reads them, and dropping them early keeps queued batches small).
    identifiers: Vec<Identifier>,
    events: Vec<Event>,
    /// Whether it describes a customer (identifiers or attributes), i.e. is not event-only.
    is_entity: bool,
    record_json: String,
    raw_json: Option<String>,
    hash: i64,
    /// [`identifier_hash`] of each of `identifiers`, computed off the writer thread.
    identifier_hashes: Vec<u64>,
    /// [`identifier_hash`] of `(source, source_id)`.
    key_hash: u64,
}

/// A [`Batch`] after [`Batch::prepare`].
#[derive(Debug, Clone, Default)]
pub struct PreparedBatch {
    connector: String,
    records: Vec<PreparedRecord>,
    quarantine: Vec<QuarantineEntry>,
    checkpoint: Option<String>,
}

impl Batch {
    /// Screen identifiers with `policy` and serialize every record.
    pub fn prepare(self, policy: &IdentifierPolicy) -> PreparedBatch {
        let records = self
            .records
            .into_iter()
            .map(|r| {
                let deleted = r.op == Op::Delete;
                let mut stored = if deleted {
                    StoredRecord::default()
                } else {
                    StoredRecord {
                        identifiers: r.identifiers,
                        attributes: r.attributes,
                        events: r.events,
                    }
                };
                policy.screen(&mut stored.identifiers);
                for e in &mut stored.events {
                    policy.screen(&mut e.identifiers);
                }
                // Model types serialize infallibly (string keys, no non-finite floats reach
                // serde_json::Value), so this cannot fail.
                let record_json = serde_json::to_string(&stored).expect("stored record serializes");
                let hash = fnv1a(record_json.as_bytes()) ^ i64::from(deleted);
                let identifier_hashes = stored
                    .identifiers
                    .iter()
                    .map(|i| identifier_hash(i.kind.as_str(), &i.value))
                    .collect();
                PreparedRecord {
                    key_hash: identifier_hash(&r.source, &r.source_id),
                    identifier_hashes,
                    source: r.source,
                    source_id: r.source_id,
                    version: r.version,
                    deleted,
                    is_entity: !deleted
                        && (!stored.identifiers.is_empty() || !stored.attributes.is_empty()),
                    identifiers: stored.identifiers,
                    events: stored.events,
                    record_json,
                    raw_json: (!r.raw.is_null()).then(|| r.raw.to_string()),
                    hash,
                }
            })
            .collect();
        PreparedBatch {
            connector: self.connector,
            records,
            quarantine: self.quarantine,
            checkpoint: self.checkpoint,
        }
    }
}

struct Existing {
    id: i64,
    version: i64,
    hash: i64,
    customer: Option<i64>,
}

/// State of one apply transaction. Ids are allocated here rather than by AUTOINCREMENT: there
/// is one writer, customer and changelog rows are never deleted, so max + 1 never reuses an id
/// and saves a sqlite_sequence write per row.
struct Tx<'a> {
    tx: Transaction<'a>,
    filter: Option<IdentifierFilter>,
    now: i64,
    next_customer: i64,
    next_seq: i64,
    summary: ApplySummary,
}

impl Store {
    /// Apply a batch in one transaction.
    pub fn apply(&mut self, batch: Batch) -> Result<ApplySummary, StoreError> {
        let prepared = batch.prepare(&self.policy);
        self.apply_prepared(prepared)
    }

    /// Apply a batch prepared with this store's policy, in one transaction.
    pub fn apply_prepared(&mut self, batch: PreparedBatch) -> Result<ApplySummary, StoreError> {
        self.apply_group(vec![batch])
    }

    /// Apply several prepared batches in one transaction (group commit), each batch's records,
    /// quarantine and checkpoint in order. A bulk load commits less often this way: every
    /// commit rewrites each index page it touched, and with random keys (emails) that is
    /// nearly a page per record once the store is large.
    pub fn apply_group(&mut self, batches: Vec<PreparedBatch>) -> Result<ApplySummary, StoreError> {
        let records: usize = batches.iter().map(|b| b.records.len()).sum();
        // The filter travels with the transaction and comes back only if it commits.
        let mut filter = self.filter.take();
        // IMMEDIATE: take the write lock now, so the snapshot read below is the one written to.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let data_version: i64 = tx.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if filter
            .as_ref()
            .is_some_and(|f| f.data_version != data_version)
        {
            // Another connection wrote since our last commit: the filter may miss its values.
            filter = None;
        }
        if filter.is_none() && records >= IdentifierFilter::MIN_BATCH {
            filter = Some(IdentifierFilter::load(&tx, data_version)?);
        }
        let next_customer: i64 =
            tx.query_row("SELECT coalesce(max(id), 0) + 1 FROM customers", [], |r| {
                r.get(0)
            })?;
        let next_seq: i64 =
            tx.query_row("SELECT coalesce(max(seq), 0) + 1 FROM changelog", [], |r| {
                r.get(0)
            })?;
        let mut t = Tx {
            tx,
            filter,
            now: now_micros(),
            next_customer,
            next_seq,
            summary: ApplySummary::default(),
        };
        for batch in &batches {
            for record in &batch.records {
                t.record(record)?;
            }
            let mut q = t.tx.prepare_cached(
                "INSERT INTO quarantine (source, position, raw, reason, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT (source, position) DO UPDATE SET raw = ?3, reason = ?4, last_seen = ?5",
            )?;
            for e in &batch.quarantine {
                q.execute(params![e.source, e.position, e.raw, e.reason, t.now])?;
                t.summary.quarantined += 1;
            }
            if let Some(position) = &batch.checkpoint {
                t.tx.prepare_cached(
                    "INSERT INTO checkpoints (connector, position, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (connector) DO UPDATE SET position = ?2, updated_at = ?3",
                )?
                .execute(params![batch.connector, position, t.now])?;
            }
        }
        let (tx, summary, mut filter) = t.finish();
        tx.commit()?;
        // Our own commits leave data_version unchanged; the next batch compares to it.
        if let Some(f) = filter.as_mut() {
            f.data_version = self
                .conn
                .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        }
        self.filter = filter;
        Ok(summary)
    }
}

/// Hash of an identifier's kind and normalized value, for [`IdentifierFilter`].
fn identifier_hash(kind: &str, value: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in kind.bytes().chain([0u8]).chain(value.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    // FNV's low bits mix poorly; fold the high half in for the hash set.
    h ^ (h >> 29)
}

/// The hashes of every linkable identifier in the store, kept by the writer so that a probe
/// for a value no record has (most probes, when loading new customers) skips SQLite. It only
/// answers "certainly absent" or "maybe present": a hit still runs the real query, and a stale
/// entry (a value since removed) costs one query, never a wrong link. Loaded for large batches
/// only, and dropped whenever another connection has written (`PRAGMA data_version`).
pub(crate) struct IdentifierFilter {
    hashes: HashSet<u64, BuildHasherDefault<PassThroughHasher>>,
    /// Hashes of `(source, source_id)` of every stored record, to skip the lookup of new ones.
    records: HashSet<u64, BuildHasherDefault<PassThroughHasher>>,
    data_version: i64,
}

impl IdentifierFilter {
    /// Below this many records a batch probes SQLite directly: loading costs a table scan.
    const MIN_BATCH: usize = 2000;

    fn load(tx: &Transaction, data_version: i64) -> Result<Self, StoreError> {
        let mut hashes = HashSet::default();
        let mut stmt = tx.prepare("SELECT kind, value FROM identifiers WHERE linkable = 1")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let kind = r.get_ref(0)?.as_str().unwrap_or_default();
            let value = r.get_ref(1)?.as_str().unwrap_or_default();
            hashes.insert(identifier_hash(kind, value));
        }
        let mut records = HashSet::default();
        let mut stmt = tx.prepare("SELECT source, source_id FROM source_records")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let source = r.get_ref(0)?.as_str().unwrap_or_default();
            let source_id = r.get_ref(1)?.as_str().unwrap_or_default();
            records.insert(identifier_hash(source, source_id));
        }
        Ok(IdentifierFilter {
            hashes,
            records,
            data_version,
        })
    }
}

/// The keys are already hashes.
#[derive(Default)]
struct PassThroughHasher(u64);

impl std::hash::Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl<'a> Tx<'a> {
    fn finish(self) -> (Transaction<'a>, ApplySummary, Option<IdentifierFilter>) {
        (self.tx, self.summary, self.filter)
    }

    fn changelog(
        &mut self,
        customer: i64,
        change: &str,
        details: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.tx
            .prepare_cached("INSERT INTO changelog (seq, customer_id, change, details, at) VALUES (?1, ?2, ?3, ?4, ?5)")?
            .execute(params![seq, customer, change, details.to_string(), self.now])?;
        Ok(seq)
    }

    fn set_version(&self, customer: i64, version: i64, status: &str) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("UPDATE customers SET version = ?2, status = ?3 WHERE id = ?1")?
            .execute(params![customer, version, status])?;
        Ok(())
    }

    fn record(&mut self, rec: &PreparedRecord) -> Result<(), StoreError> {
        let tx = &self.tx;
        // A record key the filter has never seen is certainly new: skip the lookup.
        let maybe_known = self
            .filter
            .as_mut()
            .is_none_or(|f| !f.records.insert(rec.key_hash));
        let existing = if !maybe_known {
            None
        } else {
            tx.prepare_cached(
                "SELECT id, version, content_hash, customer_id FROM source_records
                 WHERE source = ?1 AND source_id = ?2",
            )?
            .query_row(params![rec.source, rec.source_id], |r| {
                Ok(Existing {
                    id: r.get(0)?,
                    version: r.get(1)?,
                    hash: r.get(2)?,
                    customer: r.get(3)?,
                })
            })
            .optional()?
        };
        if let Some(e) = &existing {
            if rec.version <= e.version {
                self.summary.unchanged += 1;
                return Ok(());
            }
            if e.hash == rec.hash {
                // Same content under a newer version: remember the version so older replays
                // stay no-ops, but nothing changed for anyone.
                tx.prepare_cached("UPDATE source_records SET version = ?2 WHERE id = ?1")?
                    .execute(params![e.id, rec.version])?;
                self.summary.unchanged += 1;
                return Ok(());
            }
            let text: String = tx
                .prepare_cached("SELECT record FROM source_records WHERE id = ?1")?
                .query_row(params![e.id], |r| r.get(0))?;
            let old: StoredRecord =
                serde_json::from_str(&text).map_err(|err| StoreError::Corrupt {
                    record_id: e.id,
                    message: err.to_string(),
                })?;
            remove_indexes(tx, e.id, &old)?;
        }
        self.summary.applied += 1;
        let source_key = format!("{}:{}", rec.source, rec.source_id);
        let old_customer = existing.as_ref().and_then(|e| e.customer);
        let is_entity = rec.is_entity;

        // Identifier resolution, before the record is written (its own old identifiers are
        // already gone): every customer holding one of its linkable identifiers.
        let mut linked: BTreeSet<i64> = old_customer.into_iter().filter(|_| is_entity).collect();
        let mut evidence: Vec<(i64, &'static str)> = Vec::new();
        if is_entity {
            // No GROUP BY: a sorter per probe costs more than deduplicating here.
            let mut probe = tx.prepare_cached(
                "SELECT r.customer_id, r.id FROM identifiers i JOIN source_records r ON r.id = i.record_id
                 WHERE i.kind = ?1 AND i.value = ?2 AND i.linkable = 1 AND r.customer_id IS NOT NULL",
            )?;
            for (id, hash) in rec.identifiers.iter().zip(&rec.identifier_hashes) {
                if !id.linkable
                    || self
                        .filter
                        .as_ref()
                        .is_some_and(|f| !f.hashes.contains(hash))
                {
                    continue;
                }
                let mut rows = probe.query(params![id.kind.as_str(), id.value])?;
                while let Some(row) = rows.next()? {
                    let customer: i64 = row.get(0)?;
                    if linked.insert(customer) {
                        evidence.push((row.get(1)?, rule_name(id)));
                    }
                }
            }
        }
        let survivor = match (is_entity, linked.first().copied()) {
            (false, _) => None,
            (true, Some(oldest)) => Some(oldest),
            (true, None) => {
                let id = self.next_customer;
                self.next_customer += 1;
                let seq =
                    self.changelog(id, "created", &serde_json::json!({ "record": source_key }))?;
                self.tx
                    .prepare_cached(
                        "INSERT INTO customers (id, created_at, version) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![id, self.now, seq])?;
                self.summary.customers_created += 1;
                Some(id)
            }
        };
        let tx = &self.tx;

        // One upsert for new and changed records; `first_seen` survives an update.
        let record_id: i64 = tx
            .prepare_cached(
                "INSERT INTO source_records
                 (source, source_id, version, deleted, content_hash, first_seen, updated_at, customer_id, record, raw)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9)
                 ON CONFLICT (source, source_id) DO UPDATE SET
                   version = excluded.version, deleted = excluded.deleted,
                   content_hash = excluded.content_hash, updated_at = excluded.updated_at,
                   customer_id = excluded.customer_id, record = excluded.record, raw = excluded.raw
                 RETURNING id",
            )?
            .query_row(
                params![
                    rec.source,
                    rec.source_id,
                    rec.version,
                    rec.deleted,
                    rec.hash,
                    self.now,
                    survivor,
                    rec.record_json,
                    rec.raw_json
                ],
                |r| r.get(0),
            )?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT OR IGNORE INTO identifiers (kind, value, record_id, linkable) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (id, hash) in rec.identifiers.iter().zip(&rec.identifier_hashes) {
                ins.execute(params![id.kind.as_str(), id.value, record_id, id.linkable])?;
                if id.linkable
                    && let Some(f) = self.filter.as_mut()
                {
                    f.hashes.insert(*hash);
                }
            }
            if !rec.events.is_empty() {
                let mut ev = tx.prepare_cached(
                    "INSERT INTO events (record_id, seq, kind, occurred_at, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                let mut evid = tx.prepare_cached(
                    "INSERT OR IGNORE INTO event_identifiers (kind, value, record_id, seq) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for (seq, e) in rec.events.iter().enumerate() {
                    let data = serde_json::Value::Object(e.data.clone()).to_string();
                    ev.execute(params![record_id, seq as i64, e.kind, e.occurred_at, data])?;
                    for id in e.identifiers.iter().filter(|i| i.linkable) {
                        evid.execute(params![id.kind.as_str(), id.value, record_id, seq as i64])?;
                    }
                }
            }
            if !evidence.is_empty() {
                let mut ev = tx.prepare_cached(
                    "INSERT INTO evidence (record_a, record_b, kind, rule, created_at) VALUES (?1, ?2, 'identifier', ?3, ?4)",
                )?;
                for (other, rule) in &evidence {
                    ev.execute(params![record_id, other, rule, self.now])?;
                }
            }
        }

        let Some(survivor) = survivor else {
            // Deleted, or an event-only record: it leaves the customer it belonged to.
            if let Some(c) = old_customer {
                let remaining: i64 = tx
                    .prepare_cached("SELECT count(*) FROM source_records WHERE customer_id = ?1")?
                    .query_row(params![c], |r| r.get(0))?;
                let seq = self.changelog(
                    c,
                    "record_removed",
                    &serde_json::json!({ "record": source_key }),
                )?;
                self.set_version(c, seq, if remaining == 0 { "empty" } else { "active" })?;
            }
            return Ok(());
        };

        // The oldest customer survives; the others become aliases pointing straight at it
        // (aliases of aliases are re-pointed so resolving an alias is one hop).
        let absorbed: Vec<i64> = linked.iter().copied().filter(|c| *c != survivor).collect();
        for other in &absorbed {
            self.tx
                .prepare_cached(
                    "UPDATE source_records SET customer_id = ?2 WHERE customer_id = ?1",
                )?
                .execute(params![other, survivor])?;
            self.tx
                .prepare_cached("UPDATE customers SET merged_into = ?2 WHERE merged_into = ?1")?
                .execute(params![other, survivor])?;
            let seq = self.changelog(
                *other,
                "merged_into",
                &serde_json::json!({ "into": survivor, "record": source_key }),
            )?;
            self.tx
                .prepare_cached("UPDATE customers SET status = 'merged', merged_into = ?2, version = ?3 WHERE id = ?1")?
                .execute(params![other, survivor, seq])?;
            self.summary.merges += 1;
        }
        if !linked.is_empty() {
            let (change, details) = if absorbed.is_empty() {
                ("updated", serde_json::json!({ "record": source_key }))
            } else {
                (
                    "merged",
                    serde_json::json!({ "record": source_key, "absorbed": absorbed }),
                )
            };
            let seq = self.changelog(survivor, change, &details)?;
            self.set_version(survivor, seq, "active")?;
        }
        Ok(())
    }
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

impl PreparedBatch {
    /// Number of records (not counting quarantined ones).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.quarantine.is_empty()
    }
}
