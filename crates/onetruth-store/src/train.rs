//! `train`: sample pairs from the store, estimate parameters, keep them as a new version.

use onetruth_resolve::score::{Comparison, MatchParameters};
use onetruth_resolve::{Matching, ResolverConfig};
use std::collections::BTreeMap;

use onetruth_resolve::resolver::KeyKind;
use onetruth_resolve::train::{CandidateGroup, TrainingOptions, TrainingReport, train};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use crate::apply::{active_parameters, load_resolver};
use crate::{Store, StoreError, now_micros};

/// How much to sample for training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingSettings {
    /// Random record pairs compared for u.
    pub random_pairs: usize,
    /// Most candidate pairs (sharing a blocking key) EM runs over, per kind of key.
    pub max_candidates: usize,
    /// Seed of the random pair sample (the same store and seed give the same parameters).
    pub seed: u64,
    /// EM iteration limit.
    pub max_iterations: usize,
    /// Store the result as the active parameters (otherwise only report it).
    pub save: bool,
}

impl Default for TrainingSettings {
    fn default() -> Self {
        TrainingSettings {
            random_pairs: 200_000,
            max_candidates: 500_000,
            seed: 1,
            max_iterations: TrainingOptions::default().max_iterations,
            save: true,
        }
    }
}

/// What `train` produced.
#[derive(Debug, Clone, Serialize)]
pub struct TrainingOutcome {
    /// The id of the stored parameter version; `None` when not saved.
    pub id: Option<i64>,
    pub previous: MatchParameters,
    pub params: MatchParameters,
    pub report: TrainingReport,
}

/// The active parameter version: `None` for the shipped defaults.
#[derive(Debug, Clone, Serialize)]
pub struct ParametersInfo {
    pub id: i64,
    pub origin: String,
    /// Unix micros.
    pub created_at: i64,
}

/// SplitMix64: a small, stable generator, so a seed picks the same pairs on every platform.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^= z >> 31;
        (z % n as u64) as usize
    }
}

impl Store {
    /// Estimate match parameters from the stored records (u from random pairs, m by EM over
    /// candidate pairs, starting from the active parameters) and, with `save`, store them as a
    /// new active version. Existing links keep their scores until their records change or
    /// [`Store::reresolve`] runs.
    pub fn train(&mut self, settings: TrainingSettings) -> Result<TrainingOutcome, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let previous = active_parameters(&tx)?;
        // Training compares every field, whatever the store links by.
        let config = ResolverConfig {
            matching: Matching::Probabilistic,
            ..self.resolution.clone()
        };
        let resolver = load_resolver(&tx, &config)?;
        let resolver = &resolver;
        let ids = resolver.record_ids();
        let mut random: Vec<Comparison> = Vec::new();
        if ids.len() >= 2 {
            let mut rng = SplitMix(settings.seed);
            for _ in 0..settings.random_pairs {
                let (a, b) = (ids[rng.below(ids.len())], ids[rng.below(ids.len())]);
                if a != b {
                    random.extend(resolver.compare(a, b));
                }
            }
        }
        // One group per kind of blocking key: EM on pairs found through an email key does not
        // learn email's m (they all agree on it).
        let mut groups: BTreeMap<KeyKind, CandidateGroup> = BTreeMap::new();
        for (kind, a, b) in resolver.candidate_pairs(settings.max_candidates) {
            let group = groups.entry(kind).or_insert_with(|| CandidateGroup {
                conditioned: kind
                    .conditioned_fields()
                    .iter()
                    .map(|f| f.to_string())
                    .collect(),
                comparisons: Vec::new(),
            });
            group.comparisons.extend(resolver.compare(a, b));
        }
        let groups: Vec<CandidateGroup> = groups.into_values().collect();
        let (params, report) = train(
            &random,
            &groups,
            &previous,
            TrainingOptions {
                max_iterations: settings.max_iterations,
                ..TrainingOptions::default()
            },
        );
        // Term frequencies: the share of records per family name, for names held by at least
        // two records (a name seen once is already at the floor), at most 50,000 names.
        let mut params = params;
        let counts = resolver.family_name_counts();
        let total: usize = counts.values().sum();
        let mut common: Vec<(String, usize)> =
            counts.into_iter().filter(|(_, n)| *n >= 2).collect();
        common.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        common.truncate(50_000);
        params.term_frequencies = common
            .into_iter()
            .map(|(name, n)| (name, n as f64 / total.max(1) as f64))
            .collect();
        let mut id = None;
        if settings.save {
            tx.execute(
                "UPDATE match_parameters SET active = 0 WHERE active = 1",
                [],
            )?;
            let json = serde_json::to_string(&params).map_err(|e| StoreError::Parameters {
                id: 0,
                message: e.to_string(),
            })?;
            let summary = serde_json::to_string(&report).unwrap_or_default();
            tx.execute(
                "INSERT INTO match_parameters (created_at, origin, params, summary, active) VALUES (?1, 'train', ?2, ?3, 1)",
                params![now_micros(), json, summary],
            )?;
            id = Some(tx.last_insert_rowid());
        }
        tx.commit()?;
        // The writer state was built with the old parameters.
        self.state = None;
        Ok(TrainingOutcome {
            id,
            previous,
            params,
            report,
        })
    }

    /// The active parameter version, `None` while the shipped defaults are in use.
    pub fn parameters_info(&self) -> Result<Option<ParametersInfo>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, origin, created_at FROM match_parameters WHERE active = 1 ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(ParametersInfo {
                        id: r.get(0)?,
                        origin: r.get(1)?,
                        created_at: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }
}
