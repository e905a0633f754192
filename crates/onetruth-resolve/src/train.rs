//! Estimating match parameters from the data, the Fellegi–Sunter way (as Splink does):
//!
//! - **u** — how often two *different* people land on each comparison level — from random
//!   pairs of records: in a store of many customers almost every random pair is two people.
//! - **m** — how often the *same* person does — by expectation–maximisation over candidate
//!   pairs (pairs that share a blocking key), with u held fixed: each pair's match probability
//!   under the current m (E), then m re-estimated from the pairs weighted by it (M), until m
//!   stops moving.
//!
//! Pure: comparisons in, parameters and a report out. The store samples the pairs.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::score::{Comparison, FIELDS, LevelProbabilities, MatchParameters};

/// What a training run saw and did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainingReport {
    /// Random pairs compared for u.
    pub random_pairs: usize,
    /// Candidate pairs EM ran over.
    pub candidate_pairs: usize,
    /// EM iterations run.
    pub iterations: usize,
    /// Whether m stopped moving (largest change below the tolerance) before the limit.
    pub converged: bool,
    /// Estimated share of candidate pairs that are the same person.
    pub candidate_match_share: f64,
}

/// Training settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingOptions {
    pub max_iterations: usize,
    /// EM stops when no m changes by more than this.
    pub tolerance: f64,
}

impl Default for TrainingOptions {
    fn default() -> Self {
        TrainingOptions {
            max_iterations: 50,
            tolerance: 1e-5,
        }
    }
}

/// The smallest probability training writes: parameters must stay in (0, 1], and a level
/// never observed is rare, not impossible.
const FLOOR: f64 = 1e-7;

/// Per field (in [`FIELDS`] order) the level names of one comparison (`missing` included).
fn levels(c: &Comparison) -> [&'static str; 7] {
    c.levels().map(|(_, l)| l)
}

/// Normalize counts into probabilities over the field's non-missing levels (`names`), with a
/// pseudo-count per level so an unseen level gets a small, positive probability.
fn distribution(
    names: &[String],
    counts: &BTreeMap<&str, f64>,
    pseudo: f64,
) -> BTreeMap<String, f64> {
    let total: f64 = names
        .iter()
        .map(|n| counts.get(n.as_str()).copied().unwrap_or(0.0) + pseudo)
        .sum();
    names
        .iter()
        .map(|n| {
            let c = counts.get(n.as_str()).copied().unwrap_or(0.0) + pseudo;
            (n.clone(), (c / total).max(FLOOR))
        })
        .collect()
}

/// A level seen fewer times than this among the random pairs keeps its starting u: a handful
/// of chance agreements (or none) says how rare the level is no better than the shipped value,
/// and for levels such as `same_local_part` the shipped value knows something random pairs
/// cannot show — namesakes share local parts far more often than random people do.
pub const MIN_U_OBSERVATIONS: f64 = 10.0;

/// Estimate every field's u from comparisons of random pairs. Levels observed fewer than
/// [`MIN_U_OBSERVATIONS`] times keep `start`'s u.
pub fn estimate_u(
    random: &[Comparison],
    start: &MatchParameters,
) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for (fi, field) in FIELDS.iter().enumerate() {
        let names: Vec<String> = start
            .fields
            .get(*field)
            .map(|l| l.keys().cloned().collect())
            .unwrap_or_default();
        let mut counts: BTreeMap<&str, f64> = BTreeMap::new();
        for c in random {
            let l = levels(c)[fi];
            if l != "missing" {
                *counts.entry(l).or_default() += 1.0;
            }
        }
        let mut u = distribution(&names, &counts, 0.5);
        for (level, p) in u.iter_mut() {
            if counts.get(level.as_str()).copied().unwrap_or(0.0) < MIN_U_OBSERVATIONS
                && let Some(old) = start.level(field, level)
            {
                *p = old.u;
            }
        }
        out.insert(field.to_string(), u);
    }
    out
}

/// Candidate pairs found through one kind of blocking key, and the fields that kind of key
/// makes them agree on (an email key finds pairs that share an email): EM on this group does
/// not learn those fields' m, which would be biased (Splink's approach).
#[derive(Debug, Clone, Default)]
pub struct CandidateGroup {
    pub conditioned: Vec<String>,
    pub comparisons: Vec<Comparison>,
}

type Table = BTreeMap<String, BTreeMap<String, f64>>;

fn prob(table: &Table, field: &str, level: &str) -> f64 {
    table
        .get(field)
        .and_then(|t| t.get(level))
        .copied()
        .unwrap_or(FLOOR)
}

/// EM over one group with u fixed. Returns m (for the fields not conditioned on), the match
/// share λ, the iterations run and whether it converged.
fn em(
    group: &CandidateGroup,
    start_m: &Table,
    u: &Table,
    options: TrainingOptions,
) -> (Table, f64, usize, bool) {
    let active: Vec<(usize, &str)> = FIELDS
        .iter()
        .enumerate()
        .filter(|(_, f)| !group.conditioned.iter().any(|c| c == *f))
        .map(|(i, f)| (i, *f))
        .collect();
    // Identical comparison vectors are one pattern with a count: EM runs over patterns.
    let mut patterns: BTreeMap<[&'static str; 7], f64> = BTreeMap::new();
    for c in &group.comparisons {
        *patterns.entry(levels(c)).or_default() += 1.0;
    }
    let mut m: Table = active
        .iter()
        .filter_map(|(_, f)| start_m.get(*f).map(|t| (f.to_string(), t.clone())))
        .collect();
    let mut lambda: f64 = 0.1;
    let (mut iterations, mut converged) = (0, false);
    while iterations < options.max_iterations && !patterns.is_empty() {
        iterations += 1;
        // E: each pattern's match probability, in log space to survive seven small factors.
        let mut weights: Vec<(&[&'static str; 7], f64, f64)> = Vec::with_capacity(patterns.len());
        for (pattern, count) in &patterns {
            let mut log_m = lambda.ln();
            let mut log_u = (1.0 - lambda).ln();
            for (fi, field) in &active {
                let level = pattern[*fi];
                if level == "missing" {
                    continue;
                }
                log_m += prob(&m, field, level).ln();
                log_u += prob(u, field, level).ln();
            }
            weights.push((pattern, *count, 1.0 / (1.0 + (log_u - log_m).exp())));
        }
        // M: m from the pairs weighted by their match probability.
        let total: f64 = weights.iter().map(|(_, c, _)| c).sum();
        let matched: f64 = weights.iter().map(|(_, c, p)| c * p).sum();
        lambda = (matched / total).clamp(1e-6, 1.0 - 1e-6);
        let mut next = Table::new();
        for (fi, field) in &active {
            let names: Vec<String> = m
                .get(*field)
                .map(|l| l.keys().cloned().collect())
                .unwrap_or_default();
            let mut counts: BTreeMap<&str, f64> = BTreeMap::new();
            for (pattern, count, p) in &weights {
                let level = pattern[*fi];
                if level != "missing" {
                    *counts.entry(level).or_default() += count * p;
                }
            }
            next.insert(field.to_string(), distribution(&names, &counts, 0.01));
        }
        let change = next
            .iter()
            .flat_map(|(f, ls)| ls.iter().map(move |(l, v)| (f, l, *v)))
            .map(|(f, l, v)| (v - prob(&m, f, l)).abs())
            .fold(0.0, f64::max);
        m = next;
        if change < options.tolerance {
            converged = true;
            break;
        }
    }
    (m, lambda, iterations, converged)
}

/// Estimate u from random pairs and m by EM over each group of candidate pairs with u fixed,
/// starting from `start`'s m. A field's m is the average of the groups that learn it,
/// weighted by each group's estimated number of matching pairs; a field no group learns keeps
/// its starting m. Returns the new parameters (prior and thresholds kept) and the report.
pub fn train(
    random: &[Comparison],
    groups: &[CandidateGroup],
    start: &MatchParameters,
    options: TrainingOptions,
) -> (MatchParameters, TrainingReport) {
    let u = estimate_u(random, start);
    let start_m: Table = start
        .fields
        .iter()
        .map(|(f, ls)| {
            (
                f.clone(),
                ls.iter().map(|(l, p)| (l.clone(), p.m)).collect(),
            )
        })
        .collect();
    let mut sums: Table = Table::new();
    let mut mass: BTreeMap<String, f64> = BTreeMap::new();
    let (mut iterations, mut converged, mut matched, mut pairs) = (0, true, 0.0, 0usize);
    for group in groups.iter().filter(|g| !g.comparisons.is_empty()) {
        let (m, lambda, it, conv) = em(group, &start_m, &u, options);
        iterations = iterations.max(it);
        converged &= conv;
        let n = group.comparisons.len();
        pairs += n;
        let weight = lambda * n as f64;
        matched += weight;
        for (field, levels) in m {
            *mass.entry(field.clone()).or_default() += weight;
            let row = sums.entry(field).or_default();
            for (level, p) in levels {
                *row.entry(level).or_default() += p * weight;
            }
        }
    }
    let mut params = start.clone();
    for (field, ls) in params.fields.iter_mut() {
        let learned = mass.get(field).copied().filter(|w| *w > 0.0);
        for (level, p) in ls.iter_mut() {
            let m = match learned {
                Some(w) => (prob(&sums, field, level) / w).max(FLOOR),
                None => p.m,
            };
            *p = LevelProbabilities {
                m: m.min(1.0),
                u: prob(&u, field, level).min(1.0),
            };
        }
    }
    (
        params,
        TrainingReport {
            random_pairs: random.len(),
            candidate_pairs: pairs,
            iterations,
            converged,
            candidate_match_share: if pairs == 0 {
                0.0
            } else {
                matched / pairs as f64
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{
        AddressLevel, BirthDateLevel, CompanyLevel, EmailLevel, FamilyNameLevel, GivenNameLevel,
        PhoneLevel,
    };

    /// A deterministic pseudo-random stream for synthetic data.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn comparison(same: bool, r: &mut Rng) -> Comparison {
        // Same person: names agree 90%, emails 70%. Different: names agree 2%, emails never.
        let agree = |p: f64, r: &mut Rng| r.next() < p;
        let (pn, pe) = if same { (0.9, 0.7) } else { (0.02, 0.0) };
        Comparison {
            given_name: if agree(pn, r) {
                GivenNameLevel::Exact
            } else {
                GivenNameLevel::Disagree
            },
            family_name: if agree(pn, r) {
                FamilyNameLevel::Exact
            } else {
                FamilyNameLevel::Disagree
            },
            birth_date: BirthDateLevel::Missing,
            address: AddressLevel::Missing,
            email: if agree(pe, r) {
                EmailLevel::Exact
            } else {
                EmailLevel::Disagree
            },
            phone: PhoneLevel::Missing,
            company: CompanyLevel::Missing,
            family_name_terms: Vec::new(),
        }
    }

    #[test]
    fn em_recovers_m_and_u_from_synthetic_pairs() {
        let mut r = Rng(7);
        let random: Vec<Comparison> = (0..20_000).map(|_| comparison(false, &mut r)).collect();
        // Candidates: 30% true matches.
        let candidates: Vec<Comparison> = (0..20_000)
            .map(|i| comparison(i % 10 < 3, &mut r))
            .collect();
        let (p, report) = train(
            &random,
            &[CandidateGroup {
                conditioned: Vec::new(),
                comparisons: candidates,
            }],
            &MatchParameters::default(),
            TrainingOptions::default(),
        );
        assert!(p.validate().is_ok(), "{:?}", p.validate());
        let m = |f: &str, l: &str| p.level(f, l).unwrap().m;
        let u = |f: &str, l: &str| p.level(f, l).unwrap().u;
        assert!(
            (m("given_name", "exact") - 0.9).abs() < 0.03,
            "{}",
            m("given_name", "exact")
        );
        assert!(
            (m("email", "exact") - 0.7).abs() < 0.03,
            "{}",
            m("email", "exact")
        );
        assert!((u("given_name", "exact") - 0.02).abs() < 0.005);
        assert!(
            u("email", "exact") < 1e-3,
            "never seen by chance: rare, not zero"
        );
        assert!(
            (report.candidate_match_share - 0.3).abs() < 0.03,
            "{report:?}"
        );
        assert!(report.converged, "{report:?}");
    }

    #[test]
    fn conditioned_fields_are_learned_from_other_groups_only() {
        let mut r = Rng(11);
        let random: Vec<Comparison> = (0..20_000).map(|_| comparison(false, &mut r)).collect();
        // Pairs found through an email key all agree on email: that group must not teach
        // email's m (it would come out near 1).
        let by_email: Vec<Comparison> = (0..5_000)
            .map(|_| {
                let mut c = comparison(true, &mut r);
                c.email = EmailLevel::Exact;
                c
            })
            .collect();
        let by_name: Vec<Comparison> = (0..20_000)
            .map(|i| comparison(i % 10 < 3, &mut r))
            .collect();
        let (p, _) = train(
            &random,
            &[
                CandidateGroup {
                    conditioned: vec!["email".into()],
                    comparisons: by_email,
                },
                CandidateGroup {
                    conditioned: vec![],
                    comparisons: by_name,
                },
            ],
            &MatchParameters::default(),
            TrainingOptions::default(),
        );
        let m = p.level("email", "exact").unwrap().m;
        assert!((m - 0.7).abs() < 0.05, "{m}");
    }

    #[test]
    fn no_candidates_keeps_the_starting_m() {
        let start = MatchParameters::default();
        let (p, report) = train(&[], &[], &start, TrainingOptions::default());
        assert_eq!(report.candidate_pairs, 0);
        assert_eq!(report.iterations, 0);
        assert_eq!(
            p.level("email", "exact").unwrap().m,
            start.level("email", "exact").unwrap().m
        );
        assert!(p.validate().is_ok());
    }
}
