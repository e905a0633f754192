//! Fellegi–Sunter scoring: turn the per-field comparison levels of two records ([`compare`]) into
//! a match weight, a probability and a band (link, possible, no-link), with every field's
//! contribution kept so the decision can be explained.
//!
//! For each field the observed level has an m-probability (how often two records *of the same
//! person* land on that level) and a u-probability (how often two records *of different people*
//! do). The field's weight is the log2 Bayes factor `log2(m / u)`; a `missing` level carries no
//! evidence and weighs 0. The prior `log2(λ / (1 − λ))` is its own contribution, so the total is
//! the log2 posterior odds and `probability = 2^w / (1 + 2^w)`.
//!
//! Agreement on a family name is worth more when the name is rare: with a [`TermFrequency`]
//! table, an exact family-name agreement uses the name's own frequency as its u-probability
//! (never below a floor), so "Smith" = "Smith" counts less than "Oyelaran" = "Oyelaran".
//!
//! Pure and deterministic: no IO, no clock, contributions in a fixed order and summed in that
//! order, and `score(compare_records(a, b)) == score(compare_records(b, a))` bit for bit.
//!
//! [`compare`]: crate::compare

use std::collections::BTreeMap;

use onetruth_model::{Attributes, Identifier, IdentifierKind};
use serde::{Deserialize, Serialize};

use crate::RecordView;
use crate::compare::{
    AddressLevel, BirthDateLevel, CompanyLevel, EmailLevel, FamilyNameLevel, GivenNameLevel, Level,
    NameSpellings, PersonName, PhoneLevel, PreparedAddress, PreparedEmail, best_pair,
    birth_date_digits, compare_birth_date_digits, compare_normalized_company, compare_phone_digits,
    compare_prepared_address, compare_prepared_email, compare_prepared_names, normalize_company,
    phone_digits,
};

/// The parameter format version this code reads and writes. Bump it when the meaning of a
/// field or level changes, so stored parameters trained for the old meaning are refused rather
/// than silently misread.
pub const PARAMETERS_VERSION: u32 = 1;

/// The field names the scorer weighs, in contribution order (after `prior`). They are the
/// comparators' [`Level::FIELD`] names, so parameters, comparisons and explanations share keys.
pub const FIELDS: [&str; 7] = [
    GivenNameLevel::FIELD,
    FamilyNameLevel::FIELD,
    BirthDateLevel::FIELD,
    AddressLevel::FIELD,
    EmailLevel::FIELD,
    PhoneLevel::FIELD,
    CompanyLevel::FIELD,
];

/// The name of the prior's contribution in a [`MatchScore`].
pub const PRIOR: &str = "prior";

/// The m- and u-probabilities of one comparison level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelProbabilities {
    /// P(level | the two records are the same person).
    pub m: f64,
    /// P(level | the two records are different people).
    pub u: f64,
}

impl LevelProbabilities {
    /// The level's weight, `log2(m / u)`.
    pub fn weight(self) -> f64 {
        (self.m / self.u).log2()
    }
}

/// Fellegi–Sunter parameters, stored as versioned JSON. Resolution reads the active set;
/// `onetruth train` will write new ones. Call [`MatchParameters::validate`] before use:
/// [`score`] does not re-check them (a level absent from `fields` weighs 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchParameters {
    /// Format version; must equal [`PARAMETERS_VERSION`].
    pub version: u32,
    /// λ: the probability that two records drawn at random are the same person.
    pub prior_match_probability: f64,
    /// Total weight (log2 posterior odds, prior included) at or above which a pair is linked.
    pub link_threshold: f64,
    /// Total weight at or above which an unlinked pair is kept for review.
    pub possible_threshold: f64,
    /// The smallest u-probability a term-frequency lookup may set for an exact family-name
    /// agreement, so a name seen once in a small store cannot outweigh everything else.
    pub term_frequency_u_floor: f64,
    /// Field name → level name → m and u, for every level except `missing` (which weighs 0 by
    /// definition, so a value for it could only mislead).
    pub fields: BTreeMap<String, BTreeMap<String, LevelProbabilities>>,
    /// Normalized family name → share of records carrying it, for the term-frequency
    /// adjustment of an exact family-name agreement (`train` fills it from the store; empty:
    /// no adjustment). Fixed with the parameter version, so scores do not drift as records
    /// arrive.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub term_frequencies: BTreeMap<String, f64>,
}

/// `(level, m, u)` rows for one field, in the field's level order.
type Rows<'a> = &'a [(&'a str, f64, f64)];

fn field_table(rows: Rows<'_>) -> BTreeMap<String, LevelProbabilities> {
    rows.iter()
        .map(|&(level, m, u)| (level.to_string(), LevelProbabilities { m, u }))
        .collect()
}

impl Default for MatchParameters {
    /// Shipped defaults for customer data, before any training. Within each field the m's sum to
    /// 1 and so (to rounding) do the u's: they are distributions over the non-missing levels.
    ///
    /// The u's are what random pairs of different people show in a store of about 10⁵–10⁶
    /// customers; the m's are what the same person shows across CRM, billing and helpdesk
    /// systems, where typos, nicknames, moves and several emails and phones are common.
    fn default() -> Self {
        let mut fields = BTreeMap::new();
        fields.insert(
            GivenNameLevel::FIELD.to_string(),
            field_table(&[
                // A common first name is shared by ~2% of random pairs.
                ("exact", 0.85, 0.02),
                // Swaps are rare either way, but almost never happen by chance; the family
                // field's `swapped` adds the rest of the swap's weight.
                ("swapped", 0.01, 0.0002),
                // Bill/William: common for one person across systems, rarer by chance than
                // plain agreement because nickname groups are small.
                ("nickname", 0.04, 0.002),
                // "Mary Ann" / "Mary": one word shared.
                ("partial", 0.02, 0.002),
                // "J" / "John": compatible, weak; ~1/26 of random pairs share an initial,
                // but only a few percent of records carry an initial at all.
                ("initial", 0.02, 0.01),
                // A typo (Jaro–Winkler close): rare by chance.
                ("close", 0.03, 0.004),
                // Loosely similar: barely evidence.
                ("similar", 0.01, 0.012),
                // Different first names: strong evidence against (≈ −5.6 bits), which is what
                // keeps a spouse sharing a mailbox apart.
                ("disagree", 0.02, 0.9498),
            ]),
        );
        fields.insert(
            FamilyNameLevel::FIELD.to_string(),
            field_table(&[
                // ~0.5% of random pairs share a family name (before term-frequency adjustment,
                // which replaces this u with the name's own frequency).
                ("exact", 0.9, 0.005),
                // Together with given `swapped` a swap weighs about as much as two exact names.
                ("swapped", 0.01, 0.0001),
                // Double-barrelled names: "Garcia Lopez" / "Garcia".
                ("partial", 0.02, 0.001),
                ("initial", 0.005, 0.003),
                ("close", 0.03, 0.001),
                ("similar", 0.01, 0.005),
                // Marriage changes family names, so disagreement is less damning than for
                // given names (m = 2.5%).
                ("disagree", 0.025, 0.985),
            ]),
        );
        fields.insert(
            BirthDateLevel::FIELD.to_string(),
            field_table(&[
                // 1/(365 × ~60 years) ≈ 5e-5, raised for 1 January and other placeholder dates.
                ("exact", 0.9, 0.0003),
                // One wrong digit: there are ~30 plausible one-digit variants of a date (most
                // in the year), so ~1e-3 of random pairs land here, far more than on `exact`.
                ("typo", 0.03, 0.001),
                // US vs European order; only possible when the day is ≤ 12.
                ("day_month_swapped", 0.01, 0.00005),
                // Same year only: ~1/60 of random pairs; hardly evidence.
                ("same_year", 0.02, 0.017),
                // A different birth date is strong evidence of different people.
                ("disagree", 0.04, 0.98165),
            ]),
        );
        fields.insert(
            AddressLevel::FIELD.to_string(),
            field_table(&[
                // Households share addresses, so u is well above 1/N.
                ("exact", 0.6, 0.0005),
                // Same building, street spelled differently or flat missing.
                ("same_house_number_postal_code", 0.1, 0.001),
                ("same_postal_code", 0.05, 0.01),
                ("same_city", 0.05, 0.03),
                // People move, and billing addresses are not home addresses: a fifth of a
                // person's record pairs show different addresses.
                ("disagree", 0.2, 0.9585),
            ]),
        );
        fields.insert(
            EmailLevel::FIELD.to_string(),
            field_table(&[
                // A shared mailbox is rare between different people (households, test values);
                // placeholders never get here because only linkable identifiers are compared.
                ("exact", 0.7, 1e-6),
                // Gmail dots and +tags: the same mailbox written another way.
                ("same_mailbox", 0.02, 2e-6),
                // "john.smith@gmail" / "john.smith@acme": often the same person, but local
                // parts are made of names, so two people with the same name share them far more
                // often than random pairs do: weak evidence on top of the names.
                ("same_local_part", 0.02, 1e-3),
                ("close_local_part", 0.01, 2e-3),
                // People have work and personal addresses, and each system holds whichever the
                // customer gave it: a different email is weak evidence.
                ("disagree", 0.25, 0.996997),
            ]),
        );
        fields.insert(
            PhoneLevel::FIELD.to_string(),
            field_table(&[
                // Phones are shared more than emails (landlines, switchboards), so u is higher
                // and m lower (numbers change, mobile vs landline).
                ("exact", 0.7, 1e-5),
                // Same subscriber number, different prefix: mostly formatting.
                ("same_last_7", 0.05, 1e-4),
                ("disagree", 0.25, 0.99989),
            ]),
        );
        fields.insert(
            CompanyLevel::FIELD.to_string(),
            field_table(&[
                // Big employers make company agreement common by chance.
                ("exact", 0.6, 0.01),
                ("similar", 0.15, 0.02),
                // People change jobs; B2B systems record different legal entities.
                ("disagree", 0.25, 0.97),
            ]),
        );
        MatchParameters {
            version: PARAMETERS_VERSION,
            // One pair in 10⁴: low enough that a full name alone (≈ 12.9 bits) stays below
            // even `possible`, high enough that one verified email (≈ 19.8 bits) with nothing
            // against it links.
            prior_match_probability: 1e-4,
            // ≈ 98.5% match probability: an exact email alone (≈ 6.5) links, a phone alone
            // (≈ 3.0) does not, a household email with different given name and birth date
            // (≈ 3.8, so `possible`) does not.
            link_threshold: 6.0,
            // ≈ 80%: worth a curator's look, not worth a merge.
            possible_threshold: 2.0,
            // A name held by 1 in 10⁴ records is already rare; rarer estimates are noise.
            term_frequency_u_floor: 1e-4,
            fields,
            term_frequencies: BTreeMap::new(),
        }
    }
}

/// The non-missing level names of every field, in [`FIELDS`] order.
fn expected_levels() -> [(&'static str, Vec<&'static str>); 7] {
    fn names<L: Level>() -> (&'static str, Vec<&'static str>) {
        let levels = L::all().iter().filter(|l| !l.is_missing());
        (L::FIELD, levels.map(|l| l.name()).collect())
    }
    [
        names::<GivenNameLevel>(),
        names::<FamilyNameLevel>(),
        names::<BirthDateLevel>(),
        names::<AddressLevel>(),
        names::<EmailLevel>(),
        names::<PhoneLevel>(),
        names::<CompanyLevel>(),
    ]
}

/// A probability in (0, 1]: NaN fails every comparison, so it is rejected too.
fn is_probability(p: f64) -> bool {
    p > 0.0 && p <= 1.0
}

impl MatchParameters {
    /// Check the parameters, returning every problem at once: the version, λ in (0, 1), finite
    /// thresholds with `possible_threshold ≤ link_threshold`, a floor in (0, 1], and for every
    /// field exactly its non-missing levels, each with 0 < m, u ≤ 1. Unknown fields and levels
    /// are errors, so a typo in a hand-edited file cannot silently drop a level to weight 0.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if self.version != PARAMETERS_VERSION {
            errors.push(format!(
                "version {} is not supported (expected {PARAMETERS_VERSION})",
                self.version
            ));
        }
        let lambda = self.prior_match_probability;
        if !(lambda > 0.0 && lambda < 1.0) {
            errors.push(format!(
                "prior_match_probability must be in (0, 1), got {lambda}"
            ));
        }
        if !self.link_threshold.is_finite() || !self.possible_threshold.is_finite() {
            errors.push("link_threshold and possible_threshold must be finite".to_string());
        } else if self.possible_threshold > self.link_threshold {
            errors.push(format!(
                "possible_threshold {} is above link_threshold {}",
                self.possible_threshold, self.link_threshold
            ));
        }
        if !is_probability(self.term_frequency_u_floor) {
            errors.push(format!(
                "term_frequency_u_floor must be in (0, 1], got {}",
                self.term_frequency_u_floor
            ));
        }
        let expected = expected_levels();
        for field in self.fields.keys() {
            if !FIELDS.contains(&field.as_str()) {
                errors.push(format!("unknown field `{field}`"));
            }
        }
        for (field, levels) in &expected {
            let Some(table) = self.fields.get(*field) else {
                errors.push(format!("field `{field}` is missing"));
                continue;
            };
            for level in levels {
                match table.get(*level) {
                    None => errors.push(format!("`{field}.{level}` is missing")),
                    Some(p) => {
                        for (name, v) in [("m", p.m), ("u", p.u)] {
                            if !is_probability(v) {
                                errors.push(format!(
                                    "`{field}.{level}.{name}` must be in (0, 1], got {v}"
                                ));
                            }
                        }
                    }
                }
            }
            for level in table.keys() {
                if !levels.contains(&level.as_str()) {
                    errors.push(format!(
                        "unknown level `{field}.{level}` (`missing` always weighs 0)"
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The prior's weight, `log2(λ / (1 − λ))`.
    pub fn prior_weight(&self) -> f64 {
        let lambda = self.prior_match_probability;
        (lambda / (1.0 - lambda)).log2()
    }

    /// The band of a total weight.
    pub fn band(&self, total_weight: f64) -> Band {
        if total_weight >= self.link_threshold {
            Band::Link
        } else if total_weight >= self.possible_threshold {
            Band::Possible
        } else {
            Band::NoLink
        }
    }

    /// The m and u of one level, if present.
    pub fn level(&self, field: &str, level: &str) -> Option<LevelProbabilities> {
        self.fields.get(field)?.get(level).copied()
    }
}

/// How often a value occurs among stored records, for term-frequency adjustment.
pub trait TermFrequency {
    /// The share of records (0..=1) whose family name, normalized by
    /// [`normalize_name`], is `normalized`; `None` when unknown,
    /// which leaves the level's own u in place.
    fn family_name_frequency(&self, normalized: &str) -> Option<f64>;
}

/// No term-frequency table: every agreement weighs its level's average.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTermFrequency;

impl TermFrequency for NoTermFrequency {
    fn family_name_frequency(&self, _normalized: &str) -> Option<f64> {
        None
    }
}

/// A table of normalized family name → share of records, e.g. built from the store's counts.
impl TermFrequency for BTreeMap<String, f64> {
    fn family_name_frequency(&self, normalized: &str) -> Option<f64> {
        self.get(normalized).copied()
    }
}

/// The comparison levels of two records, one per field: the "comparison vector" the scorer
/// weighs. Symmetric: `compare_records(a, b) == compare_records(b, a)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    /// Given name level.
    pub given_name: GivenNameLevel,
    /// Family name level.
    pub family_name: FamilyNameLevel,
    /// Birth date level.
    pub birth_date: BirthDateLevel,
    /// Best level over every pair of addresses.
    pub address: AddressLevel,
    /// Best level over every pair of linkable emails.
    pub email: EmailLevel,
    /// Best level over every pair of linkable phones.
    pub phone: PhoneLevel,
    /// Company level.
    pub company: CompanyLevel,
    /// When the family names agree exactly: both sides' normalized family names, sorted and
    /// deduplicated ("mueller" and "muller" can both be there), for the term-frequency lookup.
    /// Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub family_name_terms: Vec<String>,
}

impl Comparison {
    /// `(field, level name)` for every field, in [`FIELDS`] order.
    pub fn levels(&self) -> [(&'static str, &'static str); 7] {
        fn pair<L: Level>(l: L) -> (&'static str, &'static str) {
            (L::FIELD, l.name())
        }
        [
            pair(self.given_name),
            pair(self.family_name),
            pair(self.birth_date),
            pair(self.address),
            pair(self.email),
            pair(self.phone),
            pair(self.company),
        ]
    }
}

/// A record prepared for comparison: every field normalized and parsed once, so scoring a
/// pair is only comparisons. Placeholders and generic values (`linkable: false`) are left out
/// of emails and phones: agreeing on one is no evidence.
#[derive(Debug, Clone)]
pub struct Features {
    name: NameSpellings,
    birth_date: Option<[u8; 8]>,
    // Boxed slices, not vectors: no spare capacity, and 8 bytes less each, per record.
    addresses: Box<[PreparedAddress]>,
    emails: Box<[PreparedEmail]>,
    phones: Box<[Box<[u8]>]>,
    company: Option<Box<str>>,
    /// External and custom identifiers and parked values, which most records lack: boxed, so
    /// a record without them spends 8 bytes on them instead of 48 (a million are held).
    rare: Option<Box<RareFeatures>>,
}

#[derive(Debug, Clone, Default)]
struct RareFeatures {
    /// Linkable external and custom identifiers, `(kind, value)`, sorted.
    identifiers: Vec<(String, String)>,
    /// Values set aside because they are generic ([`Features::set_generic`]).
    parked: Vec<Parked>,
}

#[derive(Debug, Clone)]
enum Parked {
    Email(PreparedEmail),
    Phone(Box<[u8]>),
    Identifier((String, String)),
}

impl Features {
    pub fn of(r: &RecordView) -> Features {
        Features::of_parts(
            &r.identifiers,
            &r.attributes,
            &PersonName::from_attributes(&r.attributes),
        )
    }

    /// [`Features::of`] from a record's parts, with its name already read.
    pub fn of_parts(ids: &[Identifier], a: &Attributes, name: &PersonName) -> Features {
        Features::build(ids, a, name, true)
    }

    /// `scoring`: also the fields only scoring reads.
    fn build(ids: &[Identifier], a: &Attributes, name: &PersonName, scoring: bool) -> Features {
        let mut identifiers: Vec<(String, String)> = ids
            .iter()
            .filter(|i| {
                i.linkable && matches!(i.kind, IdentifierKind::External | IdentifierKind::Custom(_))
            })
            .map(|i| (i.kind.as_str().to_string(), i.value.clone()))
            .collect();
        identifiers.sort();
        identifiers.dedup();
        Features {
            name: NameSpellings::new(name),
            birth_date: a.birth_date.as_deref().and_then(birth_date_digits),
            addresses: match scoring {
                true => a.addresses.iter().map(PreparedAddress::new).collect(),
                false => Box::default(),
            },
            emails: ids
                .iter()
                .filter(|i| i.linkable && i.kind == IdentifierKind::Email)
                .filter_map(|i| PreparedEmail::new(&i.value))
                .collect(),
            phones: ids
                .iter()
                .filter(|i| i.linkable && i.kind == IdentifierKind::Phone)
                .filter_map(|i| phone_digits(&i.value))
                .map(Vec::into_boxed_slice)
                .collect(),
            company: a
                .company
                .as_deref()
                .filter(|_| scoring)
                .map(normalize_company)
                .filter(|c| !c.is_empty())
                .map(Into::into),
            rare: (!identifiers.is_empty()).then(|| {
                Box::new(RareFeatures {
                    identifiers,
                    parked: Vec::new(),
                })
            }),
        }
    }

    /// Whether both records hold one linkable identifier value (generic values are parked and
    /// do not count): what a shared identifier blocking key says, checked on the values.
    pub fn shares_identifier(&self, other: &Features) -> bool {
        self.emails
            .iter()
            .any(|a| other.emails.iter().any(|b| a.address() == b.address()))
            || self.phones.iter().any(|a| other.phones.contains(a))
            || match (&self.rare, &other.rare) {
                (Some(a), Some(b)) => a.identifiers.iter().any(|x| b.identifiers.contains(x)),
                _ => false,
            }
    }

    /// What the guards read, without the fields only scoring reads (addresses, company): the
    /// features of a resolver that links by identifiers alone.
    pub fn for_guards(ids: &[Identifier], a: &Attributes, name: &PersonName) -> Features {
        Features::build(ids, a, name, false)
    }

    /// Stop (`generic = true`) or resume comparing one identifier value: a generic value
    /// (a switchboard, a shared inbox) is no evidence. `value` is normalized as stored.
    pub fn set_generic(&mut self, kind: &str, value: &str, generic: bool) {
        if generic {
            let parked = match kind {
                "email" => {
                    let mut v = std::mem::take(&mut self.emails).into_vec();
                    let p = v
                        .iter()
                        .position(|e| e.address() == value)
                        .map(|i| Parked::Email(v.remove(i)));
                    self.emails = v.into_boxed_slice();
                    p
                }
                "phone" => {
                    let digits = phone_digits(value).unwrap_or_default();
                    let mut v = std::mem::take(&mut self.phones).into_vec();
                    let p = v
                        .iter()
                        .position(|p| **p == *digits)
                        .map(|i| Parked::Phone(v.remove(i)));
                    self.phones = v.into_boxed_slice();
                    p
                }
                _ => self.rare.as_mut().and_then(|rare| {
                    rare.identifiers
                        .iter()
                        .position(|(k, v)| k == kind && v == value)
                        .map(|i| Parked::Identifier(rare.identifiers.remove(i)))
                }),
            };
            if let Some(p) = parked {
                self.rare.get_or_insert_default().parked.push(p);
            }
        } else {
            let digits = (kind == "phone").then(|| phone_digits(value).unwrap_or_default());
            let Some(rare) = self.rare.as_mut() else {
                return;
            };
            let Some(i) = rare.parked.iter().position(|p| match p {
                Parked::Email(e) => kind == "email" && e.address() == value,
                Parked::Phone(d) => digits.as_deref() == Some(&**d),
                Parked::Identifier((k, v)) => k == kind && v == value,
            }) else {
                return;
            };
            match rare.parked.remove(i) {
                Parked::Email(e) => {
                    let mut v = std::mem::take(&mut self.emails).into_vec();
                    v.push(e);
                    self.emails = v.into_boxed_slice();
                }
                Parked::Phone(d) => {
                    let mut v = std::mem::take(&mut self.phones).into_vec();
                    v.push(d);
                    self.phones = v.into_boxed_slice();
                }
                Parked::Identifier(x) => {
                    let at = rare.identifiers.binary_search(&x).unwrap_or_else(|e| e);
                    rare.identifiers.insert(at, x);
                }
            }
        }
    }

    /// The prepared name.
    pub fn name(&self) -> &NameSpellings {
        &self.name
    }

    /// The birth date's digits, when it parses.
    pub fn birth_date(&self) -> Option<&[u8; 8]> {
        self.birth_date.as_ref()
    }

    /// Compared emails (generic ones excluded).
    pub fn emails(&self) -> impl Iterator<Item = &str> {
        self.emails.iter().map(PreparedEmail::address)
    }

    /// Compared phones as digits (generic ones excluded).
    pub fn phones(&self) -> &[Box<[u8]>] {
        &self.phones
    }

    /// Compared external and custom identifiers, `(kind, value)`, sorted.
    pub fn identifiers(&self) -> &[(String, String)] {
        self.rare.as_deref().map_or(&[], |r| &r.identifiers)
    }

    /// Whether the two share a linkable external or custom identifier.
    pub fn share_identifier(&self, other: &Features) -> bool {
        let theirs = other.identifiers();
        self.identifiers()
            .iter()
            .any(|x| theirs.binary_search(x).is_ok())
    }
}

/// Compare two records field by field.
pub fn compare_records(a: &RecordView, b: &RecordView) -> Comparison {
    compare_features(&Features::of(a), &Features::of(b))
}

/// [`compare_records`] on prepared records.
pub fn compare_features(a: &Features, b: &Features) -> Comparison {
    let mut cmp = compare_levels(a, b);
    if cmp.family_name == FamilyNameLevel::Exact {
        cmp.family_name_terms = family_terms(a, b).map(str::to_string).collect();
        cmp.family_name_terms.sort();
        cmp.family_name_terms.dedup();
    }
    cmp
}

/// The family names whose frequency adjusts an exact family-name agreement (possibly twice
/// the same).
fn family_terms<'f>(a: &'f Features, b: &'f Features) -> impl Iterator<Item = &'f str> {
    [a.name.family(), b.name.family()]
        .into_iter()
        .flatten()
        .filter(|f| !f.is_empty())
}

/// [`compare_features`] without the family-name terms (no allocation: scoring runs this for
/// every candidate pair).
fn compare_levels(a: &Features, b: &Features) -> Comparison {
    let names = compare_prepared_names(&a.name, &b.name);
    Comparison {
        given_name: names.given,
        family_name: names.family,
        birth_date: match (&a.birth_date, &b.birth_date) {
            (Some(x), Some(y)) => compare_birth_date_digits(x, y),
            _ => BirthDateLevel::Missing,
        },
        address: best_pair(
            &a.addresses,
            &b.addresses,
            AddressLevel::Missing,
            compare_prepared_address,
        ),
        email: best_pair(
            &a.emails,
            &b.emails,
            EmailLevel::Missing,
            compare_prepared_email,
        ),
        phone: best_pair(&a.phones, &b.phones, PhoneLevel::Missing, |x, y| {
            compare_phone_digits(x, y)
        }),
        company: match (&a.company, &b.company) {
            (Some(x), Some(y)) => compare_normalized_company(x, y),
            _ => CompanyLevel::Missing,
        },
        family_name_terms: Vec::new(),
    }
}

/// The decision band of a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// At or above `link_threshold`: the records are merged.
    Link,
    /// At or above `possible_threshold`: stored for review, not merged.
    Possible,
    /// Below `possible_threshold`.
    NoLink,
}

/// One term of a match weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// The field name, or [`PRIOR`].
    pub field: String,
    /// The observed level name (`missing` for an absent value; empty for the prior).
    pub level: String,
    /// What this term adds to the total, term-frequency adjustment included.
    pub weight: f64,
    /// The part of `weight` due to term frequency: positive for a rare value, negative for a
    /// common one, 0 when no adjustment applied.
    pub tf_adjustment: f64,
}

/// The score of one pair, with its explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchScore {
    /// log2 posterior odds that the records are the same person: the sum of `contributions`.
    pub total_weight: f64,
    /// `2^w / (1 + 2^w)` of the total weight.
    pub probability: f64,
    /// The decision band.
    pub band: Band,
    /// The prior first, then one term per field in [`FIELDS`] order, missing ones at 0.
    pub contributions: Vec<Contribution>,
}

/// Score a comparison. `params` should have passed [`MatchParameters::validate`]; a level absent
/// from them weighs 0 rather than panicking.
pub fn score(cmp: &Comparison, params: &MatchParameters, tf: &dyn TermFrequency) -> MatchScore {
    let mut contributions = Vec::with_capacity(FIELDS.len() + 1);
    contributions.push(Contribution {
        field: PRIOR.to_string(),
        level: String::new(),
        weight: params.prior_weight(),
        tf_adjustment: 0.0,
    });
    for (field, level) in cmp.levels() {
        let (weight, tf_adjustment) = match params.level(field, level) {
            _ if level == "missing" => (0.0, 0.0),
            None => (0.0, 0.0),
            Some(p) => {
                let base = p.weight();
                let adjusted = (field == FamilyNameLevel::FIELD
                    && cmp.family_name == FamilyNameLevel::Exact)
                    .then(|| family_tf_u(cmp, params, tf))
                    .flatten()
                    .map(|u| (p.m / u).log2());
                match adjusted {
                    Some(w) => (w, w - base),
                    None => (base, 0.0),
                }
            }
        };
        contributions.push(Contribution {
            field: field.to_string(),
            level: level.to_string(),
            weight,
            tf_adjustment,
        });
    }
    // Summed in contribution order, so the total is reproducible from the explanation.
    let total_weight = contributions.iter().map(|c| c.weight).sum::<f64>();
    let band = params.band(total_weight);
    MatchScore {
        total_weight,
        // 1 / (1 + 2^-w) equals 2^w / (1 + 2^w) and does not overflow to NaN for large w.
        probability: 1.0 / (1.0 + (-total_weight).exp2()),
        band,
        contributions,
    }
}

/// Every level's weight, precomputed from [`MatchParameters`] for the resolver's hot path:
/// [`WeightTable::total`] gives exactly (bit for bit) the `total_weight` of [`score_features`]
/// without building the per-field explanation.
#[derive(Debug, Clone)]
pub struct WeightTable {
    prior: f64,
    /// Per field in [`FIELDS`] order, the weight of each level in `Level::all()` order.
    fields: [Vec<f64>; 7],
    /// m of an exact family-name agreement and the u floor, for the term-frequency
    /// adjustment (looked up once, not per pair).
    family_exact_m: Option<f64>,
    tf_u_floor: f64,
}

fn level_index<L: Level>(l: L) -> usize {
    L::all().iter().position(|x| *x == l).unwrap_or(0)
}

impl WeightTable {
    pub fn new(params: &MatchParameters) -> WeightTable {
        fn row<L: Level>(params: &MatchParameters) -> Vec<f64> {
            L::all()
                .iter()
                .map(|l| match params.level(L::FIELD, l.name()) {
                    _ if l.is_missing() => 0.0,
                    Some(p) => p.weight(),
                    None => 0.0,
                })
                .collect()
        }
        WeightTable {
            family_exact_m: params.level(FamilyNameLevel::FIELD, "exact").map(|p| p.m),
            tf_u_floor: params.term_frequency_u_floor,
            prior: params.prior_weight(),
            fields: [
                row::<GivenNameLevel>(params),
                row::<FamilyNameLevel>(params),
                row::<BirthDateLevel>(params),
                row::<AddressLevel>(params),
                row::<EmailLevel>(params),
                row::<PhoneLevel>(params),
                row::<CompanyLevel>(params),
            ],
        }
    }

    /// The total weight of two prepared records, as [`score_features`] computes it with the
    /// parameters the table was built from.
    pub fn total(
        &self,
        a: &Features,
        b: &Features,
        tf: &dyn TermFrequency,
        identifier_weight: f64,
    ) -> f64 {
        let cmp = compare_levels(a, b);
        let family = match cmp.family_name {
            FamilyNameLevel::Exact => tf_u(family_terms(a, b), self.tf_u_floor, tf)
                .and_then(|u| self.family_exact_m.map(|m| (m / u).log2()))
                .unwrap_or(self.fields[1][level_index(cmp.family_name)]),
            l => self.fields[1][level_index(l)],
        };
        // Summed in the order `score` sums its contributions, so the result is identical.
        let mut total = self.prior;
        for w in [
            self.fields[0][level_index(cmp.given_name)],
            family,
            self.fields[2][level_index(cmp.birth_date)],
            self.fields[3][level_index(cmp.address)],
            self.fields[4][level_index(cmp.email)],
            self.fields[5][level_index(cmp.phone)],
            self.fields[6][level_index(cmp.company)],
        ] {
            total += w;
        }
        if identifier_weight != 0.0 && a.share_identifier(b) {
            // `score_features` re-sums all contributions with the extra term last.
            total += identifier_weight;
        }
        total
    }
}

/// The field name of the shared-identifier term [`score_records`] adds.
pub const SHARED_IDENTIFIER: &str = "shared_identifier";

/// Score two records: [`compare_records`], [`score`], plus one more term when they share a
/// linkable external or custom identifier (`crm:123` in a billing record names the CRM
/// contact): `identifier_weight` bits, so such a pair links unless the names and birth date
/// clearly disagree or a guard vetoes it. Symmetric, like its parts.
pub fn score_records(
    a: &RecordView,
    b: &RecordView,
    params: &MatchParameters,
    tf: &dyn TermFrequency,
    identifier_weight: f64,
) -> MatchScore {
    score_features(
        &Features::of(a),
        &Features::of(b),
        params,
        tf,
        identifier_weight,
    )
}

/// [`score_records`] on prepared records.
pub fn score_features(
    a: &Features,
    b: &Features,
    params: &MatchParameters,
    tf: &dyn TermFrequency,
    identifier_weight: f64,
) -> MatchScore {
    let mut s = score(&compare_features(a, b), params, tf);
    if identifier_weight != 0.0 && a.share_identifier(b) {
        s.contributions.push(Contribution {
            field: SHARED_IDENTIFIER.to_string(),
            level: "exact".to_string(),
            weight: identifier_weight,
            tf_adjustment: 0.0,
        });
        s.total_weight = s.contributions.iter().map(|c| c.weight).sum::<f64>();
        s.probability = 1.0 / (1.0 + (-s.total_weight).exp2());
        s.band = params.band(s.total_weight);
    }
    s
}

/// The u-probability for an exact family-name agreement from term frequencies: the highest
/// frequency among the agreeing spellings (the conservative choice, and symmetric), clamped to
/// `[term_frequency_u_floor, 1]`. `None` when no spelling is in the table.
fn family_tf_u(cmp: &Comparison, params: &MatchParameters, tf: &dyn TermFrequency) -> Option<f64> {
    tf_u(
        cmp.family_name_terms.iter().map(String::as_str),
        params.term_frequency_u_floor,
        tf,
    )
}

/// The u-probability of agreeing on the rarest-adjusted family name among `terms`: the
/// largest known frequency, floored; `None` when no term has one.
fn tf_u<'t>(
    terms: impl Iterator<Item = &'t str>,
    floor: f64,
    tf: &dyn TermFrequency,
) -> Option<f64> {
    let freq = terms
        .filter_map(|t| tf.family_name_frequency(t))
        .filter(|f| f.is_finite())
        .fold(None, |acc: Option<f64>, f| {
            Some(acc.map_or(f, |a| a.max(f)))
        })?;
    Some(freq.max(floor).min(1.0))
}
