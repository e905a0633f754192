//! Read queries. Results are model/resolve types, never rows.

use std::collections::BTreeMap;

use onetruth_model::{CustomerId, Identifier, IdentifierKind};
use onetruth_resolve::{Golden, RecordView, Survivorship, golden_with};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::codec::StoredRecord;
use crate::schema::identifier_key_columns;
use crate::{Store, StoreError};

/// What a customer id resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// The live customer.
    pub id: CustomerId,
    /// The id asked for, when it was an alias of `id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<CustomerId>,
}

/// One source record of a customer.
#[derive(Debug, Clone, Serialize)]
pub struct RecordEntry {
    pub source: String,
    pub source_id: String,
    pub version: i64,
    pub identifiers: Vec<Identifier>,
    pub attributes: onetruth_model::Attributes,
    /// Unix microseconds of the last change.
    pub updated_at: i64,
}

/// One event, attached to a customer.
#[derive(Debug, Clone, Serialize)]
pub struct EventEntry {
    pub kind: String,
    pub occurred_at: String,
    pub source: String,
    pub source_id: String,
    pub data: serde_json::Value,
}

/// A customer: golden profile, source records and recent events.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerProfile {
    pub id: CustomerId,
    /// Older ids merged into this one; they still resolve here.
    pub aliases: Vec<CustomerId>,
    /// Changelog sequence of the last change.
    pub version: i64,
    pub created_at: i64,
    pub golden: Golden,
    pub records: Vec<RecordEntry>,
    /// Most recent first.
    pub events: Vec<EventEntry>,
}

/// A customer as exported: id, version and golden profile.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerExport {
    pub id: CustomerId,
    pub version: i64,
    pub records: usize,
    pub golden: Golden,
}

/// One source record to customer link.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub source: String,
    pub source_id: String,
    pub customer_id: CustomerId,
}

/// An exported event; `customer_id` is absent when no customer matches yet.
#[derive(Debug, Clone, Serialize)]
pub struct EventExport {
    pub customer_id: Option<CustomerId>,
    #[serde(flatten)]
    pub event: EventEntry,
}

/// Counts for `onetruth stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub customers: i64,
    pub aliases: i64,
    pub records: i64,
    pub deleted_records: i64,
    pub records_by_source: BTreeMap<String, i64>,
    pub identifiers: i64,
    pub placeholder_identifiers: i64,
    pub links: i64,
    pub events: i64,
    pub quarantined: i64,
    pub changelog_version: i64,
    /// connector -> stream -> position.
    pub checkpoints: BTreeMap<String, BTreeMap<String, String>>,
    /// Links a guard refused.
    pub refused_links: i64,
    /// Pairs in the possible band, kept for review.
    pub possible_pairs: i64,
    /// Customer ids whose records went to several customers.
    pub split_customers: i64,
    /// Identifier values that stopped linking (`kind:value` -> names, records).
    pub generic_values: Vec<GenericValue>,
    /// Blocking keys over the candidate cap.
    pub blocking_overflows: i64,
    /// The largest overflowed keys (at most 10).
    pub largest_overflows: Vec<(String, i64)>,
    /// The active match parameters: `None` for the shipped defaults.
    pub match_parameters: Option<crate::ParametersInfo>,
    /// How this store is configured to decide links (`[resolution] matching`).
    pub matching: onetruth_resolve::Matching,
}

/// An identifier value held by records with too many different names to link anyone.
#[derive(Debug, Clone, Serialize)]
pub struct GenericValue {
    /// `kind:value`.
    pub value: String,
    /// Distinct given names among its holders.
    pub names: i64,
    pub records: i64,
}

/// A quarantined record.
#[derive(Debug, Clone, Serialize)]
pub struct Quarantined {
    pub source: String,
    pub position: String,
    pub reason: String,
    pub raw: String,
}

const RECENT_EVENTS: usize = 20;

impl Store {
    /// Resolve a customer id (possibly an alias) to the live customer.
    pub fn resolve(&self, id: CustomerId) -> Result<Option<Resolved>, StoreError> {
        // The survivor must still be live.
        Ok(match self.alias_target(id)? {
            Some((target, status)) if status == "active" => Some(Resolved {
                id: CustomerId(target),
                alias: (target != id.0).then_some(id),
            }),
            _ => None,
        })
    }

    /// The customer an id points at (itself, or the survivor it is an alias of: aliases are
    /// one hop) and that customer's status.
    fn alias_target(&self, id: CustomerId) -> Result<Option<(i64, String)>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT t.id, t.status FROM customers c JOIN customers t ON t.id = coalesce(c.merged_into, c.id)
                 WHERE c.id = ?1",
            )?
            .query_row(params![id.0], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// When `id` (or the customer it is an alias of) was split up: the customers its records
    /// went to. `None` when it was not split.
    pub fn split_into(&self, id: CustomerId) -> Result<Option<Vec<CustomerId>>, StoreError> {
        let Some((target, status)) = self.alias_target(id)? else {
            return Ok(None);
        };
        if status != "split" {
            return Ok(None);
        }
        let details: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT details FROM changelog WHERE customer_id = ?1 AND change = 'split_into' ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(params![target], |r| r.get(0))
            .optional()?;
        let into = details
            .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
            .and_then(|v| {
                v["into"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_i64())
                        .map(CustomerId)
                        .collect()
                })
            })
            .unwrap_or_default();
        Ok(Some(into))
    }

    /// Live customers holding a linkable identifier, oldest first. Placeholders find no one.
    pub fn lookup(
        &self,
        kind: &IdentifierKind,
        value: &str,
    ) -> Result<Vec<CustomerId>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT r.customer_id FROM identifiers i JOIN source_records r ON r.id = i.record_id
             WHERE i.key_hi = ?1 AND i.key_lo = ?2 AND i.linkable = 1 AND r.customer_id IS NOT NULL
             ORDER BY r.customer_id",
        )?;
        let (hi, lo) = identifier_key_columns(kind.as_str(), value);
        let ids = stmt
            .query_map(params![hi, lo], |r| r.get::<_, i64>(0))?
            .map(|r| r.map(CustomerId))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }

    /// A live customer's profile (pass a resolved id).
    pub fn customer(&self, id: CustomerId) -> Result<Option<CustomerProfile>, StoreError> {
        let head: Option<(i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT version, created_at FROM customers WHERE id = ?1 AND merged_into IS NULL AND status = 'active'",
            )?
            .query_row(params![id.0], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((version, created_at)) = head else {
            return Ok(None);
        };
        let aliases = self
            .conn
            .prepare_cached("SELECT id FROM customers WHERE merged_into = ?1 ORDER BY id")?
            .query_map(params![id.0], |r| r.get::<_, i64>(0))?
            .map(|r| r.map(CustomerId))
            .collect::<Result<Vec<_>, _>>()?;

        let mut records = Vec::new();
        let mut record_ids = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, source, source_id, version, record, updated_at FROM source_records
                 WHERE customer_id = ?1 ORDER BY source, source_id",
            )?;
            let mut rows = stmt.query(params![id.0])?;
            while let Some(r) = rows.next()? {
                let rid: i64 = r.get(0)?;
                let stored = parse_record(rid, &r.get::<_, Vec<u8>>(4)?)?;
                record_ids.push(rid);
                records.push(RecordEntry {
                    source: r.get(1)?,
                    source_id: r.get(2)?,
                    version: r.get(3)?,
                    identifiers: stored.identifiers,
                    attributes: stored.attributes,
                    updated_at: r.get(5)?,
                });
            }
        }
        let golden = golden_of(&records, &self.survivorship);
        let events = self.customer_events(&record_ids, &records)?;
        Ok(Some(CustomerProfile {
            id,
            aliases,
            version,
            created_at,
            golden,
            records,
            events,
        }))
    }

    /// Events of the customer's own records plus events naming one of its identifiers.
    fn customer_events(
        &self,
        record_ids: &[i64],
        records: &[RecordEntry],
    ) -> Result<Vec<EventEntry>, StoreError> {
        let mut keys: Vec<(i64, i64)> = Vec::new();
        let mut own = self
            .conn
            .prepare_cached("SELECT seq FROM events WHERE record_id = ?1")?;
        for rid in record_ids {
            for seq in own.query_map(params![rid], |r| r.get::<_, i64>(0))? {
                keys.push((*rid, seq?));
            }
        }
        let mut by_id = self.conn.prepare_cached(
            "SELECT record_id, seq FROM event_identifiers WHERE key_hi = ?1 AND key_lo = ?2",
        )?;
        for rec in records {
            for id in rec.identifiers.iter().filter(|i| i.linkable) {
                let (hi, lo) = identifier_key_columns(id.kind.as_str(), &id.value);
                for k in by_id.query_map(params![hi, lo], |r| Ok((r.get(0)?, r.get(1)?)))? {
                    keys.push(k?);
                }
            }
        }
        keys.sort_unstable();
        keys.dedup();
        let mut get = self.conn.prepare_cached(
            "SELECT e.kind, e.occurred_at, e.data, r.source, r.source_id FROM events e
             JOIN source_records r ON r.id = e.record_id WHERE e.record_id = ?1 AND e.seq = ?2",
        )?;
        let mut events = Vec::with_capacity(keys.len());
        for (rid, seq) in keys {
            events.push(get.query_row(params![rid, seq], |r| {
                Ok(EventEntry {
                    kind: r.get(0)?,
                    occurred_at: r.get(1)?,
                    data: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                    source: r.get(3)?,
                    source_id: r.get(4)?,
                })
            })?);
        }
        events.sort_by(|a, b| b.occurred_at.cmp(&a.occurred_at));
        events.truncate(RECENT_EVENTS);
        Ok(events)
    }

    /// Stream live customers ordered by id; with `since`, only those changed after that
    /// changelog version.
    pub fn for_each_customer<E: From<StoreError>>(
        &self,
        since: Option<i64>,
        mut f: impl FnMut(CustomerExport) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT c.id, c.version, r.id, r.source, r.source_id, r.version, r.record
                 FROM customers c JOIN source_records r ON r.customer_id = c.id
                 WHERE c.merged_into IS NULL AND c.status = 'active' AND c.version > ?1
                 ORDER BY c.id",
            )
            .map_err(StoreError::from)?;
        let mut rows = stmt
            .query(params![since.unwrap_or(-1)])
            .map_err(StoreError::from)?;
        let mut current: Option<(i64, i64)> = None;
        let mut records: Vec<RecordView> = Vec::new();
        let flush = |cur: (i64, i64),
                     records: &mut Vec<RecordView>,
                     f: &mut dyn FnMut(CustomerExport) -> Result<(), E>| {
            let out = CustomerExport {
                id: CustomerId(cur.0),
                version: cur.1,
                records: records.len(),
                golden: golden_with(records, &self.survivorship),
            };
            records.clear();
            f(out)
        };
        while let Some(r) = rows.next().map_err(StoreError::from)? {
            let cid: i64 = r.get(0).map_err(StoreError::from)?;
            if current.is_some_and(|c| c.0 != cid) {
                // Checked just above: current is Some.
                flush(current.expect("current set"), &mut records, &mut f)?;
            }
            current = Some((cid, r.get(1).map_err(StoreError::from)?));
            let rid: i64 = r.get(2).map_err(StoreError::from)?;
            let stored = parse_record(rid, &r.get::<_, Vec<u8>>(6).map_err(StoreError::from)?)?;
            records.push(RecordView {
                source: r.get(3).map_err(StoreError::from)?,
                source_id: r.get(4).map_err(StoreError::from)?,
                version: r.get(5).map_err(StoreError::from)?,
                identifiers: stored.identifiers,
                attributes: stored.attributes,
            });
        }
        if let Some(cur) = current {
            flush(cur, &mut records, &mut f)?;
        }
        Ok(())
    }

    /// Stream one link per live source record that belongs to a customer.
    pub fn for_each_link<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(Link) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT source, source_id, customer_id FROM source_records
                 WHERE customer_id IS NOT NULL ORDER BY source, source_id",
            )
            .map_err(StoreError::from)?;
        let mut rows = stmt.query([]).map_err(StoreError::from)?;
        while let Some(r) = rows.next().map_err(StoreError::from)? {
            f(Link {
                source: r.get(0).map_err(StoreError::from)?,
                source_id: r.get(1).map_err(StoreError::from)?,
                customer_id: CustomerId(r.get(2).map_err(StoreError::from)?),
            })?;
        }
        Ok(())
    }

    /// Stream every event with the customer it attaches to (its record's customer, else the
    /// oldest customer holding one of its identifiers).
    pub fn for_each_event<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(EventExport) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT e.record_id, e.seq, e.kind, e.occurred_at, e.data, r.source, r.source_id, r.customer_id
                 FROM events e JOIN source_records r ON r.id = e.record_id
                 ORDER BY e.occurred_at, e.record_id, e.seq",
            )
            .map_err(StoreError::from)?;
        let mut via_ids = self
            .conn
            .prepare(
                "SELECT min(r.customer_id) FROM event_identifiers ei
                 JOIN identifiers i ON i.key_hi = ei.key_hi AND i.key_lo = ei.key_lo
                     AND i.linkable = 1
                 JOIN source_records r ON r.id = i.record_id
                 WHERE ei.record_id = ?1 AND ei.seq = ?2",
            )
            .map_err(StoreError::from)?;
        let mut rows = stmt.query([]).map_err(StoreError::from)?;
        while let Some(r) = rows.next().map_err(StoreError::from)? {
            let (rid, seq): (i64, i64) = (
                r.get(0).map_err(StoreError::from)?,
                r.get(1).map_err(StoreError::from)?,
            );
            let mut customer: Option<i64> = r.get(7).map_err(StoreError::from)?;
            if customer.is_none() {
                customer = via_ids
                    .query_row(params![rid, seq], |r| r.get(0))
                    .map_err(StoreError::from)?;
            }
            f(EventExport {
                customer_id: customer.map(CustomerId),
                event: EventEntry {
                    kind: r.get(2).map_err(StoreError::from)?,
                    occurred_at: r.get(3).map_err(StoreError::from)?,
                    data: serde_json::from_str(&r.get::<_, String>(4).map_err(StoreError::from)?)
                        .unwrap_or_default(),
                    source: r.get(5).map_err(StoreError::from)?,
                    source_id: r.get(6).map_err(StoreError::from)?,
                },
            })?;
        }
        Ok(())
    }

    /// Counts of everything.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        let one = |sql: &str| -> Result<i64, StoreError> {
            Ok(self.conn.query_row(sql, [], |r| r.get(0))?)
        };
        let mut s = Stats {
            customers: one(
                "SELECT count(*) FROM customers WHERE merged_into IS NULL AND status = 'active'",
            )?,
            aliases: one("SELECT count(*) FROM customers WHERE merged_into IS NOT NULL")?,
            records: one("SELECT count(*) FROM source_records WHERE deleted = 0")?,
            deleted_records: one("SELECT count(*) FROM source_records WHERE deleted = 1")?,
            identifiers: one("SELECT count(*) FROM identifiers")?,
            placeholder_identifiers: one("SELECT count(*) FROM identifiers WHERE linkable = 0")?,
            links: one("SELECT count(*) FROM evidence WHERE accepted = 1")?,
            events: one("SELECT count(*) FROM events")?,
            quarantined: one("SELECT count(*) FROM quarantine")?,
            changelog_version: one("SELECT coalesce(max(seq), 0) FROM changelog")?,
            refused_links: one("SELECT count(*) FROM evidence WHERE rule LIKE 'refused_%'")?,
            possible_pairs: one("SELECT count(*) FROM evidence WHERE rule = 'possible'")?,
            split_customers: one("SELECT count(*) FROM customers WHERE status = 'split'")?,
            blocking_overflows: one("SELECT count(*) FROM block_overflows")?,
            ..Stats::default()
        };
        s.match_parameters = self.parameters_info()?;
        s.matching = self.resolution.matching;
        s.generic_values = self
            .generic_values()?
            .into_iter()
            .map(|(value, (names, records))| GenericValue {
                value,
                names,
                records,
            })
            .collect();
        let mut stmt = self.conn.prepare(
            "SELECT key, records FROM block_overflows ORDER BY records DESC, key LIMIT 10",
        )?;
        for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
            s.largest_overflows.push(row?);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT source, count(*) FROM source_records WHERE deleted = 0 GROUP BY source ORDER BY source")?;
        for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
            let (k, v) = row?;
            s.records_by_source.insert(k, v);
        }
        let mut stmt = self.conn.prepare(
            "SELECT connector, stream, position FROM checkpoints ORDER BY connector, stream",
        )?;
        for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
            let (connector, stream, position): (String, String, String) = row?;
            s.checkpoints
                .entry(connector)
                .or_default()
                .insert(stream, position);
        }
        Ok(s)
    }

    /// Where each stream of a connector stands: stream -> position.
    pub fn checkpoints(&self, connector: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT stream, position FROM checkpoints WHERE connector = ?1")?;
        let rows = stmt.query_map(params![connector], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Quarantined records, newest first.
    pub fn quarantined(&self, limit: usize) -> Result<Vec<Quarantined>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT source, position, reason, raw FROM quarantine ORDER BY last_seen DESC, id DESC LIMIT ?1",
        )?;
        let rows = stmt
            .query_map(params![limit as i64], |r| {
                Ok(Quarantined {
                    source: r.get(0)?,
                    position: r.get(1)?,
                    reason: r.get(2)?,
                    raw: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

impl Store {
    /// A page of one source's quarantined records, oldest first: those with a row id above
    /// `after`, with their row ids (to ask for the next page).
    pub fn quarantined_of(
        &self,
        source: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Quarantined)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, source, position, reason, raw FROM quarantine WHERE source = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![source, after, limit as i64], |r| {
                Ok((
                    r.get(0)?,
                    Quarantined {
                        source: r.get(1)?,
                        position: r.get(2)?,
                        reason: r.get(3)?,
                        raw: r.get(4)?,
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

fn parse_record(record_id: i64, bytes: &[u8]) -> Result<StoredRecord, StoreError> {
    StoredRecord::decode(bytes).map_err(|message| StoreError::Corrupt { record_id, message })
}

fn golden_of(records: &[RecordEntry], rules: &Survivorship) -> Golden {
    let views: Vec<RecordView> = records
        .iter()
        .map(|r| RecordView {
            source: r.source.clone(),
            source_id: r.source_id.clone(),
            version: r.version,
            identifiers: r.identifiers.clone(),
            attributes: r.attributes.clone(),
        })
        .collect();
    golden_with(&views, rules)
}
