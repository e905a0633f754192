//! Incremental, order-independent clustering of source records into customers.
//!
//! The partition is defined as a pure function of the live records, the parameters, the
//! configuration and the curator overrides — never of arrival order:
//!
//! 1. **Candidates.** Every record has blocking keys ([`blocking_keys`]): each linkable
//!    identifier value, the email local part, the phone's last 7 digits, Soundex(family name) +
//!    birth year, postal code + house number, given initial + family prefix. Two records are
//!    candidates when they share an *active* key: one held by at most
//!    [`ResolverConfig::max_block_size`] records and, for identifier values, not generic.
//! 2. **Edges.** Every candidate pair is scored ([`score_records`]); pairs in the link or
//!    possible band are edges. A value held by records with more than
//!    [`ResolverConfig::generic_value_names`] clearly different given names is *generic*: it is
//!    no longer compared or used as a key (a switchboard, a shared family inbox, `asdf@asdf.com`).
//! 3. **Clusters.** Within each connected component of link edges, edges are taken strongest
//!    first (ties by the records' `(source, source_id)`), and each joins two clusters unless a
//!    guard vetoes it: a curator's never-merge, two values of a unique kind, clearly different
//!    birth dates, too many emails or phones. Curator force-merges join first; detached records
//!    take no links.
//!
//! With [`Matching::Identifiers`] the only keys are linkable identifier values and every
//! candidate pair is a link of weight [`ResolverConfig::identifier_weight`]: deterministic
//! stitching, still with generic values, guards and curator decisions. Nothing is scored.
//!
//! Because a component's clustering depends only on the component, the resolver re-clusters
//! only the components that changed records touch. Customer ids are stable across that: the id
//! of an old customer goes to the part holding most of its records (the oldest id wins a merge,
//! the largest part keeps the id on a split) and parts without one get new ids.
//!
//! The resolver keeps everything in memory (views, keys, edges); the store loads it, feeds
//! changes in, and persists the [`Resolution`] it returns. No IO, no clock.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A fast hasher for the resolver's maps, whose keys are record and customer ids or hashes
/// already: SipHash's protection against chosen keys buys nothing here and cost a tenth of the
/// resolver's time. Multiplicative mixing spreads sequential ids over the table.
#[derive(Default, Clone, Copy)]
struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64);
    }
    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<IntHasher>>;
type HashSet<K> = std::collections::HashSet<K, BuildHasherDefault<IntHasher>>;

use onetruth_model::{Attributes, Identifier, IdentifierKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::RecordView;
use crate::compare::{
    BirthDateLevel, NameSpellings, PersonName, canonical_mailbox, compare_birth_date_digits,
    concat, family_name_key_of_normalized, given_names_disagree, house_number, nickname_groups,
    normalize_name, postal_key,
};
use crate::score::{
    Band, Comparison, Features, MatchParameters, TermFrequency, WeightTable, compare_features,
};

/// A source record's id in the store.
pub type RecordId = i64;

/// Resolution settings (`[resolution]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ResolverConfig {
    /// How candidate pairs become links: scored (the default) or by a shared identifier alone.
    pub matching: Matching,
    /// A blocking key held by more records than this yields no candidates (counted in `stats`
    /// as an overflow); the records still meet through their other keys.
    pub max_block_size: usize,
    /// An identifier value held by records with more than this many clearly different given
    /// names is generic: it stops linking and is listed in `stats`.
    pub generic_value_names: usize,
    /// Identifier kinds a customer holds at most one value of (e.g. a custom `national_id`):
    /// two different values veto a merge.
    pub unique_kinds: Vec<String>,
    /// Two clearly different birth dates (not a one-digit typo or a day/month swap) veto a merge.
    pub unique_birth_date: bool,
    /// Two clearly different given names (not a nickname, initial, typo or swap) veto a merge:
    /// a shared household mailbox plus a shared family name is not one person.
    pub unique_given_name: bool,
    /// A merge that would give a customer more distinct emails than this is refused.
    pub max_emails: usize,
    /// A merge that would give a customer more distinct phones than this is refused.
    pub max_phones: usize,
    /// Weight in bits of a shared external or custom identifier (`crm:123`).
    pub identifier_weight: f64,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            matching: Matching::Probabilistic,
            max_block_size: 25,
            generic_value_names: 3,
            unique_kinds: Vec::new(),
            unique_birth_date: true,
            unique_given_name: true,
            max_emails: 10,
            max_phones: 10,
            identifier_weight: 20.0,
        }
    }
}

/// How the resolver finds and decides links.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Matching {
    /// Candidates from every blocking key, each pair scored field by field (Fellegi–Sunter):
    /// links, possible matches and no-links.
    #[default]
    Probabilistic,
    /// Only records that share a linkable, non-generic identifier value are candidates, and
    /// every such pair is a link: deterministic identity stitching. Guards, generic values and
    /// curator decisions still apply. Cheaper: no scoring and about a third of the keys.
    Identifiers,
}

impl Matching {
    /// The config value: `probabilistic` or `identifiers`.
    pub fn as_str(self) -> &'static str {
        match self {
            Matching::Probabilistic => "probabilistic",
            Matching::Identifiers => "identifiers",
        }
    }

    pub fn parse(s: &str) -> Option<Matching> {
        match s {
            "probabilistic" => Some(Matching::Probabilistic),
            "identifiers" => Some(Matching::Identifiers),
            _ => None,
        }
    }
}

/// A scored pair the resolver keeps: link or possible band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Edge {
    pub other: RecordId,
    pub weight: f64,
    pub band: Band,
    /// The status last handed to the store for this pair (`None`: no stored row yet), so
    /// that re-clustering writes only the pairs whose status changed.
    pub stored: Option<LinkStatus>,
}

/// Why a pair of records is, or is not, inside one customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    /// A link edge that joined two clusters.
    Accepted,
    /// A link edge between records already joined through stronger links.
    Implied,
    /// A curator's force-merge.
    Forced,
    /// A link edge a guard refused.
    Refused(Guard),
    /// A possible-band pair, kept for review, never merged.
    Possible,
}

impl LinkStatus {
    /// Stable name, as stored in the evidence table.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkStatus::Accepted => "accepted",
            LinkStatus::Implied => "implied",
            LinkStatus::Forced => "forced",
            LinkStatus::Refused(g) => g.as_str(),
            LinkStatus::Possible => "possible",
        }
    }

    /// Inverse of [`LinkStatus::as_str`].
    pub fn parse(s: &str) -> Option<LinkStatus> {
        Some(match s {
            "accepted" => LinkStatus::Accepted,
            "implied" => LinkStatus::Implied,
            "forced" => LinkStatus::Forced,
            "possible" => LinkStatus::Possible,
            other => LinkStatus::Refused(Guard::parse(other)?),
        })
    }
}

/// A rule that refuses a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    /// A curator said these records are different people.
    NeverMerge,
    /// A curator detached one of the records.
    Detached,
    /// The clusters hold different values of a unique identifier kind.
    UniqueKind,
    /// The clusters hold clearly different birth dates.
    BirthDate,
    /// The clusters hold clearly different given names.
    GivenName,
    /// The merged customer would hold more than `max_emails` emails.
    MaxEmails,
    /// The merged customer would hold more than `max_phones` phones.
    MaxPhones,
}

impl Guard {
    pub fn as_str(self) -> &'static str {
        match self {
            Guard::NeverMerge => "refused_never_merge",
            Guard::Detached => "refused_detached",
            Guard::UniqueKind => "refused_unique_kind",
            Guard::BirthDate => "refused_birth_date",
            Guard::GivenName => "refused_given_name",
            Guard::MaxEmails => "refused_max_emails",
            Guard::MaxPhones => "refused_max_phones",
        }
    }

    fn parse(s: &str) -> Option<Guard> {
        [
            Guard::NeverMerge,
            Guard::Detached,
            Guard::UniqueKind,
            Guard::BirthDate,
            Guard::GivenName,
            Guard::MaxEmails,
            Guard::MaxPhones,
        ]
        .into_iter()
        .find(|g| g.as_str() == s)
    }
}

/// One pair to persist as evidence (`a < b`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairEvidence {
    pub a: RecordId,
    pub b: RecordId,
    /// The pair's match weight; `None` for a force-merge of records that do not score.
    pub weight: Option<f64>,
    pub status: LinkStatus,
}

/// What happened to one customer id in one resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerChange {
    pub customer: i64,
    /// The id was issued by this resolution.
    pub created: bool,
    /// What the id is now.
    pub status: CustomerStatus,
    /// Old customers whose records this one took in whole or in part (merges).
    pub absorbed: Vec<i64>,
    /// Customers that took some of this one's former records (splits).
    pub split_off: Vec<i64>,
    /// Records that joined or left it, or changed while in it.
    pub records_changed: bool,
}

/// The state of a customer id after a resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum CustomerStatus {
    Active,
    /// Every record went to one other customer: the id is an alias of it.
    MergedInto {
        into: i64,
    },
    /// The records went to several customers, none of which kept this id.
    SplitInto {
        into: Vec<i64>,
    },
    /// No records left.
    Empty,
}

/// A blocking key or identifier value whose state flipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFlip {
    /// A value became generic (`true`) or stopped being generic (`false`).
    Generic {
        kind: String,
        value: String,
        names: usize,
        records: usize,
        generic: bool,
    },
    /// A blocking key crossed `max_block_size` (`true`) or fell back under it.
    Overflow {
        key: String,
        records: usize,
        overflowed: bool,
    },
}

/// The outcome of [`Resolver::resolve`], for the store to persist.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// Records whose customer changed (new records included), with the new customer.
    pub assignments: Vec<(RecordId, i64)>,
    /// Every customer id that changed, sorted by id.
    pub changes: Vec<CustomerChange>,
    /// Records whose stored evidence must be deleted before `evidence` is written: removed,
    /// re-scored or curated records (`evidence` holds every live pair touching them).
    pub rewritten: Vec<RecordId>,
    /// Pairs whose stored row is missing or out of date, to upsert by `(a, b)`. Pairs whose
    /// status did not change are left out: re-clustering a large customer to add one record
    /// rewrites only what moved.
    pub evidence: Vec<PairEvidence>,
    /// Keys and values whose state flipped.
    pub flips: Vec<KeyFlip>,
    /// Candidate pairs scored.
    pub pairs_scored: u64,
}

/// A small set of record ids: one inline, more on the heap. Most blocking keys and most
/// customers hold a single record, and at a million records the saved allocations matter.
#[derive(Debug, Clone)]
enum Members {
    One(RecordId),
    Many(Vec<RecordId>),
}

impl Default for Members {
    fn default() -> Self {
        Members::Many(Vec::new())
    }
}

impl Members {
    fn as_slice(&self) -> &[RecordId] {
        match self {
            Members::One(x) => std::slice::from_ref(x),
            Members::Many(v) => v,
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = RecordId> + '_ {
        self.as_slice().iter().copied()
    }

    /// Add `id` (callers never add one twice).
    fn push(&mut self, id: RecordId) {
        match self {
            Members::Many(v) if v.is_empty() => *self = Members::One(id),
            Members::One(x) => *self = Members::Many(vec![*x, id]),
            Members::Many(v) => v.push(id),
        }
    }

    fn remove(&mut self, id: RecordId) {
        match self {
            Members::One(x) if *x == id => *self = Members::default(),
            Members::One(_) => {}
            Members::Many(v) => {
                v.retain(|m| *m != id);
                if v.len() == 1 {
                    *self = Members::One(v[0]);
                }
            }
        }
    }
}

/// The records holding one blocking key. Most keys are held by one or two records, so the
/// rarely needed parts (given-name counts, labels) live in side maps of [`Resolver`].
struct Block {
    members: Members,
    /// What the key is made of, for training (which fields a pair sharing it agrees on).
    kind: KeyKind,
    is_value: bool,
    overflowed: bool,
    generic: bool,
}

impl Block {
    fn active(&self) -> bool {
        !self.overflowed && !self.generic
    }

    fn flagged(&self) -> bool {
        self.overflowed || self.generic
    }
}

/// A map from dense ids (record ids, customer ids) to values. Store ids are row ids allocated
/// max + 1, so a vector indexed by id finds a value with one memory access where a hash map
/// takes two or three (control bytes, bucket); at a million records every lookup is a cache
/// miss, and the resolver is bound by them. Values are held inline, in fixed chunks of
/// `DENSE_CHUNK` slots: a box per value cost a second miss per lookup (a tenth of the
/// planner's time at 1M records), and one growing vector would copy every value at each
/// doubling (and hold both copies meanwhile). Ids outside the dense range (negative, or
/// implausibly far past the values held) go to a hash map.
struct DenseMap<V> {
    dense: Vec<Box<[Option<V>]>>,
    sparse: HashMap<i64, V>,
    len: usize,
}

/// Slots per chunk of a [`DenseMap`] (a power of two).
const DENSE_CHUNK: usize = 1 << 12;

impl<V> Default for DenseMap<V> {
    fn default() -> Self {
        DenseMap {
            dense: Vec::new(),
            sparse: HashMap::default(),
            len: 0,
        }
    }
}

impl<V> DenseMap<V> {
    /// The slot of dense index `i`, if the chunks reach it.
    fn slot(&self, i: usize) -> Option<&Option<V>> {
        self.dense
            .get(i / DENSE_CHUNK)
            .map(|chunk| &chunk[i % DENSE_CHUNK])
    }

    /// The dense index of `id` if a value is there.
    fn held(&self, id: i64) -> Option<usize> {
        usize::try_from(id)
            .ok()
            .filter(|i| self.slot(*i).is_some_and(Option::is_some))
    }

    /// The slot of dense index `i`. Only for an index `held` found, or one `insert` made
    /// chunks for: indexing panics past the chunks.
    fn slot_mut(&mut self, i: usize) -> &mut Option<V> {
        &mut self.dense[i / DENSE_CHUNK][i % DENSE_CHUNK]
    }

    // An id may sit in `sparse` although the chunks have grown past it since: a miss in the
    // chunks falls back to the map (empty, and not searched, in the usual case).
    fn get(&self, id: &i64) -> Option<&V> {
        match self.held(*id) {
            Some(i) => self.slot(i).and_then(Option::as_ref),
            None if self.sparse.is_empty() => None,
            None => self.sparse.get(id),
        }
    }

    fn get_mut(&mut self, id: &i64) -> Option<&mut V> {
        match self.held(*id) {
            Some(i) => self.slot_mut(i).as_mut(),
            None if self.sparse.is_empty() => None,
            None => self.sparse.get_mut(id),
        }
    }

    fn contains_key(&self, id: &i64) -> bool {
        self.get(id).is_some()
    }

    /// Insert a value for an id that holds none.
    fn insert(&mut self, id: i64, value: V) -> &mut V {
        debug_assert!(!self.contains_key(&id));
        self.len += 1;
        // Grow the vector only for ids near what it holds (at most twice the values plus a
        // margin), so a stray large id cannot allocate gigabytes.
        match usize::try_from(id)
            .ok()
            .filter(|i| *i < self.dense.len() * DENSE_CHUNK || *i <= 2 * self.len + (1 << 16))
        {
            Some(i) => {
                while self.dense.len() <= i / DENSE_CHUNK {
                    self.dense
                        .push(std::iter::repeat_with(|| None).take(DENSE_CHUNK).collect());
                }
                self.slot_mut(i).insert(value)
            }
            None => self.sparse.entry(id).or_insert(value),
        }
    }

    fn get_or_default(&mut self, id: i64) -> &mut V
    where
        V: Default,
    {
        if self.contains_key(&id) {
            // Just checked.
            self.get_mut(&id).expect("present")
        } else {
            self.insert(id, V::default())
        }
    }

    fn remove(&mut self, id: &i64) -> Option<V> {
        let removed = match self.held(*id) {
            Some(i) => self.slot_mut(i).take(),
            None => self.sparse.remove(id),
        };
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every held id with its value (dense ones in order, then the others in no order).
    fn iter(&self) -> impl Iterator<Item = (i64, &V)> + '_ {
        self.dense
            .iter()
            .flat_map(|chunk| chunk.iter())
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (i as i64, v)))
            .chain(self.sparse.iter().map(|(k, v)| (*k, v)))
    }

    fn keys(&self) -> impl Iterator<Item = i64> + '_ {
        self.iter().map(|(k, _)| k)
    }

    fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }
}

impl<V> std::ops::Index<&i64> for DenseMap<V> {
    type Output = V;

    fn index(&self, id: &i64) -> &V {
        // Callers index only ids they found in the map (members of held blocks and customers).
        self.get(id).expect("id held by the map")
    }
}

/// Add an edge to a record's list, growing it from one slot rather than `Vec`'s four: most
/// records hold one or two edges, and at a million records the unused slots (72 bytes in a
/// one-edge list) were 14 – 24 MB of a bulk load's peak memory.
fn push_edge(edges: &mut Vec<Edge>, edge: Edge) {
    if edges.len() == edges.capacity() {
        edges.reserve_exact(edges.len().max(1));
    }
    edges.push(edge);
}

/// What the resolver keeps per record: no view, only what scoring, blocking and guards read.
struct Entry {
    /// `source \0 source_id`: orders records the way `(source, source_id)` tuples do, for
    /// deterministic tie-breaks.
    key: Box<str>,
    /// The record prepared for scoring (generic values parked).
    features: Features,
    /// Block key hashes, deduplicated.
    keys: Box<[u64]>,
    /// Given-name key for generic-value detection.
    name: Option<u64>,
    customer: Option<i64>,
    edges: Vec<Edge>,
}

/// The kinds of blocking keys. Pairs found through a key agree on what the key is made of,
/// so training does not learn those fields' m from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyKind {
    Email,
    Phone,
    OtherIdentifier,
    EmailLocalPart,
    PhoneLast7,
    FamilyNameBirthYear,
    InitialFamilyPrefix,
    PostalCodeHouseNumber,
}

impl KeyKind {
    fn of(label: &str) -> KeyKind {
        match value_kind(label) {
            Some("email") => KeyKind::Email,
            Some("phone") => KeyKind::Phone,
            Some(_) => KeyKind::OtherIdentifier,
            None => match label.split(':').next() {
                Some("email_local") => KeyKind::EmailLocalPart,
                Some("phone_last7") => KeyKind::PhoneLast7,
                Some("family_year") => KeyKind::FamilyNameBirthYear,
                Some("initial_family") => KeyKind::InitialFamilyPrefix,
                _ => KeyKind::PostalCodeHouseNumber,
            },
        }
    }

    /// The comparison fields a pair sharing this key is biased to agree on.
    pub fn conditioned_fields(self) -> &'static [&'static str] {
        match self {
            KeyKind::Email | KeyKind::EmailLocalPart => &["email"],
            KeyKind::Phone | KeyKind::PhoneLast7 => &["phone"],
            KeyKind::OtherIdentifier => &[],
            KeyKind::FamilyNameBirthYear => &["family_name", "birth_date"],
            KeyKind::InitialFamilyPrefix => &["given_name", "family_name"],
            KeyKind::PostalCodeHouseNumber => &["address"],
        }
    }
}

/// Key labels of a record, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingKey {
    pub label: String,
    /// `Some((kind, value))` for identifier-value keys.
    pub value: Option<(String, String)>,
}

/// The identifier kind of a value key's label (`kind=value`); `None` for other keys, whose
/// fixed prefixes never contain `=`.
fn value_kind(label: &str) -> Option<&str> {
    // An `=` before any `:` (one scan: this runs for every key of every record).
    match label.find(['=', ':']) {
        Some(i) if label.as_bytes()[i] == b'=' => Some(&label[..i]),
        _ => None,
    }
}

impl BlockingKey {
    /// Rebuild a key from its label.
    pub fn from_label(label: &str) -> BlockingKey {
        let value = value_kind(label).map(|k| (k.to_string(), label[k.len() + 1..].to_string()));
        BlockingKey {
            label: label.to_string(),
            value,
        }
    }
}

/// The blocking keys of a record (see the module docs). Identifier-value keys only for
/// identifiers the policy left linkable.
pub fn blocking_keys(view: &RecordView, screened: &[bool]) -> Vec<BlockingKey> {
    let labels = KeyLabels::of(
        &view.identifiers,
        screened,
        &view.attributes,
        &PersonName::from_attributes(&view.attributes),
        Matching::Probabilistic,
    );
    labels.iter().map(BlockingKey::from_label).collect()
}

/// A record's blocking-key labels, sorted and deduplicated, in one string: ingest prepares a
/// million of these, and one allocation per label (plus its kind and value) was a tenth of the
/// preparing thread's time.
#[derive(Debug, Clone, Default)]
struct KeyLabels {
    text: String,
    /// (start, end) of each label in `text`.
    spans: Vec<(u32, u32)>,
}

impl KeyLabels {
    fn push(&mut self, parts: &[&str]) {
        let start = self.text.len() as u32;
        for p in parts {
            self.text.push_str(p);
        }
        self.spans.push((start, self.text.len() as u32));
    }

    fn label(&self, (start, end): (u32, u32)) -> &str {
        &self.text[start as usize..end as usize]
    }

    fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.spans.iter().map(|s| self.label(*s))
    }

    /// [`blocking_keys`] with the record's name already read.
    fn of(
        identifiers: &[Identifier],
        screened: &[bool],
        attributes: &Attributes,
        name: &PersonName,
        matching: Matching,
    ) -> KeyLabels {
        let mut out = KeyLabels::default();
        let identifiers_only = matching == Matching::Identifiers;
        for (id, ok) in identifiers.iter().zip(screened) {
            if !ok {
                continue;
            }
            out.push(&[id.kind.as_str(), VALUE_SEPARATOR, &id.value]);
            if identifiers_only {
                continue;
            }
            match id.kind {
                IdentifierKind::Email => {
                    let mailbox = canonical_mailbox(&id.value);
                    if let Some((local, _)) = mailbox.rsplit_once('@') {
                        let local = local.replace('.', "");
                        if local.len() >= 3 {
                            out.push(&["email_local:", &local]);
                        }
                    }
                }
                IdentifierKind::Phone => {
                    let digits: String = id.value.chars().filter(char::is_ascii_digit).collect();
                    if digits.len() >= 7 {
                        out.push(&["phone_last7:", &digits[digits.len() - 7..]]);
                    }
                }
                _ => {}
            }
        }
        let family = name
            .family
            .as_deref()
            .filter(|_| !identifiers_only)
            .map(normalize_name);
        if let Some(family) = family.as_deref().filter(|f| !f.is_empty()) {
            let given = name.given.as_deref().map(normalize_name);
            let soundex = family_name_key_of_normalized(family);
            if let Some(year) = attributes
                .birth_date
                .as_deref()
                .and_then(|d| d.get(..4))
                .filter(|y| y.bytes().all(|b| b.is_ascii_digit()))
            {
                out.push(&["family_year:", &soundex, ":", year]);
            }
            if let Some(initial) = given.as_deref().and_then(|g| g.chars().next()) {
                let prefix: String = family.chars().filter(|c| *c != ' ').take(4).collect();
                let mut initial_buf = [0u8; 4];
                let initial = initial.encode_utf8(&mut initial_buf);
                out.push(&["initial_family:", initial, ":", &prefix]);
            }
        }
        for address in attributes.addresses.iter().filter(|_| !identifiers_only) {
            if let (Some(postal), Some(house)) = (
                postal_key(address),
                address.line1.as_deref().and_then(house_number),
            ) {
                out.push(&["postal_house:", &postal, ":", &house]);
            }
        }
        let text = &out.text;
        let label = |(a, b): (u32, u32)| &text[a as usize..b as usize];
        out.spans.sort_by(|a, b| label(*a).cmp(label(*b)));
        out.spans.dedup_by(|a, b| label(*a) == label(*b));
        out
    }
}

/// Between the kind and the value of an identifier-value key's label. `=` never occurs in the
/// other keys' fixed prefixes, so a custom kind cannot collide with them.
const VALUE_SEPARATOR: &str = "=";

/// The key of a record's given name for generic-value detection: the first nickname group of
/// its first word (so Bill and William count once), else the word itself.
fn given_name_key(name: &NameSpellings) -> Option<u64> {
    let first = name.given_first_word().filter(|w| w.len() > 1)?;
    let key = nickname_groups(first).into_iter().min().unwrap_or(first);
    Some(hash_str(key))
}

/// FNV-1a, folded: stable across builds and cheap for short keys.
fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h ^ (h >> 29)
}

fn entry_key(source: &str, source_id: &str) -> Box<str> {
    concat(&[source, "\0", source_id]).into()
}

/// What the resolver needs of a record, computed from its view without the resolver (so the
/// ingest pipeline can do it off the writer thread): the record's sort key, its prepared
/// features, its blocking keys with their hashes and its given-name key.
#[derive(Debug, Clone)]
pub struct ResolverInput {
    key: Box<str>,
    features: Features,
    /// The key labels (value keys are `kind=value`, see [`BlockingKey::from_label`]) and
    /// their hashes, in label order.
    labels: KeyLabels,
    hashes: Vec<u64>,
    name: Option<u64>,
}

impl ResolverInput {
    /// Identifiers count as the policy screened them (`linkable`); generic values are applied
    /// when the record is inserted.
    ///
    /// The input holds every blocking key; a resolver with [`Matching::Identifiers`] uses only
    /// the identifier values among them. [`ResolverInput::of_parts`] can leave the others out.
    pub fn of(view: &RecordView) -> ResolverInput {
        Self::of_parts(
            &view.source,
            &view.source_id,
            &view.identifiers,
            &view.attributes,
            Matching::Probabilistic,
        )
    }

    /// [`ResolverInput::of`] from borrowed parts, so callers holding a record need not build
    /// a [`RecordView`] (ingest prepares a million). With [`Matching::Identifiers`] only the
    /// identifier-value keys are computed (such an input is only right for a resolver in that
    /// mode).
    pub fn of_parts(
        source: &str,
        source_id: &str,
        identifiers: &[Identifier],
        attributes: &Attributes,
        matching: Matching,
    ) -> ResolverInput {
        let screened: Vec<bool> = identifiers.iter().map(|i| i.linkable).collect();
        // Read once, used by the features, the blocking keys and the given-name key.
        let name = PersonName::from_attributes(attributes);
        let labels = KeyLabels::of(identifiers, &screened, attributes, &name, matching);
        let features = match matching {
            Matching::Probabilistic => Features::of_parts(identifiers, attributes, &name),
            Matching::Identifiers => Features::for_guards(identifiers, attributes, &name),
        };
        ResolverInput {
            key: entry_key(source, source_id),
            hashes: labels.iter().map(hash_str).collect(),
            labels,
            // From the spellings the features hold: normalizing the name again cost a copy.
            name: given_name_key(features.name()),
            features,
        }
    }
}

/// Curator decisions the resolver obeys.
#[derive(Debug, Default, Clone)]
struct Overrides {
    never: HashMap<RecordId, BTreeSet<RecordId>>,
    force: HashMap<RecordId, BTreeSet<RecordId>>,
    detached: HashSet<RecordId>,
}

/// The in-memory resolver. See the module docs.
pub struct Resolver {
    params: MatchParameters,
    weights: WeightTable,
    tf: Box<dyn TermFrequency + Send + Sync>,
    config: ResolverConfig,
    entries: DenseMap<Entry>,
    blocks: HashMap<u64, Block>,
    /// For value blocks with more holders than `generic_value_names`: (given-name key, holders).
    block_names: HashMap<u64, Vec<(u64, u32)>>,
    /// Labels of overflowed or generic blocks, to report when they flip back.
    block_labels: HashMap<u64, BlockingKey>,
    customers: DenseMap<Members>,
    overrides: Overrides,
    /// Records whose edges must be recomputed.
    dirty: BTreeSet<RecordId>,
    /// Records whose content changed (upserted) since the last resolve: their customers get
    /// a changelog entry even when no link moved.
    changed: HashSet<RecordId>,
    /// Records whose component must be re-clustered (a superset of `dirty`).
    touched: BTreeSet<RecordId>,
    /// Customers whose every record must be re-clustered (a record left them).
    seed_customers: BTreeSet<i64>,
    /// Records removed since the last resolve.
    removed: BTreeSet<RecordId>,
    flips: Vec<KeyFlip>,
    /// Between `begin_load` and `finish_load`: nothing is dirty, nothing is reported.
    loading: bool,
}

impl Resolver {
    pub fn new(
        params: MatchParameters,
        tf: Box<dyn TermFrequency + Send + Sync>,
        config: ResolverConfig,
    ) -> Resolver {
        Resolver {
            weights: WeightTable::new(&params),
            params,
            tf,
            config,
            entries: DenseMap::default(),
            blocks: HashMap::default(),
            block_names: HashMap::default(),
            block_labels: HashMap::default(),
            customers: DenseMap::default(),
            overrides: Overrides::default(),
            dirty: BTreeSet::new(),
            changed: HashSet::default(),
            touched: BTreeSet::new(),
            seed_customers: BTreeSet::new(),
            removed: BTreeSet::new(),
            flips: Vec::new(),
            loading: false,
        }
    }

    /// Number of live entity records held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The customer a record belongs to.
    pub fn customer_of(&self, id: RecordId) -> Option<i64> {
        self.entries.get(&id).and_then(|e| e.customer)
    }

    /// Whether an identifier value is generic (held by too many different names to link).
    pub fn is_generic(&self, kind: &str, value: &str) -> bool {
        self.blocks
            .get(&hash_str(&concat(&[kind, VALUE_SEPARATOR, value])))
            .is_some_and(|b| b.generic)
    }

    /// Start loading stored state: records, edges and overrides added until
    /// [`Resolver::finish_load`] are taken as already resolved.
    pub fn begin_load(&mut self) {
        self.loading = true;
    }

    /// Add a stored record with its customer (loading).
    pub fn load_record(&mut self, id: RecordId, input: ResolverInput, customer: i64) {
        self.insert(id, input, Some(customer));
    }

    /// Add a stored edge with its stored status (loading). Unknown records are ignored.
    pub fn load_edge(
        &mut self,
        a: RecordId,
        b: RecordId,
        weight: f64,
        band: Band,
        stored: Option<LinkStatus>,
    ) {
        if !self.entries.contains_key(&a) || !self.entries.contains_key(&b) {
            return;
        }
        for (x, y) in [(a, b), (b, a)] {
            if let Some(e) = self.entries.get_mut(&x) {
                push_edge(
                    &mut e.edges,
                    Edge {
                        other: y,
                        weight,
                        band,
                        stored,
                    },
                );
            }
        }
    }

    /// Done loading: the resolver now reflects the store.
    pub fn finish_load(&mut self) {
        self.loading = false;
        self.dirty.clear();
        self.touched.clear();
        self.seed_customers.clear();
        self.flips.clear();
    }

    /// Add or replace a live entity record.
    pub fn upsert(&mut self, id: RecordId, input: ResolverInput) {
        let customer = self.take(id);
        self.insert(id, input, customer);
        self.mark_dirty(id);
        self.changed.insert(id);
    }

    /// Remove a record (deleted, or no longer an entity).
    pub fn remove(&mut self, id: RecordId) {
        if self.entries.contains_key(&id) {
            self.take(id);
            self.removed.insert(id);
            self.dirty.remove(&id);
            self.touched.remove(&id);
        }
    }

    /// A curator says `a` and `b` are different people (wins over any evidence).
    pub fn never_merge(&mut self, a: RecordId, b: RecordId) {
        for (x, y) in [(a, b), (b, a)] {
            self.overrides.force.entry(x).or_default().remove(&y);
            self.overrides.never.entry(x).or_default().insert(y);
        }
        self.touch(a);
        self.touch(b);
    }

    /// A curator says `a` and `b` are one person.
    pub fn force_merge(&mut self, a: RecordId, b: RecordId) {
        for (x, y) in [(a, b), (b, a)] {
            self.overrides.never.entry(x).or_default().remove(&y);
            self.overrides.force.entry(x).or_default().insert(y);
        }
        self.touch(a);
        self.touch(b);
    }

    /// A curator takes `a` out of its customer: it takes no links, only force-merges.
    pub fn detach(&mut self, a: RecordId) {
        self.overrides.detached.insert(a);
        self.touch(a);
    }

    fn touch(&mut self, id: RecordId) {
        if !self.loading && self.entries.contains_key(&id) {
            self.touched.insert(id);
        }
    }

    fn mark_dirty(&mut self, id: RecordId) {
        if !self.loading {
            self.dirty.insert(id);
            self.touched.insert(id);
        }
    }

    fn insert(&mut self, id: RecordId, input: ResolverInput, customer: Option<i64>) {
        let ResolverInput {
            key: entry_key,
            mut features,
            labels,
            hashes,
            name,
        } = input;
        let identifiers_only = self.config.matching == Matching::Identifiers;
        let mut keys = Vec::with_capacity(hashes.len());
        for (&h, label) in hashes.iter().zip(labels.iter()) {
            let value_of = value_kind(label);
            if identifiers_only && value_of.is_none() {
                continue;
            }
            keys.push(h);
            let block = self.blocks.entry(h).or_insert_with(|| Block {
                members: Members::default(),
                kind: KeyKind::of(label),
                is_value: value_of.is_some(),
                overflowed: false,
                generic: false,
            });
            block.members.push(id);
            if block.is_value {
                self.count_name(h, name, id);
            }
            self.check_flips(h, Some(label));
            // Generic values stay on the record but are not compared.
            if let Some(kind) = value_of
                && self.blocks.get(&h).is_some_and(|b| b.generic)
            {
                features.set_generic(kind, &label[kind.len() + 1..], true);
            }
        }
        if let Some(c) = customer {
            self.customers.get_or_default(c).push(id);
        }
        self.entries.insert(
            id,
            Entry {
                key: entry_key,
                features,
                keys: keys.into_boxed_slice(),
                name,
                customer,
                edges: Vec::new(),
            },
        );
    }

    /// Count a new holder's given name in a value block, once the block has more holders than
    /// `generic_value_names` (below that it cannot be generic, so most blocks keep no counts).
    /// `new` is the holder being inserted (not in `entries` yet).
    fn count_name(&mut self, h: u64, name: Option<u64>, new: RecordId) {
        let Some(block) = self.blocks.get(&h) else {
            return;
        };
        if block.members.len() <= self.config.generic_value_names {
            return;
        }
        if let Some(names) = self.block_names.get_mut(&h) {
            if let Some(n) = name {
                match names.iter_mut().find(|(k, _)| *k == n) {
                    Some((_, c)) => *c += 1,
                    None => names.push((n, 1)),
                }
            }
            return;
        }
        let mut names: Vec<(u64, u32)> = Vec::new();
        for m in block.members.iter() {
            let n = if m == new {
                name
            } else {
                self.entries.get(&m).and_then(|e| e.name)
            };
            if let Some(n) = n {
                match names.iter_mut().find(|(k, _)| *k == n) {
                    Some((_, c)) => *c += 1,
                    None => names.push((n, 1)),
                }
            }
        }
        self.block_names.insert(h, names);
    }

    /// Take a record out of every index; returns its customer. Its old customer and its old
    /// link neighbours are re-clustered at the next resolve.
    fn take(&mut self, id: RecordId) -> Option<i64> {
        let entry = self.entries.remove(&id)?;
        for e in &entry.edges {
            if let Some(other) = self.entries.get_mut(&e.other) {
                other.edges.retain(|x| x.other != id);
                if e.band == Band::Link && !self.loading {
                    self.touched.insert(e.other);
                }
            }
        }
        for h in entry.keys.iter() {
            let Some(block) = self.blocks.get_mut(h) else {
                continue;
            };
            block.members.remove(id);
            let (len, flagged) = (block.members.len(), block.flagged());
            if len <= self.config.generic_value_names {
                self.block_names.remove(h);
            } else if let Some(names) = self.block_names.get_mut(h)
                && let Some(n) = entry.name
                && let Some(pos) = names.iter().position(|(k, _)| *k == n)
            {
                names[pos].1 -= 1;
                if names[pos].1 == 0 {
                    names.swap_remove(pos);
                }
            }
            if len == 0 {
                self.blocks.remove(h);
                if let Some(label) = self.block_labels.remove(h)
                    && flagged
                {
                    self.report(&label, false, 0, 0);
                }
            } else {
                self.check_flips(*h, None);
            }
        }
        if let Some(c) = entry.customer {
            if let Some(set) = self.customers.get_mut(&c) {
                set.remove(id);
                if set.is_empty() {
                    self.customers.remove(&c);
                }
            }
            if !self.loading {
                self.seed_customers.insert(c);
            }
        }
        entry.customer
    }

    /// Report a flip of a block's state (not while loading).
    fn report(&mut self, key: &BlockingKey, flagged: bool, names: usize, records: usize) {
        if self.loading {
            return;
        }
        self.flips.push(match &key.value {
            Some((kind, value)) => KeyFlip::Generic {
                kind: kind.clone(),
                value: value.clone(),
                names,
                records,
                generic: flagged,
            },
            None => KeyFlip::Overflow {
                key: key.label.clone(),
                records,
                overflowed: flagged,
            },
        });
    }

    /// Recompute a block's overflow and generic state; on a flip its members' edges change.
    /// `key` is the block's label when the caller has it (inserts); flagged blocks keep theirs.
    fn check_flips(&mut self, h: u64, key: Option<&str>) {
        let Some(block) = self.blocks.get_mut(&h) else {
            return;
        };
        let names = self.block_names.get(&h).map_or(0, Vec::len);
        let overflowed = block.members.len() > self.config.max_block_size;
        let generic = block.is_value && names > self.config.generic_value_names;
        if overflowed == block.overflowed && generic == block.generic {
            return;
        }
        let members = block.members.clone();
        let generic_flipped = generic != block.generic;
        block.overflowed = overflowed;
        block.generic = generic;
        let flagged = overflowed || generic;
        let label = match key {
            Some(k) => BlockingKey::from_label(k),
            None => match self.block_labels.get(&h) {
                Some(k) => k.clone(),
                // A block only flips back from flagged on removals, and flagged blocks keep
                // their label, so this is unreachable; without a label there is nothing to say.
                None => return,
            },
        };
        if flagged {
            self.block_labels.insert(h, label.clone());
        } else {
            self.block_labels.remove(&h);
        }
        // A value block reports its generic flips; any other change is an overflow flip.
        if generic_flipped && label.value.is_some() {
            self.report(&label, generic, names, members.len());
        } else if !generic_flipped {
            let overflow_label = BlockingKey {
                label: label.label.clone(),
                value: None,
            };
            self.report(&overflow_label, overflowed, names, members.len());
        }
        for m in members.iter() {
            if generic_flipped
                && let Some((kind, value)) = &label.value
                && let Some(entry) = self.entries.get_mut(&m)
            {
                entry.features.set_generic(kind, value, generic);
            }
            self.mark_dirty(m);
        }
    }

    /// Recompute edges of dirty records, re-cluster every component they touch and assign
    /// stable ids. `next_customer` is the next unused customer id; it is advanced.
    pub fn resolve(&mut self, next_customer: &mut i64) -> Resolution {
        let mut out = Resolution {
            flips: std::mem::take(&mut self.flips),
            ..Resolution::default()
        };
        // Vectors and sets of a group's size are sized up front: a bulk load's groups hold tens
        // of thousands of records, and growing them one push at a time (copies, fresh pages,
        // rehashing) was 5% of its planning.
        let mut dirty: Vec<RecordId> = Vec::with_capacity(self.dirty.len());
        dirty.extend(
            std::mem::take(&mut self.dirty)
                .into_iter()
                .filter(|d| self.entries.contains_key(d)),
        );
        // Old edges of dirty records go first, both directions, so every pair is scored once.
        for d in &dirty {
            let Some(entry) = self.entries.get_mut(d) else {
                continue;
            };
            let old = std::mem::take(&mut entry.edges);
            for e in old {
                if let Some(other) = self.entries.get_mut(&e.other) {
                    other.edges.retain(|x| x.other != *d);
                    if e.band == Band::Link {
                        self.touched.insert(e.other);
                    }
                }
            }
        }
        let dirty_set: HashSet<RecordId> = dirty.iter().copied().collect();
        for d in &dirty {
            let candidates = self.candidates(*d);
            let mut new_edges = Vec::new();
            {
                let features = &self.entries[d].features;
                for c in candidates {
                    // A pair of dirty records is scored by the smaller id.
                    if dirty_set.contains(&c) && c < *d {
                        continue;
                    }
                    let Some(other) = self.entries.get(&c) else {
                        continue;
                    };
                    out.pairs_scored += 1;
                    let (weight, band) = match self.config.matching {
                        Matching::Probabilistic => {
                            let w = self.weights.total(
                                features,
                                &other.features,
                                self.tf.as_ref(),
                                self.config.identifier_weight,
                            );
                            (w, self.params.band(w))
                        }
                        // Every key is an active identifier value, so the pair shares one,
                        // unless two values' 64-bit key hashes collide: the values decide.
                        Matching::Identifiers if features.shares_identifier(&other.features) => {
                            (self.config.identifier_weight, Band::Link)
                        }
                        Matching::Identifiers => (0.0, Band::NoLink),
                    };
                    if band != Band::NoLink {
                        new_edges.push(Edge {
                            other: c,
                            weight,
                            band,
                            stored: None,
                        });
                    }
                }
            }
            for e in new_edges {
                if let Some(other) = self.entries.get_mut(&e.other) {
                    push_edge(&mut other.edges, Edge { other: *d, ..e });
                }
                if let Some(me) = self.entries.get_mut(d) {
                    push_edge(&mut me.edges, e);
                }
            }
        }

        // The records to re-cluster: touched records, every record of their customers and of
        // customers that lost a record, closed over link edges and force-merges.
        // Visited set while walking, then sorted: a B-tree of a group's whole component costs
        // more than a hash set and one sort.
        // A component is typically one to two times the records touched.
        let expected = 2 * self.touched.len();
        let mut visited: HashSet<RecordId> =
            HashSet::with_capacity_and_hasher(expected, Default::default());
        let mut queue: Vec<RecordId> = Vec::with_capacity(expected);
        queue.extend(
            std::mem::take(&mut self.touched)
                .into_iter()
                .filter(|r| self.entries.contains_key(r)),
        );
        let seeds = std::mem::take(&mut self.seed_customers);
        for c in &seeds {
            if let Some(members) = self.customers.get(c) {
                queue.extend(members.iter());
            }
        }
        let mut seen_customers: HashSet<i64> = seeds.iter().copied().collect();
        while let Some(r) = queue.pop() {
            if !visited.insert(r) {
                continue;
            }
            let Some(entry) = self.entries.get(&r) else {
                continue;
            };
            queue.extend(
                entry
                    .edges
                    .iter()
                    .filter(|e| e.band == Band::Link)
                    .map(|e| e.other),
            );
            if let Some(f) = self.overrides.force.get(&r) {
                queue.extend(f.iter().copied().filter(|x| self.entries.contains_key(x)));
            }
            if let Some(c) = entry.customer
                && seen_customers.insert(c)
                && let Some(members) = self.customers.get(&c)
            {
                queue.extend(members.iter());
            }
        }
        let removed = std::mem::take(&mut self.removed);
        let mut component: Vec<RecordId> = visited.into_iter().collect();
        component.sort_unstable();
        if component.is_empty() && seeds.is_empty() {
            return out;
        }

        let (parts, evidence) = self.cluster(&component);
        // Stored rows to replace wholesale: pairs of re-scored and removed records are gone
        // from memory, and curated records may have rows without an edge (a force-merge of a
        // no-link pair).
        let curated = |r: &RecordId| {
            self.overrides.force.contains_key(r) || self.overrides.never.contains_key(r)
        };
        out.rewritten = Vec::with_capacity(dirty.len() + removed.len());
        out.rewritten.extend(
            dirty
                .iter()
                .chain(&removed)
                .chain(component.iter().filter(|r| curated(r)))
                .copied(),
        );
        out.rewritten.sort_unstable();
        out.rewritten.dedup();
        out.evidence = self.changed_evidence(evidence, &out.rewritten);
        let changed = std::mem::take(&mut self.changed);
        self.assign_ids(parts, &seeds, &changed, next_customer, &mut out);
        out
    }

    /// The pairs of `evidence` the store does not hold yet with that status (every pair
    /// touching a `rewritten` record, whose rows are deleted first), noting them as stored.
    fn changed_evidence(
        &mut self,
        evidence: Vec<PairEvidence>,
        rewritten: &[RecordId],
    ) -> Vec<PairEvidence> {
        let mut out = Vec::with_capacity(evidence.len());
        for e in evidence {
            let must =
                rewritten.binary_search(&e.a).is_ok() || rewritten.binary_search(&e.b).is_ok();
            let mut known = false;
            for (x, y) in [(e.a, e.b), (e.b, e.a)] {
                if let Some(edge) = self
                    .entries
                    .get_mut(&x)
                    .and_then(|en| en.edges.iter_mut().find(|edge| edge.other == y))
                {
                    known |= edge.stored == Some(e.status);
                    edge.stored = Some(e.status);
                }
            }
            // An edgeless pair (a forced no-link pair) has no memory of its row: always write.
            if must || !known {
                out.push(e);
            }
        }
        out
    }

    /// Members of the record's active blocks, sorted and deduplicated, without itself.
    fn candidates(&self, id: RecordId) -> Vec<RecordId> {
        let mut out = Vec::new();
        let Some(entry) = self.entries.get(&id) else {
            return out;
        };
        for h in &entry.keys {
            if let Some(b) = self.blocks.get(h).filter(|b| b.active()) {
                out.extend(b.members.iter().filter(|m| *m != id));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Greedy, guarded clustering of a closed set of records. Returns the parts (each sorted
    /// by record key, parts sorted by size descending then first key) and the evidence of every
    /// pair touching the set.
    /// `records` is sorted and deduplicated.
    fn cluster(&self, records: &[RecordId]) -> (Vec<Vec<RecordId>>, Vec<PairEvidence>) {
        let key = |r: RecordId| -> &str { &self.entries[&r].key };
        let inside: HashSet<RecordId> = records.iter().copied().collect();
        let mut evidence = Vec::with_capacity(records.len());
        // Link edges inside the set (each pair once, from its smaller id), with their keys
        // looked up once for sorting; and the records that take part in any link.
        // Sized for a component of records linked in pairs or chains: growing these vectors
        // (and the union-find's) one push at a time cost 7% of a bulk load's planning.
        let mut links: Vec<(f64, [RecordKey<'_>; 2], RecordId, RecordId)> =
            Vec::with_capacity(records.len());
        let mut linked: Vec<RecordId> = Vec::with_capacity(records.len());
        for &r in records {
            let forced = self.overrides.force.get(&r);
            let mut takes_part = forced.is_some_and(|f| f.iter().any(|o| inside.contains(o)));
            for e in &self.entries[&r].edges {
                let inside = inside.contains(&e.other);
                if e.band == Band::Link && inside {
                    takes_part = true;
                }
                if inside && e.other < r {
                    continue;
                }
                if inside && forced.is_some_and(|f| f.contains(&e.other)) {
                    continue; // recorded as forced below, whatever its band
                }
                if e.band == Band::Link && inside {
                    let keys = ordered(RecordKey::of(key(r)), RecordKey::of(key(e.other)));
                    links.push((e.weight, keys, r, e.other));
                } else {
                    evidence.push(PairEvidence {
                        a: r.min(e.other),
                        b: r.max(e.other),
                        weight: Some(e.weight),
                        status: LinkStatus::Possible,
                    });
                }
            }
            if takes_part {
                linked.push(r);
            }
        }
        // Records without links are parts of their own; only linked ones need union-find and
        // the facts guards read.
        let mut uf = UnionFind::new(linked.iter().copied(), |r| {
            ClusterFacts::of(&self.entries[&r].features, &self.config, r)
        });
        // Force-merges first: curators win.
        for &r in &linked {
            if let Some(f) = self.overrides.force.get(&r) {
                for &o in f.iter().filter(|o| **o > r && inside.contains(o)) {
                    let (ra, ro) = (uf.find(r), uf.find(o));
                    uf.union(ra, ro);
                    evidence.push(PairEvidence {
                        a: r,
                        b: o,
                        weight: self.pair_weight(r, o),
                        status: LinkStatus::Forced,
                    });
                }
            }
        }
        // Unstable is enough: no two links have the same pair of keys.
        links.sort_unstable_by(|(wa, ka, ..), (wb, kb, ..)| {
            wb.total_cmp(wa).then_with(|| ka.cmp(kb))
        });
        for (weight, _, x, y) in links {
            let (a, b) = (x.min(y), x.max(y));
            let (ra, rb) = (uf.find(a), uf.find(b));
            let status = if ra == rb {
                LinkStatus::Implied
            } else if self.overrides.detached.contains(&a) || self.overrides.detached.contains(&b) {
                LinkStatus::Refused(Guard::Detached)
            } else if let Some(g) = uf.guard(ra, rb, &self.overrides, &self.config) {
                LinkStatus::Refused(g)
            } else {
                uf.union(ra, rb);
                LinkStatus::Accepted
            };
            evidence.push(PairEvidence {
                a,
                b,
                weight: Some(weight),
                status,
            });
        }
        // Parts, largest first, then by their first record's key; records within a part by key.
        // Built flat and sorted by inline values: a group re-clusters tens of thousands of
        // records, most of them parts of their own, and sorting one vector per part by key
        // strings (two pointers to follow per comparison) took 7% of the planner's samples.
        // Every record with its part's label: its union-find root if it takes part in a link,
        // else a label of its own past the roots.
        let mut labelled: Vec<(u32, RecordKey<'_>, RecordId)> = Vec::with_capacity(records.len());
        let mut own_label = linked.len() as u32;
        for &r in records {
            let label = if uf.index.contains_key(&r) {
                uf.find(r)
            } else {
                own_label += 1;
                own_label
            };
            labelled.push((label, RecordKey::of(key(r)), r));
        }
        labelled.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        // (size, first key, start) of each part's run in `labelled`.
        let mut runs: Vec<(usize, RecordKey<'_>, usize)> = Vec::new();
        let mut start = 0;
        for (i, row) in labelled.iter().enumerate() {
            if row.0 != labelled[start].0 {
                runs.push((i - start, labelled[start].1, start));
                start = i;
            }
        }
        if !labelled.is_empty() {
            runs.push((labelled.len() - start, labelled[start].1, start));
        }
        runs.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let parts = runs
            .into_iter()
            .map(|(len, _, start)| {
                labelled[start..start + len]
                    .iter()
                    .map(|row| row.2)
                    .collect()
            })
            .collect();
        (parts, evidence)
    }

    fn pair_weight(&self, a: RecordId, b: RecordId) -> Option<f64> {
        self.entries[&a]
            .edges
            .iter()
            .find(|e| e.other == b)
            .map(|e| e.weight)
    }

    fn assign_ids(
        &mut self,
        parts: Vec<Vec<RecordId>>,
        seeds: &BTreeSet<i64>,
        changed: &HashSet<RecordId>,
        next_customer: &mut i64,
        out: &mut Resolution,
    ) {
        // Old customer -> (part index, records of it in that part), parts in order. Small
        // vectors, not maps: nearly every customer lies in one part and every part holds one
        // customer, and a group assigns tens of thousands of parts.
        let mut old: BTreeMap<i64, Vec<(usize, usize)>> = BTreeMap::new();
        for c in seeds {
            old.entry(*c).or_default();
        }
        // Part -> the old customers of its records, oldest first.
        let mut part_customers: Vec<Vec<i64>> = vec![Vec::new(); parts.len()];
        for (i, part) in parts.iter().enumerate() {
            for r in part {
                if let Some(c) = self.entries[r].customer {
                    let counts = old.entry(c).or_default();
                    match counts.last_mut() {
                        Some((last, n)) if *last == i => *n += 1,
                        _ => counts.push((i, 1)),
                    }
                    part_customers[i].push(c);
                }
            }
        }
        for customers in &mut part_customers {
            customers.sort_unstable();
            customers.dedup();
        }
        let mut part_id: Vec<Option<i64>> = vec![None; parts.len()];
        // Old id -> the part that kept it. Each id goes to one part, and fresh ids never equal
        // an old one, so only old ids need tracking (a bulk load's parts are nearly all new:
        // no map entry per part).
        let mut kept: HashMap<i64, usize> = HashMap::default();
        // Oldest first: each old id goes to the part holding most of its records (ties: the
        // larger part, then the first in part order), if that part has no id yet.
        for (c, counts) in &old {
            let best = counts
                .iter()
                .max_by(|(ia, na), (ib, nb)| na.cmp(nb).then_with(|| ib.cmp(ia)))
                .map(|(i, _)| *i);
            if let Some(i) = best
                && part_id[i].is_none()
            {
                part_id[i] = Some(*c);
                kept.insert(*c, i);
            }
        }
        // Parts still without an id take the oldest unassigned id among their records', else
        // a new one.
        for (i, slot) in part_id.iter_mut().enumerate() {
            if slot.is_some() {
                continue;
            }
            let reuse = part_customers[i]
                .iter()
                .find(|c| !kept.contains_key(*c))
                .copied();
            let id = match reuse {
                Some(c) => {
                    kept.insert(c, i);
                    c
                }
                None => {
                    let id = *next_customer;
                    *next_customer += 1;
                    id
                }
            };
            *slot = Some(id);
        }
        // One change per part (part ids are distinct), then one per old id no part kept;
        // sorted by id at the end.
        let mut facts: Vec<CustomerChange> = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let id = part_id[i].expect("every part has an id after the second pass");
            facts.push(CustomerChange {
                customer: id,
                created: !old.contains_key(&id),
                status: CustomerStatus::Active,
                absorbed: Vec::new(),
                split_off: Vec::new(),
                records_changed: false,
            });
            let ch = facts.last_mut().expect("pushed above");
            for r in part {
                let entry = self.entries.get_mut(r).expect("parts hold live records");
                if entry.customer != Some(id) {
                    ch.records_changed = true;
                    if let Some(prev) = entry.customer {
                        if prev != id && !ch.absorbed.contains(&prev) {
                            ch.absorbed.push(prev);
                        }
                        if let Some(set) = self.customers.get_mut(&prev) {
                            set.remove(*r);
                            if set.is_empty() {
                                self.customers.remove(&prev);
                            }
                        }
                    }
                    entry.customer = Some(id);
                    self.customers.get_or_default(id).push(*r);
                    out.assignments.push((*r, id));
                }
                if changed.contains(r) {
                    ch.records_changed = true;
                }
            }
            ch.absorbed.sort_unstable();
        }
        // Old ids that no part kept.
        for (c, counts) in &old {
            let holders: Vec<i64> = counts
                .iter()
                .map(|(i, _)| part_id[*i].expect("assigned"))
                .collect();
            if let Some(&i) = kept.get(c) {
                // Kept: which other parts took some of its records?
                let ch = &mut facts[i];
                ch.split_off = holders.iter().copied().filter(|h| h != c).collect();
                ch.split_off.sort_unstable();
                ch.split_off.dedup();
                if seeds.contains(c) {
                    ch.records_changed = true;
                }
                continue;
            }
            let mut into = holders.clone();
            into.sort_unstable();
            into.dedup();
            let status = match into.as_slice() {
                [] => CustomerStatus::Empty,
                [one] => CustomerStatus::MergedInto { into: *one },
                _ => CustomerStatus::SplitInto { into: into.clone() },
            };
            facts.push(CustomerChange {
                customer: *c,
                created: false,
                status,
                absorbed: Vec::new(),
                split_off: into,
                records_changed: true,
            });
        }
        // Absorbed lists only ids that are gone; a customer that merely gave up some records
        // is a split of that customer, reported on its own entry.
        let gone: HashSet<i64> = facts
            .iter()
            .filter(|c| c.status != CustomerStatus::Active)
            .map(|c| c.customer)
            .collect();
        for ch in &mut facts {
            ch.absorbed.retain(|a| gone.contains(a));
        }
        facts.sort_unstable_by_key(|c| c.customer);
        out.changes = facts
            .into_iter()
            .filter(|c| {
                c.created
                    || c.records_changed
                    || c.status != CustomerStatus::Active
                    || !c.absorbed.is_empty()
                    || !c.split_off.is_empty()
            })
            .collect();
        out.assignments.sort_unstable();
    }

    /// How many held records carry each normalized family name (for term frequencies).
    pub fn family_name_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for e in self.entries.values() {
            if let Some(f) = e.features.name().family() {
                *counts.entry(f.to_string()).or_default() += 1;
            }
        }
        counts
    }

    /// Every held record id, ascending.
    pub fn record_ids(&self) -> Vec<RecordId> {
        let mut ids: Vec<RecordId> = self.entries.keys().collect();
        ids.sort_unstable();
        ids
    }

    /// Compare two held records the way the resolver scores them.
    pub fn compare(&self, a: RecordId, b: RecordId) -> Option<Comparison> {
        Some(compare_features(
            &self.entries.get(&a)?.features,
            &self.entries.get(&b)?.features,
        ))
    }

    /// Up to `limit` candidate pairs (records sharing an active blocking key) per key kind,
    /// each with the kind of key that found it, in a deterministic order, for training. A
    /// pair is listed once per kind.
    pub fn candidate_pairs(&self, limit: usize) -> Vec<(KeyKind, RecordId, RecordId)> {
        let mut hashes: Vec<(KeyKind, u64)> = self
            .blocks
            .iter()
            .filter(|(_, b)| b.active() && b.members.len() > 1)
            .map(|(h, b)| (b.kind, *h))
            .collect();
        hashes.sort_unstable();
        let mut seen = HashSet::default();
        let mut out = Vec::new();
        let mut per_kind: HashMap<KeyKind, usize> = HashMap::default();
        for (kind, h) in hashes {
            let members = self.blocks[&h].members.as_slice();
            for (i, a) in members.iter().enumerate() {
                for b in &members[i + 1..] {
                    let n = per_kind.entry(kind).or_default();
                    if *n >= limit {
                        break;
                    }
                    let pair = (kind, (*a).min(*b), (*a).max(*b));
                    if seen.insert(pair) {
                        *n += 1;
                        out.push(pair);
                    }
                }
            }
        }
        out
    }

    /// Re-score every pair and re-cluster everything at the next resolve (after the
    /// parameters or settings changed). Customer ids stay stable as on any re-clustering.
    pub fn mark_all_dirty(&mut self) {
        self.dirty.extend(self.entries.keys());
        self.touched.extend(self.entries.keys());
    }

    /// Number of identifier values currently generic.
    pub fn generic_values(&self) -> usize {
        self.blocks.values().filter(|b| b.generic).count()
    }

    /// The current partition: customer -> records, for tests and checks.
    pub fn partition(&self) -> BTreeMap<i64, BTreeSet<RecordId>> {
        self.customers
            .iter()
            .map(|(c, r)| (c, r.iter().collect()))
            .collect()
    }
}

fn ordered<T: Ord>(a: T, b: T) -> [T; 2] {
    if a <= b { [a, b] } else { [b, a] }
}

/// A record's key (`source \0 source_id`) for sorting: ordered exactly as the string, but its
/// first 16 bytes are held inline, so most comparisons never follow the pointer to the text.
#[derive(Debug, Clone, Copy)]
struct RecordKey<'a> {
    /// The first 16 bytes, zero-padded, big-endian: a smaller prefix means a smaller string
    /// (a string that is a prefix of another pads with zeros, which sort first); equal prefixes
    /// leave it to the text.
    prefix: u128,
    text: &'a str,
}

impl<'a> RecordKey<'a> {
    fn of(text: &'a str) -> RecordKey<'a> {
        let mut bytes = [0u8; 16];
        let n = text.len().min(16);
        bytes[..n].copy_from_slice(&text.as_bytes()[..n]);
        RecordKey {
            prefix: u128::from_be_bytes(bytes),
            text,
        }
    }
}

impl Ord for RecordKey<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| self.text.cmp(other.text))
    }
}

impl PartialOrd for RecordKey<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for RecordKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for RecordKey<'_> {}

/// What a cluster holds that guards look at, borrowed from the records' prepared features
/// (clusters are small; vectors with linear dedup beat sets here, and nothing is copied).
#[derive(Debug, Default)]
struct ClusterFacts<'a> {
    records: Vec<RecordId>,
    emails: Vec<&'a str>,
    phones: Vec<&'a [u8]>,
    unique: Vec<(&'a str, &'a str)>,
    birth_dates: Vec<[u8; 8]>,
    /// Names with a given name (a family name alone says nothing about the given one).
    names: Vec<&'a NameSpellings>,
}

fn push_new<T: PartialEq>(into: &mut Vec<T>, items: impl IntoIterator<Item = T>) {
    for x in items {
        if !into.contains(&x) {
            into.push(x);
        }
    }
}

impl<'a> ClusterFacts<'a> {
    fn of(f: &'a Features, config: &'a ResolverConfig, id: RecordId) -> ClusterFacts<'a> {
        let mut facts = ClusterFacts {
            records: vec![id],
            ..ClusterFacts::default()
        };
        push_new(&mut facts.emails, f.emails());
        push_new(&mut facts.phones, f.phones().iter().map(|p| &**p));
        for kind in &config.unique_kinds {
            match kind.as_str() {
                "email" => {
                    let emails: Vec<(&str, &str)> =
                        f.emails().map(|e| (kind.as_str(), e)).collect();
                    push_new(&mut facts.unique, emails);
                }
                "phone" => {
                    // Phone digits are ASCII, so they are valid UTF-8.
                    let phones: Vec<(&str, &str)> = f
                        .phones()
                        .iter()
                        .filter_map(|p| std::str::from_utf8(p).ok())
                        .map(|p| (kind.as_str(), p))
                        .collect();
                    push_new(&mut facts.unique, phones);
                }
                _ => push_new(
                    &mut facts.unique,
                    f.identifiers()
                        .iter()
                        .filter(|(k, _)| k == kind)
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                ),
            }
        }
        if config.unique_birth_date
            && let Some(d) = f.birth_date()
        {
            facts.birth_dates.push(*d);
        }
        if config.unique_given_name && f.name().has_given() {
            facts.names.push(f.name());
        }
        facts
    }

    fn absorb(&mut self, other: ClusterFacts<'a>) {
        self.records.extend(other.records);
        push_new(&mut self.emails, other.emails);
        push_new(&mut self.phones, other.phones);
        push_new(&mut self.unique, other.unique);
        push_new(&mut self.birth_dates, other.birth_dates);
        for n in other.names {
            if !self.names.contains(&n) {
                self.names.push(n);
            }
        }
    }
}

/// How many distinct values two clusters hold together.
fn union_len<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    a.len() + b.iter().filter(|x| !a.contains(x)).count()
}

/// Union-find over the linked records of one component, by dense local index (a group's
/// component holds tens of thousands of records; hash lookups per step were most of its cost).
struct UnionFind<'a> {
    index: HashMap<RecordId, u32>,
    parent: Vec<u32>,
    /// The facts of each root's cluster (left empty for non-roots).
    facts: Vec<ClusterFacts<'a>>,
}

impl<'a> UnionFind<'a> {
    fn new(
        ids: impl Iterator<Item = RecordId>,
        facts: impl Fn(RecordId) -> ClusterFacts<'a>,
    ) -> UnionFind<'a> {
        let n = ids.size_hint().0;
        let mut uf = UnionFind {
            index: HashMap::with_capacity_and_hasher(n, Default::default()),
            parent: Vec::with_capacity(n),
            facts: Vec::with_capacity(n),
        };
        for id in ids {
            let i = uf.parent.len() as u32;
            uf.index.insert(id, i);
            uf.parent.push(i);
            uf.facts.push(facts(id));
        }
        uf
    }

    /// The root of `x`'s cluster (`x` must be one of the ids it was built with).
    fn find(&mut self, x: RecordId) -> u32 {
        let start = self.index[&x];
        let mut root = start;
        while self.parent[root as usize] != root {
            root = self.parent[root as usize];
        }
        let mut cur = start;
        while cur != root {
            let next = self.parent[cur as usize];
            self.parent[cur as usize] = root;
            cur = next;
        }
        root
    }

    /// Join the clusters of two roots.
    fn union(&mut self, ra: u32, rb: u32) {
        if ra == rb {
            return;
        }
        // The bigger cluster absorbs the smaller; the root itself does not matter for results.
        let (big, small) =
            if self.facts[ra as usize].records.len() >= self.facts[rb as usize].records.len() {
                (ra, rb)
            } else {
                (rb, ra)
            };
        let moved = std::mem::take(&mut self.facts[small as usize]);
        self.facts[big as usize].absorb(moved);
        self.parent[small as usize] = big;
    }

    /// The first guard that refuses joining the clusters of roots `ra` and `rb`.
    fn guard(
        &self,
        ra: u32,
        rb: u32,
        overrides: &Overrides,
        config: &ResolverConfig,
    ) -> Option<Guard> {
        let (fa, fb) = (&self.facts[ra as usize], &self.facts[rb as usize]);
        let (small, big) = if fa.records.len() <= fb.records.len() {
            (fa, fb)
        } else {
            (fb, fa)
        };
        if !overrides.never.is_empty() {
            let big_members: HashSet<RecordId> = big.records.iter().copied().collect();
            if small.records.iter().any(|r| {
                overrides
                    .never
                    .get(r)
                    .is_some_and(|n| n.iter().any(|x| big_members.contains(x)))
            }) {
                return Some(Guard::NeverMerge);
            }
        }
        let unique_conflict = small
            .unique
            .iter()
            .any(|(k, v)| big.unique.iter().any(|(bk, bv)| bk == k && bv != v));
        if unique_conflict {
            return Some(Guard::UniqueKind);
        }
        let dates_conflict = small.birth_dates.iter().any(|x| {
            big.birth_dates.iter().any(|y| {
                matches!(
                    compare_birth_date_digits(x, y),
                    BirthDateLevel::SameYear | BirthDateLevel::Disagree
                )
            })
        });
        if dates_conflict {
            return Some(Guard::BirthDate);
        }
        // Compared as whole names, so "Smith John" (swapped) does not conflict with "John".
        let names_conflict = small
            .names
            .iter()
            .any(|x| big.names.iter().any(|y| given_names_disagree(x, y)));
        if names_conflict {
            return Some(Guard::GivenName);
        }
        if union_len(&big.emails, &small.emails) > config.max_emails {
            return Some(Guard::MaxEmails);
        }
        if union_len(&big.phones, &small.phones) > config.max_phones {
            return Some(Guard::MaxPhones);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::{NoTermFrequency, score_features};
    use onetruth_model::{Attributes, Identifier};

    #[test]
    fn given_name_keys_group_nicknames_and_ignore_initials() {
        let key =
            |given: &str| given_name_key(&NameSpellings::new(&PersonName::new(Some(given), None)));
        assert!(key("Bill").is_some());
        assert_eq!(key("Bill"), key("William"));
        assert_eq!(key("  WILLIAM P. "), key("bill"));
        assert_eq!(key("José"), key("jose"));
        assert_ne!(key("Bill"), key("Robert"));
        assert_eq!(key("J"), None);
        assert_eq!(key("J. Robert"), None);
        assert_eq!(key("--"), None);
        assert_eq!(key("Zorro"), Some(hash_str("zorro")));
    }

    #[test]
    fn record_keys_sort_exactly_as_their_text() {
        let keys = [
            "crm\0C0001",
            "crm\0C0001\0",
            "crm\0C00010",
            "crm\0C0000999999999",
            "crm\0C0000999999998",
            "crm\0C0000999999999x",
            "billing\0x",
            "",
            "a",
            "a\0",
            "a\u{1}",
            "zzzzzzzzzzzzzzzz",
            "zzzzzzzzzzzzzzzzz",
            "zzzzzzzzzzzzzzz\0",
            "é\0ü",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(
                    RecordKey::of(a).cmp(&RecordKey::of(b)),
                    a.cmp(b),
                    "{a:?} {b:?}"
                );
            }
        }
    }

    fn ident(kind: IdentifierKind, value: &str) -> Identifier {
        Identifier {
            kind,
            value: value.to_string(),
            original: value.to_string(),
            linkable: true,
        }
    }

    /// A record: `spec` is `"given family birth email phone"`, `-` for absent.
    fn view(id: &str, spec: &str) -> RecordView {
        let f: Vec<Option<&str>> = spec
            .split_whitespace()
            .map(|s| (s != "-").then_some(s))
            .collect();
        let mut identifiers = Vec::new();
        if let Some(e) = f[3] {
            identifiers.push(ident(IdentifierKind::Email, e));
        }
        if let Some(p) = f[4] {
            identifiers.push(ident(IdentifierKind::Phone, p));
        }
        RecordView {
            source: "crm".into(),
            source_id: id.into(),
            version: 1,
            identifiers,
            attributes: Attributes {
                given_name: f[0].map(str::to_string),
                family_name: f[1].map(str::to_string),
                birth_date: f[2].map(str::to_string),
                ..Attributes::default()
            },
        }
    }

    fn resolver() -> Resolver {
        resolver_matching(Matching::Probabilistic)
    }

    fn resolver_matching(matching: Matching) -> Resolver {
        Resolver::new(
            MatchParameters::default(),
            Box::new(NoTermFrequency),
            ResolverConfig {
                matching,
                ..ResolverConfig::default()
            },
        )
    }

    /// `spec`'s input as the reader prepares it for `matching`.
    fn input(id: RecordId, spec: &str, matching: Matching) -> ResolverInput {
        let v = view(&format!("r{id:03}"), spec);
        ResolverInput::of_parts(
            &v.source,
            &v.source_id,
            &v.identifiers,
            &v.attributes,
            matching,
        )
    }

    #[test]
    fn identifier_matching_links_shared_identifiers_only() {
        // Same person by name and birth date, no shared identifier; and a shared email
        // between records whose names barely agree (an initial, no family name).
        let records = [
            (1, "Jon Smith 1980-01-02 jon@x.com -"),
            (2, "John Smith 1980-01-02 jsmith@y.com -"),
            (3, "Ann Lee - ann@x.com -"),
            (4, "A - - ann@x.com +14155550100"),
        ];
        let mut scored = resolver();
        let mut next = 1;
        ingest(&mut scored, &mut next, &records);
        assert_eq!(
            scored.customer_of(1),
            scored.customer_of(2),
            "scoring links 1-2"
        );

        for prepared_for in [Matching::Probabilistic, Matching::Identifiers] {
            let mut r = resolver_matching(Matching::Identifiers);
            let mut next = 1;
            for (id, spec) in records {
                r.upsert(id, input(id, spec, prepared_for));
            }
            let res = r.resolve(&mut next);
            assert_eq!(groups(&r), set(&[&[1], &[2], &[3, 4]]), "{prepared_for:?}");
            // Only the pair sharing a key was looked at, and it links at identifier_weight.
            assert_eq!(res.pairs_scored, 1);
            assert_eq!(res.evidence.len(), 1);
            assert_eq!((res.evidence[0].a, res.evidence[0].b), (3, 4));
            assert_eq!(res.evidence[0].status, LinkStatus::Accepted);
            assert_eq!(
                res.evidence[0].weight,
                Some(ResolverConfig::default().identifier_weight)
            );
        }
    }

    /// Identifier matching links on the values, not on their 64-bit key hashes alone.
    #[test]
    fn shared_identifiers_are_checked_on_the_values() {
        let f = |spec: &str, external: Option<&str>| {
            let mut v = view("x", spec);
            if let Some(e) = external {
                v.identifiers.push(ident(IdentifierKind::External, e));
            }
            Features::of(&v)
        };
        let ann = f("Ann Lee - ann@x.com +14155550100", Some("crm:1"));
        for (other, shares) in [
            (f("- - - ann@x.com -", None), true),
            (f("- - - - +14155550100", None), true),
            (f("- - - - -", Some("crm:1")), true),
            (f("Ann Lee - ann@y.com +14155550101", Some("crm:2")), false),
            (f("- - - - -", Some("billing:1")), false),
        ] {
            assert_eq!(ann.shares_identifier(&other), shares, "{other:?}");
            assert_eq!(other.shares_identifier(&ann), shares, "{other:?}");
        }
        // A generic value is parked: it no longer counts as shared.
        let mut switchboard = f("- - - - +14155550100", None);
        switchboard.set_generic("phone", "+14155550100", true);
        assert!(!ann.shares_identifier(&switchboard));
        // Two different emails whose key hashes collide share a block, and do not link (no
        // names: no guard stands in the way).
        let mut r = resolver_matching(Matching::Identifiers);
        let a = input(1, "- - - ann@x.com -", Matching::Identifiers);
        let mut b = input(2, "- - - bob@y.com -", Matching::Identifiers);
        b.hashes = a.hashes.clone();
        r.upsert(1, a);
        r.upsert(2, b);
        let res = r.resolve(&mut 1);
        assert_eq!(res.pairs_scored, 1, "the collision made them candidates");
        assert_eq!(groups(&r), set(&[&[1], &[2]]));
    }

    #[test]
    fn identifier_matching_keeps_guards_and_generic_values() {
        let mut r = resolver_matching(Matching::Identifiers);
        let mut next = 1;
        // A couple sharing a mailbox: the given-name guard refuses the link.
        let res = ingest(
            &mut r,
            &mut next,
            &[(1, "Ann Lee - home@x.com -"), (2, "Bob Lee - home@x.com -")],
        );
        assert_eq!(groups(&r), set(&[&[1], &[2]]));
        assert!(
            res.evidence
                .iter()
                .any(|e| e.status == LinkStatus::Refused(Guard::GivenName))
        );
        // A switchboard: more than generic_value_names different names stop it linking.
        ingest(
            &mut r,
            &mut next,
            &[
                (3, "Carl Ek - - +14155550199"),
                (4, "Dora Fox - - +14155550199"),
                (5, "Eve Gill - - +14155550199"),
                (6, "Finn Hale - - +14155550199"),
            ],
        );
        assert!(r.is_generic("phone", "+14155550199"));
        assert_eq!(groups(&r).len(), 6);
    }

    /// Ingest `(id, spec)` records one batch, resolve; returns the resolution.
    fn ingest(r: &mut Resolver, next: &mut i64, records: &[(RecordId, &str)]) -> Resolution {
        for (id, spec) in records {
            r.upsert(*id, ResolverInput::of(&view(&format!("r{id:03}"), spec)));
        }
        r.resolve(next)
    }

    /// The partition as sets of record ids, ids dropped.
    fn groups(r: &Resolver) -> BTreeSet<BTreeSet<RecordId>> {
        r.partition().into_values().collect()
    }

    fn set(ids: &[&[RecordId]]) -> BTreeSet<BTreeSet<RecordId>> {
        ids.iter().map(|g| g.iter().copied().collect()).collect()
    }

    #[test]
    fn value_keys_are_told_from_other_keys() {
        for (label, want) in [
            ("email=ann@x.com", Some("email")),
            ("external=crm:42", Some("external")),
            ("loyalty=a=b", Some("loyalty")),
            ("phone_last7:5550100", None),
            ("postal_house:94110:12=a", None),
            ("family_year:L000:1980", None),
            ("nothing", None),
        ] {
            assert_eq!(value_kind(label), want, "{label}");
        }
    }

    #[test]
    fn records_are_found_whatever_their_ids() {
        // Negative and far-off ids live outside the dense vector; 70_000 goes there first and
        // stays there after the vector grows past it.
        let mut r = resolver();
        let mut next = 1;
        let twins = "Ann Lee 1980-01-02 ann@x.com +14155550100";
        ingest(&mut r, &mut next, &[(70_000, twins), (-7, twins)]);
        let many: Vec<(RecordId, String)> = (1..=3000)
            .map(|i| (i, format!("P{i} Q{i} - p{i}@y.com -")))
            .collect();
        let refs: Vec<(RecordId, &str)> = many.iter().map(|(i, s)| (*i, s.as_str())).collect();
        ingest(&mut r, &mut next, &refs);
        ingest(&mut r, &mut next, &[(71_000, twins), (i64::MAX, twins)]);
        assert_eq!(r.len(), 3004);
        let ann = r.customer_of(70_000).expect("held");
        for id in [-7, 71_000, i64::MAX] {
            assert_eq!(r.customer_of(id), Some(ann), "{id}");
        }
        assert_eq!(r.record_ids().len(), 3004);
        r.remove(70_000);
        r.resolve(&mut next);
        assert_eq!(r.customer_of(70_000), None);
        assert_eq!(r.len(), 3003);
        assert_eq!(r.customer_of(71_000), r.customer_of(-7));
    }

    #[test]
    fn same_person_merges_into_the_oldest_id_and_keeps_it() {
        let mut r = resolver();
        let mut next = 1;
        ingest(
            &mut r,
            &mut next,
            &[(1, "John Smith 1980-01-02 john@x.com -")],
        );
        ingest(&mut r, &mut next, &[(2, "Jon Smith - - +14155550100")]);
        assert_eq!(groups(&r), set(&[&[1], &[2]]), "a phone alone is no link");
        let res = ingest(
            &mut r,
            &mut next,
            &[(3, "Johnny Smith 1980-01-02 john@x.com +14155550100")],
        );
        assert_eq!(groups(&r), set(&[&[1, 2, 3]]));
        assert_eq!(r.customer_of(3), Some(1), "the oldest id survives");
        let merged = res.changes.iter().find(|c| c.customer == 2).unwrap();
        assert_eq!(merged.status, CustomerStatus::MergedInto { into: 1 });
        let kept = res.changes.iter().find(|c| c.customer == 1).unwrap();
        assert_eq!(kept.absorbed, vec![2]);
        assert!(
            res.evidence
                .iter()
                .filter(|e| e.status == LinkStatus::Accepted)
                .count()
                >= 2
        );
    }

    #[test]
    fn household_sharing_an_email_stays_apart_and_is_kept_for_review() {
        let mut r = resolver();
        let mut next = 1;
        let res = ingest(
            &mut r,
            &mut next,
            &[
                (1, "John Smith 1980-01-02 family@x.com -"),
                (2, "Mary Smith 1982-07-09 family@x.com -"),
            ],
        );
        assert_eq!(groups(&r), set(&[&[1], &[2]]));
        // Shared email + same family name: possible at most, never a link.
        assert!(
            res.evidence
                .iter()
                .all(|e| e.status != LinkStatus::Accepted)
        );
    }

    #[test]
    fn a_switchboard_number_becomes_generic_and_stops_linking() {
        let mut r = resolver();
        let mut next = 1;
        let names = ["Ann", "Bob", "Carl", "Dora", "Emil"];
        let records: Vec<(RecordId, String)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (i as RecordId + 1, format!("{n} Lee - - +14155550199")))
            .collect();
        let borrowed: Vec<(RecordId, &str)> =
            records.iter().map(|(i, s)| (*i, s.as_str())).collect();
        let res = ingest(&mut r, &mut next, &borrowed);
        assert_eq!(groups(&r).len(), 5);
        assert_eq!(r.generic_values(), 1);
        assert!(res.flips.iter().any(|f| matches!(
            f,
            KeyFlip::Generic { value, generic: true, .. } if value == "+14155550199"
        )));
        assert!(
            r.is_generic("phone", "+14155550199"),
            "the generic value no longer links"
        );
    }

    #[test]
    fn removing_the_bridge_splits_and_the_largest_part_keeps_the_id() {
        let mut r = resolver();
        let mut next = 1;
        // 1 and 2 share an email; 3 and 4 share another; 5 carries both and bridges them.
        ingest(
            &mut r,
            &mut next,
            &[
                (1, "Ann Lee - a@x.com -"),
                (2, "Ann Lee - a@x.com -"),
                (3, "Ann Lee - b@x.com -"),
                (4, "Ann Lee - b@x.com -"),
                (6, "Ann Lee - b@x.com -"),
            ],
        );
        assert_eq!(groups(&r), set(&[&[1, 2], &[3, 4, 6]]));
        let small = r.customer_of(1).unwrap();
        let large = r.customer_of(3).unwrap();
        r.upsert(5, {
            let mut v = view("r005", "Ann Lee - a@x.com -");
            v.identifiers.push(ident(IdentifierKind::Email, "b@x.com"));
            ResolverInput::of(&v)
        });
        r.resolve(&mut next);
        assert_eq!(groups(&r), set(&[&[1, 2, 3, 4, 5, 6]]));
        assert_eq!(r.customer_of(5), Some(small.min(large)));
        let survivor = small.min(large);
        r.remove(5);
        let res = r.resolve(&mut next);
        assert_eq!(groups(&r), set(&[&[1, 2], &[3, 4, 6]]));
        // The larger part keeps the surviving id; the other part gets its own old id back.
        assert_eq!(r.customer_of(3), Some(survivor));
        let other = r.customer_of(1).unwrap();
        assert_ne!(other, survivor);
        let ch = res.changes.iter().find(|c| c.customer == survivor).unwrap();
        assert_eq!(ch.split_off, vec![other]);
    }

    #[test]
    fn curator_overrides_win() {
        let mut r = resolver();
        let mut next = 1;
        ingest(
            &mut r,
            &mut next,
            &[
                (1, "Ann Lee - a@x.com -"),
                (2, "Ann Lee - a@x.com -"),
                (3, "Zed Kim 1950-05-05 - -"),
            ],
        );
        assert_eq!(groups(&r), set(&[&[1, 2], &[3]]));
        r.never_merge(1, 2);
        let res = r.resolve(&mut next);
        assert_eq!(groups(&r), set(&[&[1], &[2], &[3]]));
        assert!(
            res.evidence.iter().any(|e| e.a == 1
                && e.b == 2
                && e.status == LinkStatus::Refused(Guard::NeverMerge))
        );
        r.force_merge(2, 3);
        r.resolve(&mut next);
        assert_eq!(groups(&r), set(&[&[1], &[2, 3]]));
        r.force_merge(1, 2);
        r.detach(3);
        r.resolve(&mut next);
        // Force-merge beats the earlier never-merge; detach refuses links but not force-merges.
        assert_eq!(groups(&r), set(&[&[1, 2, 3]]));
    }

    #[test]
    fn unique_kinds_and_birth_dates_veto_merges() {
        let mut r = Resolver::new(
            MatchParameters::default(),
            Box::new(NoTermFrequency),
            ResolverConfig {
                unique_kinds: vec!["national_id".into()],
                ..ResolverConfig::default()
            },
        );
        let mut next = 1;
        let nid = |v: &str| ident(IdentifierKind::Custom("national_id".into()), v);
        let mut a = view("a", "Ann Lee - a@x.com -");
        a.identifiers.push(nid("111"));
        let mut b = view("b", "Ann Lee - a@x.com -");
        b.identifiers.push(nid("222"));
        r.upsert(1, ResolverInput::of(&a));
        r.upsert(2, ResolverInput::of(&b));
        let res = r.resolve(&mut next);
        assert_eq!(groups(&r), set(&[&[1], &[2]]));
        assert!(
            res.evidence
                .iter()
                .any(|e| e.status == LinkStatus::Refused(Guard::UniqueKind))
        );
        // A chain through a record without a birth date cannot join two different birth dates.
        ingest(
            &mut r,
            &mut next,
            &[
                (3, "Bo Ek 1970-01-01 bo@x.com -"),
                (4, "Bo Ek - bo@x.com bo2@x.com"),
            ],
        );
        let mut c = view("c", "Bo Ek 1985-06-30 bo2@x.com -");
        c.identifiers[0].kind = IdentifierKind::Email;
        r.upsert(5, ResolverInput::of(&c));
        r.resolve(&mut next);
        assert_ne!(r.customer_of(3), r.customer_of(5));
    }

    #[test]
    fn the_fast_total_is_the_explained_total() {
        let r = resolver();
        let views: Vec<RecordView> = order::POOL
            .iter()
            .enumerate()
            .map(|(i, spec)| view(&format!("r{i}"), spec))
            .collect();
        // With and without family-name frequencies (a common and a rare name, one unknown).
        let frequencies: BTreeMap<String, f64> =
            [("smith".to_string(), 0.02), ("ek".to_string(), 1e-6)].into();
        let tables: [&dyn TermFrequency; 2] = [&NoTermFrequency, &frequencies];
        let mut adjusted = 0;
        for tf in tables {
            for a in &views {
                for b in &views {
                    let (fa, fb) = (Features::of(a), Features::of(b));
                    let explained = score_features(&fa, &fb, &r.params, tf, 20.0);
                    let fast = r.weights.total(&fa, &fb, tf, 20.0);
                    assert_eq!(
                        fast.to_bits(),
                        explained.total_weight.to_bits(),
                        "{a:?} {b:?}"
                    );
                    let plain = score_features(&fa, &fb, &r.params, &NoTermFrequency, 20.0);
                    adjusted += usize::from(plain.total_weight != explained.total_weight);
                }
            }
        }
        assert!(adjusted > 0, "the frequencies changed some weights");
    }

    mod order {
        use super::*;
        use proptest::prelude::*;

        /// A small pool of overlapping people: shared emails, phones, nicknames, households.
        pub(super) const POOL: &[&str] = &[
            "John Smith 1980-01-02 john@x.com +14155550100",
            "Jon Smith 1980-01-02 - +14155550100",
            "Johnny Smith - john@x.com -",
            "Mary Smith 1982-07-09 john@x.com +14155550100",
            "Mary Smith 1982-07-09 mary@y.com -",
            "Bill Jones 1975-03-04 bill@z.com +14155550111",
            "William Jones 1975-03-04 wj@z.com +14155550111",
            "Will Jones - bill@z.com -",
            "Ann Lee - ann@x.com +14155550199",
            "Bob Lee - bob@x.com +14155550199",
            "Carl Lee - carl@x.com +14155550199",
            "Dora Lee - dora@x.com +14155550199",
            "Ann Lee - ann@x.com -",
            "Sue Park 1990-10-10 sue@p.com -",
            "Sue Park 1990-01-10 sue@p.com -",
        ];

        fn partition_of(order: &[usize], cuts: &[usize]) -> BTreeSet<BTreeSet<RecordId>> {
            partition_matching(order, cuts, Matching::Probabilistic)
        }

        fn partition_matching(
            order: &[usize],
            cuts: &[usize],
            matching: Matching,
        ) -> BTreeSet<BTreeSet<RecordId>> {
            let mut r = resolver_matching(matching);
            let mut next = 1;
            let mut start = 0;
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (order.len() + 1)).collect();
            bounds.push(order.len());
            bounds.sort_unstable();
            for end in bounds {
                for &i in &order[start.min(end)..end] {
                    r.upsert(i as RecordId, input(i as RecordId, POOL[i], matching));
                }
                r.resolve(&mut next);
                start = start.max(end);
            }
            groups(&r)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn any_order_and_batching_gives_the_same_partition(
                order in Just((0..POOL.len()).collect::<Vec<_>>()).prop_shuffle(),
                cuts in proptest::collection::vec(0usize..20, 0..5),
            ) {
                let reference = partition_of(&(0..POOL.len()).collect::<Vec<_>>(), &[]);
                prop_assert_eq!(partition_of(&order, &cuts), reference);
            }

            #[test]
            fn identifier_matching_is_order_independent_too(
                order in Just((0..POOL.len()).collect::<Vec<_>>()).prop_shuffle(),
                cuts in proptest::collection::vec(0usize..20, 0..5),
            ) {
                let all = (0..POOL.len()).collect::<Vec<_>>();
                let reference = partition_matching(&all, &[], Matching::Identifiers);
                prop_assert_eq!(
                    partition_matching(&order, &cuts, Matching::Identifiers),
                    reference
                );
            }
        }
    }
}
