//! Explanations: why two records are, or are not, one customer. Everything is returned as
//! data (serializable types) so the CLI, the API and MCP can serve the same answer.
//!
//! Scores are recomputed from the stored records with the active parameters, the store's
//! resolution settings and the current generic values — exactly what the resolver computed
//! when it last touched the pair — and paired with the decision it stored (the evidence row).

use std::collections::{BTreeMap, HashSet};

use onetruth_model::CustomerId;
use onetruth_resolve::score::{Comparison, MatchScore, compare_records, score_records};
use onetruth_resolve::{Matching, RecordView};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::apply::active_parameters;
use crate::codec::StoredRecord;
use crate::{Store, StoreError};

/// A source record, as explanations name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordRef {
    pub source: String,
    pub source_id: String,
    /// The customer it belongs to now; `None` for deleted and event-only records.
    pub customer_id: Option<CustomerId>,
}

/// How two records compare, what they score and what the resolver decided.
#[derive(Debug, Clone, Serialize)]
pub struct PairExplanation {
    pub left: RecordRef,
    pub right: RecordRef,
    pub same_customer: bool,
    /// Comparison level per field.
    pub comparison: Comparison,
    /// Total weight, probability, band and per-field contributions.
    pub score: MatchScore,
    /// The stored decision for the pair: `accepted` (joined two clusters), `implied` (already
    /// joined through stronger links), `forced` (curator), `possible` (kept for review) or
    /// `refused_<guard>`; `None` when the resolver has not kept the pair (not candidates, or
    /// scored below the possible band).
    pub decision: Option<String>,
    /// Identifier values of either record that are generic and therefore ignored.
    pub generic_values: Vec<String>,
    /// Linkable, non-generic identifier values both records hold (`kind:value`): what links
    /// the pair under identifier matching, and a strong field in the score otherwise.
    pub shared_identifiers: Vec<String>,
    /// How this store decides links (`[resolution] matching`): under `identifiers` a shared
    /// identifier is the link and the score is shown for reference only.
    pub matching: Matching,
}

/// Every link inside a customer and every link refused at its edge.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerExplanation {
    pub id: CustomerId,
    pub records: Vec<RecordRef>,
    /// Pairs inside the customer: accepted, implied and forced links (and possible pairs).
    pub links: Vec<PairExplanation>,
    /// Links a guard refused, inside the customer or to another customer, and possible pairs
    /// with records of other customers.
    pub refused: Vec<PairExplanation>,
}

/// A pair in the possible band, for review.
#[derive(Debug, Clone, Serialize)]
pub struct PossibleMatch {
    pub left: RecordRef,
    pub right: RecordRef,
    /// The pair's match weight (log2 odds) when it was scored.
    pub weight: f64,
}

struct Loaded {
    view: RecordView,
    customer: Option<i64>,
}

impl Store {
    /// The id of a live (not deleted) source record.
    pub fn record_id(&self, source: &str, source_id: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id FROM source_records WHERE source = ?1 AND source_id = ?2 AND deleted = 0",
            )?
            .query_row(params![source, source_id], |r| r.get(0))
            .optional()?)
    }

    fn load_record(&self, id: i64) -> Result<Option<Loaded>, StoreError> {
        // source, source_id, version, record, customer_id
        type RecordRow = (String, String, i64, Vec<u8>, Option<i64>);
        let row: Option<RecordRow> = self
            .conn
            .prepare_cached(
                "SELECT source, source_id, version, record, customer_id FROM source_records WHERE id = ?1",
            )?
            .query_row(params![id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        let Some((source, source_id, version, bytes, customer)) = row else {
            return Ok(None);
        };
        let stored = StoredRecord::decode(&bytes).map_err(|message| StoreError::Corrupt {
            record_id: id,
            message,
        })?;
        Ok(Some(Loaded {
            view: RecordView {
                source,
                source_id,
                version,
                identifiers: stored.identifiers,
                attributes: stored.attributes,
            },
            customer,
        }))
    }

    /// Generic identifier values: `kind:value` -> (distinct names, records) when detected.
    pub fn generic_values(&self) -> Result<BTreeMap<String, (i64, i64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT kind, value, names, records FROM generic_values ORDER BY kind, value",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                format!("{}:{}", r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                (r.get(2)?, r.get(3)?),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Pairs kept for review (the possible band) between records of different customers,
    /// strongest first. Confirm one with `curate force-merge`, dismiss it with `never-merge`.
    pub fn possible_matches(&self, limit: usize) -> Result<Vec<PossibleMatch>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.weight, a.source, a.source_id, a.customer_id, b.source, b.source_id, b.customer_id
             FROM evidence e
             JOIN source_records a ON a.id = e.record_a
             JOIN source_records b ON b.id = e.record_b
             WHERE e.rule = 'possible' AND a.customer_id IS NOT b.customer_id
             ORDER BY e.weight DESC, a.source, a.source_id, b.source, b.source_id
             LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit as i64], |r| {
            Ok(PossibleMatch {
                weight: r.get::<_, Option<f64>>(0)?.unwrap_or(f64::NAN),
                left: RecordRef {
                    source: r.get(1)?,
                    source_id: r.get(2)?,
                    customer_id: r.get::<_, Option<i64>>(3)?.map(CustomerId),
                },
                right: RecordRef {
                    source: r.get(4)?,
                    source_id: r.get(5)?,
                    customer_id: r.get::<_, Option<i64>>(6)?.map(CustomerId),
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Explain the pair of records `a` and `b` (record ids).
    pub fn explain_pair(&self, a: i64, b: i64) -> Result<Option<PairExplanation>, StoreError> {
        let generic: HashSet<String> = self.generic_values()?.into_keys().collect();
        let params = active_parameters(&self.conn)?;
        let (Some(left), Some(right)) = (self.load_record(a)?, self.load_record(b)?) else {
            return Ok(None);
        };
        let decision = self.decision(a, b)?;
        Ok(Some(self.pair(left, right, decision, &generic, &params)))
    }

    fn decision(&self, a: i64, b: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT rule FROM evidence WHERE record_a = ?1 AND record_b = ?2")?
            .query_row(params![a.min(b), a.max(b)], |r| r.get(0))
            .optional()?)
    }

    fn pair(
        &self,
        mut left: Loaded,
        mut right: Loaded,
        decision: Option<String>,
        generic: &HashSet<String>,
        params: &onetruth_resolve::score::MatchParameters,
    ) -> PairExplanation {
        let mut generic_values = Vec::new();
        for view in [&mut left.view, &mut right.view] {
            for i in &mut view.identifiers {
                let key = format!("{}:{}", i.kind.as_str(), i.value);
                if i.linkable && generic.contains(&key) {
                    i.linkable = false;
                    generic_values.push(key);
                }
            }
        }
        generic_values.sort();
        generic_values.dedup();
        let mut shared_identifiers: Vec<String> = left
            .view
            .identifiers
            .iter()
            .filter(|i| {
                i.linkable
                    && right
                        .view
                        .identifiers
                        .iter()
                        .any(|j| j.linkable && j.kind == i.kind && j.value == i.value)
            })
            .map(|i| format!("{}:{}", i.kind.as_str(), i.value))
            .collect();
        shared_identifiers.sort();
        shared_identifiers.dedup();
        let comparison = compare_records(&left.view, &right.view);
        let score = score_records(
            &left.view,
            &right.view,
            params,
            &params.term_frequencies,
            self.resolution.identifier_weight,
        );
        let r = |l: &Loaded| RecordRef {
            source: l.view.source.clone(),
            source_id: l.view.source_id.clone(),
            customer_id: l.customer.map(CustomerId),
        };
        PairExplanation {
            same_customer: left.customer.is_some() && left.customer == right.customer,
            left: r(&left),
            right: r(&right),
            comparison,
            score,
            decision,
            generic_values,
            shared_identifiers,
            matching: self.resolution.matching,
        }
    }

    /// Explain a live customer (pass a resolved id): every stored pair touching its records.
    pub fn explain_customer(
        &self,
        id: CustomerId,
    ) -> Result<Option<CustomerExplanation>, StoreError> {
        let ids: Vec<i64> = self
            .conn
            .prepare_cached(
                "SELECT id FROM source_records WHERE customer_id = ?1 ORDER BY source, source_id",
            )?
            .query_map(params![id.0], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok(None);
        }
        let generic: HashSet<String> = self.generic_values()?.into_keys().collect();
        let params = active_parameters(&self.conn)?;
        let mut records = Vec::new();
        let mut pairs: BTreeMap<(i64, i64), String> = BTreeMap::new();
        for rid in &ids {
            if let Some(l) = self.load_record(*rid)? {
                records.push(RecordRef {
                    source: l.view.source,
                    source_id: l.view.source_id,
                    customer_id: l.customer.map(CustomerId),
                });
            }
            let mut stmt = self.conn.prepare_cached(
                "SELECT record_a, record_b, rule FROM evidence WHERE record_a = ?1
                 UNION ALL SELECT record_a, record_b, rule FROM evidence WHERE record_b = ?1",
            )?;
            for row in stmt.query_map(params![rid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
                let (a, b, rule) = row?;
                pairs.insert((a, b), rule);
            }
        }
        let mut links = Vec::new();
        let mut refused = Vec::new();
        for ((a, b), rule) in pairs {
            let (Some(left), Some(right)) = (self.load_record(a)?, self.load_record(b)?) else {
                continue;
            };
            let inside = left.customer == Some(id.0) && right.customer == Some(id.0);
            let is_refusal = rule.starts_with("refused_");
            let p = self.pair(left, right, Some(rule), &generic, &params);
            if inside && !is_refusal {
                links.push(p);
            } else {
                refused.push(p);
            }
        }
        Ok(Some(CustomerExplanation {
            id,
            records,
            links,
            refused,
        }))
    }
}
