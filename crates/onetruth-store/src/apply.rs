//! The batch `apply` transaction: records, identifiers, links, events, changelog and the
//! connector checkpoint commit together or not at all.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;

use onetruth_model::{Event, Op, SourceRecord};
use onetruth_resolve::resolver::ResolverInput;
use onetruth_resolve::resolver::{
    CustomerChange, CustomerStatus, KeyFlip, LinkStatus, PairEvidence, RecordId,
};
use onetruth_resolve::score::MatchParameters;
use onetruth_resolve::{IdentifierPolicy, Matching, Resolver, ResolverConfig};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;

use crate::codec::StoredRecord;
use crate::schema::{content_hash, identifier_key_columns};
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

/// Where one stream of a connector stands (a Kafka partition, a file, an HTTP stream): written
/// in the transaction of the records it covers, so a restart resumes exactly after them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamCheckpoint {
    /// The stream within the connector; `""` for a connector with one stream.
    pub stream: String,
    /// Opaque to everything but the connector.
    pub position: String,
}

/// What to run once a batch's transaction has committed: the acknowledgement to its source
/// (a Kafka offset commit, a webhook's 2xx). Dropped without being run when the transaction
/// does not commit, which the source reads as "not acknowledged".
pub struct OnCommit(Box<dyn FnOnce() + Send>);

impl OnCommit {
    pub fn new(f: impl FnOnce() + Send + 'static) -> OnCommit {
        OnCommit(Box::new(f))
    }

    pub(crate) fn run(self) {
        (self.0)()
    }
}

impl std::fmt::Debug for OnCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnCommit")
    }
}

/// One unit of durable progress for one connector.
#[derive(Debug, Default)]
pub struct Batch {
    /// The connector whose checkpoints this batch advances.
    pub connector: String,
    pub records: Vec<SourceRecord>,
    pub quarantine: Vec<QuarantineEntry>,
    /// Where each stream the batch read from stands after its last record.
    pub checkpoints: Vec<StreamCheckpoint>,
    /// Run after the transaction holding the batch commits, never before.
    pub on_commit: Option<OnCommit>,
    /// Quarantined records (source, position) this batch applied after all (a replay):
    /// removed from the quarantine in the same transaction.
    pub released: Vec<(String, String)>,
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
    /// Customers absorbed into another one.
    pub merges: u64,
    /// Customers whose records went to more than one customer.
    pub splits: u64,
    /// Candidate pairs the matcher scored.
    pub pairs_scored: u64,
}

impl std::ops::AddAssign for ApplySummary {
    fn add_assign(&mut self, o: Self) {
        self.applied += o.applied;
        self.unchanged += o.unchanged;
        self.quarantined += o.quarantined;
        self.customers_created += o.customers_created;
        self.merges += o.merges;
        self.splits += o.splits;
        self.pairs_scored += o.pairs_scored;
    }
}

/// A record made ready for the writer: placeholders screened, encoded, content hashed.
/// Preparing is pure CPU work, so the ingest pipeline does it off the writer thread.
#[derive(Debug, Clone)]
pub struct PreparedRecord {
    source: String,
    source_id: String,
    version: i64,
    deleted: bool,
    /// The record's rows in the identifier index: `(identifier_key, linkable)`. Computed here
    /// (as are the event rows) so the writer only binds them, and the identifiers' strings are
    /// freed by the thread that made them (its attributes live only in `record` and in
    /// `resolver_input`).
    identifier_keys: Vec<((i64, i64), bool)>,
    events: Vec<PreparedEvent>,
    /// What the resolver needs (features, blocking keys), for entity records; computed here,
    /// off the writer thread.
    resolver_input: Option<ResolverInput>,
    /// Whether it describes a customer (identifiers or attributes), i.e. is not event-only.
    is_entity: bool,
    /// The canonical part, encoded ([`StoredRecord::encode`]).
    record: Vec<u8>,
    raw_json: Option<String>,
    hash: i64,
    /// [`key_hash`] of `(source, source_id)`.
    key_hash: u64,
}

/// An event's row in `events`, with the keys of its linkable identifiers.
#[derive(Debug, Clone)]
struct PreparedEvent {
    kind: String,
    occurred_at: String,
    /// The details, JSON.
    data: String,
    identifier_keys: Vec<(i64, i64)>,
}

impl PreparedEvent {
    fn of(e: Event) -> PreparedEvent {
        PreparedEvent {
            identifier_keys: e
                .identifiers
                .iter()
                .filter(|i| i.linkable)
                .map(|i| identifier_key_columns(i.kind.as_str(), &i.value))
                .collect(),
            // A Map of Values always serializes.
            data: serde_json::to_string(&e.data).unwrap_or_default(),
            kind: e.kind,
            occurred_at: e.occurred_at,
        }
    }
}

/// A [`Batch`] after [`Batch::prepare`].
#[derive(Debug, Default)]
pub struct PreparedBatch {
    connector: String,
    /// What the resolver inputs were computed for.
    matching: Matching,
    records: Vec<PreparedRecord>,
    quarantine: Vec<QuarantineEntry>,
    checkpoints: Vec<StreamCheckpoint>,
    on_commit: Option<OnCommit>,
    released: Vec<(String, String)>,
    /// A write that is not records: planned alone, in stream order.
    command: Option<WriteCommand>,
    /// More input was queued behind this batch (see [`PreparedBatch::set_backlog`]).
    backlog: bool,
}

/// A write a running stream applies between its record groups, on its warm resolver (what
/// `curate` and `reresolve` do on a store of their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteCommand {
    /// [`Store::curate`].
    Curate(CuratorDecision),
    /// [`Store::reresolve`].
    Reresolve,
}

impl PreparedBatch {
    /// A batch that carries `command` instead of records, for [`Store::apply_stream`];
    /// `on_commit` runs once it is committed.
    pub fn command(command: WriteCommand, on_commit: Option<OnCommit>) -> PreparedBatch {
        PreparedBatch {
            command: Some(command),
            on_commit,
            ..PreparedBatch::default()
        }
    }

    /// Mark the batch as part of a backlog: input was queued behind it when it was taken. A
    /// stream's writer then keeps its transaction open up to the backlog interval
    /// ([`Store::set_stream_backlog_interval`]) instead of the live one.
    pub fn set_backlog(&mut self, backlog: bool) {
        self.backlog = backlog;
    }

    pub(crate) fn is_backlog(&self) -> bool {
        self.backlog
    }

    /// The command this batch carries, if any.
    pub(crate) fn write_command(&self) -> Option<WriteCommand> {
        self.command
    }

    /// Takes what must run once this batch's transaction commits.
    pub(crate) fn take_on_commit(&mut self) -> Option<OnCommit> {
        self.on_commit.take()
    }
}

impl Batch {
    /// Screen identifiers with `policy` and serialize every record. The resolver inputs hold
    /// every blocking key, right for a store in either [`Matching`] mode.
    pub fn prepare(self, policy: &IdentifierPolicy) -> PreparedBatch {
        self.prepare_for(policy, Matching::Probabilistic)
    }

    /// [`Batch::prepare`] for a store whose resolver uses `matching`: with
    /// [`Matching::Identifiers`] the resolver inputs hold only identifier keys and what the
    /// guards read (a probabilistic store recomputes them when it stages the batch).
    pub fn prepare_for(self, policy: &IdentifierPolicy, matching: Matching) -> PreparedBatch {
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
                let record = stored.to_bytes();
                let hash = content_hash(&record, deleted);
                let is_entity =
                    !deleted && (!stored.identifiers.is_empty() || !stored.attributes.is_empty());
                let resolver_input = is_entity.then(|| {
                    ResolverInput::of_parts(
                        &r.source,
                        &r.source_id,
                        &stored.identifiers,
                        &stored.attributes,
                        matching,
                    )
                });
                PreparedRecord {
                    key_hash: key_hash(&r.source, &r.source_id),
                    resolver_input,
                    source: r.source,
                    source_id: r.source_id,
                    version: r.version,
                    deleted,
                    is_entity,
                    identifier_keys: stored
                        .identifiers
                        .iter()
                        .map(|i| {
                            (
                                identifier_key_columns(i.kind.as_str(), &i.value),
                                i.linkable,
                            )
                        })
                        .collect(),
                    events: stored.events.into_iter().map(PreparedEvent::of).collect(),
                    record,
                    // The text as delivered when the transport kept it; otherwise serialized
                    // (serde_json::to_string writes bytes directly; Value's Display goes
                    // through fmt::Write and costs twice as much. A Value always serializes).
                    raw_json: r.raw_text.or_else(|| {
                        (!r.raw.is_null())
                            .then(|| serde_json::to_string(&r.raw).unwrap_or_default())
                    }),
                    hash,
                }
            })
            .collect();
        PreparedBatch {
            connector: self.connector,
            matching,
            records,
            quarantine: self.quarantine,
            checkpoints: self.checkpoints,
            on_commit: self.on_commit,
            released: self.released,
            command: None,
            backlog: false,
        }
    }
}

/// A curator's decision about stored records (by record id, see [`Store::record_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CuratorDecision {
    /// The two records are different people.
    NeverMerge(i64, i64),
    /// The two records are one person.
    ForceMerge(i64, i64),
    /// The record stands alone: it takes no links (force-merges still apply).
    Detach(i64),
}

/// What is stored for a record key.
pub(crate) struct Existing {
    id: i64,
    version: i64,
    hash: i64,
}

/// Look a record key up in the tables.
pub(crate) fn lookup_existing(
    conn: &rusqlite::Connection,
    rec: &PreparedRecord,
) -> Result<Option<Existing>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, version, content_hash FROM source_records WHERE source = ?1 AND source_id = ?2",
        )?
        .query_row(params![rec.source, rec.source_id], |r| {
            Ok(Existing {
                id: r.get(0)?,
                version: r.get(1)?,
                hash: r.get(2)?,
            })
        })
        .optional()?)
}

/// A record version that staging decided to write.
struct PlannedRecord {
    /// Where it is in the group: batch index, record index.
    batch: usize,
    index: usize,
    id: RecordId,
    /// Whether a row exists already (update) or not (insert).
    exists: bool,
    /// Its customer after resolution (entity records).
    customer: Option<i64>,
}

/// Ids allocated in memory rather than by AUTOINCREMENT: there is one writer and customer,
/// record and changelog rows are never deleted, so max + 1 never reuses an id and saves a
/// sqlite_sequence write per row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NextIds {
    customer: i64,
    seq: i64,
    record: i64,
}

impl NextIds {
    fn load(conn: &rusqlite::Connection) -> Result<NextIds, StoreError> {
        let next =
            |sql: &str| -> Result<i64, StoreError> { Ok(conn.query_row(sql, [], |r| r.get(0))?) };
        Ok(NextIds {
            customer: next("SELECT coalesce(max(id), 0) + 1 FROM customers")?,
            seq: next("SELECT coalesce(max(seq), 0) + 1 FROM changelog")?,
            record: next("SELECT coalesce(max(id), 0) + 1 FROM source_records")?,
        })
    }
}

/// What staging decided for a group's records, carried from [`Staged`] into [`WritePlan`].
/// It owns the group's batches, so a plan can cross to the SQLite thread.
struct Rows {
    batches: Vec<PreparedBatch>,
    records: Vec<PlannedRecord>,
    /// Stored records whose content is unchanged under a newer version: (batch, index, id).
    version_bumps: Vec<(usize, usize, i64)>,
    /// Stored records replaced by a new version: their old index rows go first.
    replaced: Vec<i64>,
    /// Records with an id at or above this one are new.
    first_new_record: i64,
    summary: ApplySummary,
}

impl Rows {
    /// The batches back as they were prepared, with the resolver inputs staging took
    /// recomputed (from the stored record, as the resolver's loader does, for the matching each
    /// batch was prepared for: staging recomputes a batch's inputs only when that differs from
    /// the store's), for planning again.
    fn into_batches(self) -> Result<Vec<PreparedBatch>, StoreError> {
        let mut batches = self.batches;
        for b in &mut batches {
            for rec in &mut b.records {
                if rec.is_entity && rec.resolver_input.is_none() {
                    rec.resolver_input = Some(resolver_input_of(
                        0,
                        &rec.source,
                        &rec.source_id,
                        &rec.record,
                        b.matching,
                    )?);
                }
            }
        }
        Ok(batches)
    }
}

/// A group after staging: version and content checked against what is stored, record ids
/// allocated, the resolver inputs of new and changed records set aside.
pub(crate) struct Staged {
    rows: Rows,
    /// What the resolver must hear, in order: the record id and where its prepared record is
    /// (batch, index); its resolver input is upserted, or the record removed when it has none.
    /// Positions, not inputs: an input is a few hundred bytes, and moving each one through
    /// intermediate vectors cost 7% of the planner's samples at 1M records.
    feed: Vec<(RecordId, usize, usize)>,
    started: std::time::Instant,
}

impl Staged {
    /// Whether resolving needs the resolver (anything new, changed or deleted).
    pub(crate) fn needs_resolver(&self) -> bool {
        !self.feed.is_empty()
    }

    /// The batches back, for planning again.
    pub(crate) fn into_batches(self) -> Result<Vec<PreparedBatch>, StoreError> {
        self.rows.into_batches()
    }
}

/// A group staged and resolved: every row its transaction writes, decided in memory.
pub(crate) struct WritePlan {
    rows: Rows,
    decision: Option<CuratorDecision>,
    resolution: onetruth_resolve::Resolution,
    /// How the resolution's links were decided (the evidence rows' `kind`).
    matching: Matching,
    /// The changelog seq of the first customer change (one seq per change, in order).
    first_seq: i64,
    /// Time spent staging and resolving, for the debug log.
    pub(crate) staged: std::time::Duration,
    pub(crate) resolved: std::time::Duration,
}

impl WritePlan {
    /// The batches back, for planning again.
    pub(crate) fn into_batches(self) -> Result<Vec<PreparedBatch>, StoreError> {
        self.rows.into_batches()
    }

    /// Takes what must run once the plan's transaction commits, batch by batch in order.
    pub(crate) fn take_on_commit(&mut self) -> Vec<OnCommit> {
        self.rows
            .batches
            .iter_mut()
            .filter_map(PreparedBatch::take_on_commit)
            .collect()
    }

    /// Whether its group was taken from a backlog (its last batch says).
    pub(crate) fn is_backlog(&self) -> bool {
        self.rows
            .batches
            .last()
            .is_some_and(PreparedBatch::is_backlog)
    }

    /// Records in the plan, applied or not.
    pub(crate) fn len(&self) -> u64 {
        self.rows.summary.applied + self.rows.summary.unchanged
    }
}

/// The resolver's view of a record stored as `json` (`id` only names it in errors).
fn resolver_input_of(
    id: i64,
    source: &str,
    source_id: &str,
    record: &[u8],
    matching: Matching,
) -> Result<ResolverInput, StoreError> {
    let stored = StoredRecord::decode(record).map_err(|message| StoreError::Corrupt {
        record_id: id,
        message,
    })?;
    Ok(ResolverInput::of_parts(
        source,
        source_id,
        &stored.identifiers,
        &stored.attributes,
        matching,
    ))
}

/// The writer's in-memory state: the resolver (every live entity record with its blocking keys
/// and scored pairs) and the hashes of every stored record key, so that new records skip the
/// existence lookup. Loaded on the first write and kept while only this connection writes; it
/// is dropped when another connection has written (`PRAGMA data_version`) or a transaction
/// fails, and reloaded from the tables, which hold everything it knows.
pub(crate) struct WriterState {
    /// Loaded on first use, see [`WriterState::ensure_resolver`].
    resolver: Option<Resolver>,
    config: ResolverConfig,
    records: HashSet<u64, BuildHasherDefault<PassThroughHasher>>,
    pub(crate) data_version: i64,
    /// Next customer id, changelog seq and record id after the last plan.
    next_ids: NextIds,
}

/// The active match parameters: the newest row marked active, else the shipped defaults.
pub(crate) fn active_parameters(
    conn: &rusqlite::Connection,
) -> Result<MatchParameters, StoreError> {
    let row: Option<(i64, String)> = conn
        .query_row(
            "SELECT id, params FROM match_parameters WHERE active = 1 ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((id, text)) = row else {
        return Ok(MatchParameters::default());
    };
    let params: MatchParameters =
        serde_json::from_str(&text).map_err(|e| StoreError::Parameters {
            id,
            message: e.to_string(),
        })?;
    params.validate().map_err(|errors| StoreError::Parameters {
        id,
        message: errors.join("; "),
    })?;
    Ok(params)
}

impl WriterState {
    pub(crate) fn load(
        tx: &rusqlite::Connection,
        config: &ResolverConfig,
        data_version: i64,
    ) -> Result<Self, StoreError> {
        let mut records = HashSet::default();
        let mut stmt = tx.prepare("SELECT source, source_id FROM source_records")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let source = r.get_ref(0)?.as_str().unwrap_or_default();
            let source_id = r.get_ref(1)?.as_str().unwrap_or_default();
            records.insert(key_hash(source, source_id));
        }
        Ok(WriterState {
            resolver: None,
            config: config.clone(),
            records,
            data_version,
            next_ids: NextIds::load(tx)?,
        })
    }

    /// Load the resolver from the tables if it is not loaded yet: a write that only meets
    /// unchanged records (a re-run of the same export) never pays for it.
    pub(crate) fn ensure_resolver(
        &mut self,
        conn: &rusqlite::Connection,
    ) -> Result<(), StoreError> {
        if self.resolver.is_none() {
            self.resolver = Some(load_resolver(conn, &self.config)?);
        }
        Ok(())
    }

    pub(crate) fn has_resolver(&self) -> bool {
        self.resolver.is_some()
    }

    /// Whether any record of `batches` may already be stored (its key was seen before).
    pub(crate) fn may_know_any(&self, batches: &[PreparedBatch]) -> bool {
        batches
            .iter()
            .flat_map(|b| &b.records)
            .any(|r| self.records.contains(&r.key_hash))
    }

    /// Check each record against what is stored (`existing` looks up a key that may be
    /// stored) and allocate ids for new ones. Nothing is written.
    pub(crate) fn stage(
        &mut self,
        mut batches: Vec<PreparedBatch>,
        existing: &mut dyn FnMut(&PreparedRecord) -> Result<Option<Existing>, StoreError>,
    ) -> Result<Staged, StoreError> {
        let started = std::time::Instant::now();
        let first_new_record = self.next_ids.record;
        for b in &mut batches {
            // Inputs made for identifier matching lack what scoring reads.
            if b.matching != self.config.matching && self.config.matching == Matching::Probabilistic
            {
                for r in &mut b.records {
                    if r.resolver_input.is_some() {
                        r.resolver_input = Some(resolver_input_of(
                            0,
                            &r.source,
                            &r.source_id,
                            &r.record,
                            Matching::Probabilistic,
                        )?);
                    }
                }
                b.matching = Matching::Probabilistic;
            }
        }
        let total: usize = batches.iter().map(|b| b.records.len()).sum();
        let mut records: Vec<PlannedRecord> = Vec::with_capacity(total);
        let mut version_bumps = Vec::new();
        let mut replaced = Vec::new();
        let mut feed = Vec::with_capacity(total);
        let mut summary = ApplySummary::default();
        {
            // Record key -> index in `records`, for a record seen twice in one group.
            let mut staged: HashMap<StagedKey, usize, BuildHasherDefault<PassThroughHasher>> =
                HashMap::default();
            for (bi, batch) in batches.iter().enumerate() {
                for (ri, rec) in batch.records.iter().enumerate() {
                    let key = StagedKey(rec);
                    if let Some(&i) = staged.get(&key) {
                        // Seen earlier in this group: the newer version replaces it.
                        let p = &mut records[i];
                        if rec.version <= batches[p.batch].records[p.index].version {
                            summary.unchanged += 1;
                            continue;
                        }
                        (p.batch, p.index) = (bi, ri);
                        summary.applied += 1;
                        feed.push((p.id, bi, ri));
                        continue;
                    }
                    // A record key the state has never seen is certainly new: skip the lookup.
                    let maybe_known = !self.records.insert(rec.key_hash);
                    let found = if maybe_known { existing(rec)? } else { None };
                    let id = match &found {
                        Some(e) if rec.version <= e.version => {
                            summary.unchanged += 1;
                            continue;
                        }
                        Some(e) if e.hash == rec.hash => {
                            // Same content under a newer version: remember the version so
                            // older replays stay no-ops, but nothing changed for anyone.
                            version_bumps.push((bi, ri, e.id));
                            summary.unchanged += 1;
                            continue;
                        }
                        Some(e) => {
                            replaced.push(e.id);
                            e.id
                        }
                        None => {
                            let id = self.next_ids.record;
                            self.next_ids.record += 1;
                            id
                        }
                    };
                    staged.insert(key, records.len());
                    records.push(PlannedRecord {
                        batch: bi,
                        index: ri,
                        id,
                        exists: found.is_some(),
                        customer: None,
                    });
                    summary.applied += 1;
                    // A new record without an input (event-only, or a delete of something
                    // never seen) has nothing to resolve.
                    if rec.resolver_input.is_some() || found.is_some() {
                        feed.push((id, bi, ri));
                    }
                }
            }
        }
        Ok(Staged {
            rows: Rows {
                batches,
                records,
                version_bumps,
                replaced,
                first_new_record,
                summary,
            },
            feed,
            started,
        })
    }

    /// Feed a staged group (and a curator decision) to the resolver and resolve it, which
    /// allocates customer ids and changelog seqs. The resolver must be loaded when the group
    /// [needs it](Staged::needs_resolver), when there is a decision, and for `everything`.
    pub(crate) fn resolve(
        &mut self,
        staged: Staged,
        decision: Option<CuratorDecision>,
        everything: bool,
    ) -> WritePlan {
        let Staged {
            mut rows,
            feed,
            started,
        } = staged;
        let staged_in = started.elapsed();
        let resolution = match self.resolver.as_mut() {
            Some(resolver) => {
                for (id, bi, ri) in feed {
                    match rows.batches[bi].records[ri].resolver_input.take() {
                        Some(input) => resolver.upsert(id, input),
                        // Deleted, or an event-only record: it leaves its customer.
                        None => resolver.remove(id),
                    }
                }
                if let Some(d) = decision {
                    let (action, a, b) = d.parts();
                    apply_override(resolver, action, a, b);
                }
                if everything {
                    resolver.mark_all_dirty();
                }
                let res = resolver.resolve(&mut self.next_ids.customer);
                for p in &mut rows.records {
                    if rows.batches[p.batch].records[p.index].is_entity {
                        p.customer = resolver.customer_of(p.id);
                    }
                }
                res
            }
            // Nothing reached the resolver (only event-only records, or nothing new).
            None => onetruth_resolve::Resolution::default(),
        };
        rows.summary.pairs_scored += resolution.pairs_scored;
        let first_seq = self.next_ids.seq;
        self.next_ids.seq += resolution.changes.len() as i64;
        WritePlan {
            rows,
            decision,
            resolution,
            matching: self.config.matching,
            first_seq,
            staged: staged_in,
            resolved: started.elapsed() - staged_in,
        }
    }
}

impl CuratorDecision {
    /// The stored action name and the records it names.
    fn parts(self) -> (&'static str, i64, Option<i64>) {
        match self {
            CuratorDecision::NeverMerge(a, b) => ("never_merge", a, Some(b)),
            CuratorDecision::ForceMerge(a, b) => ("force_merge", a, Some(b)),
            CuratorDecision::Detach(a) => ("detach", a, None),
        }
    }
}

/// Build the resolver from the tables: every live entity record, the stored pairs and the
/// curator decisions. Parsing and preparing records is spread over two threads (the reading
/// thread inserts), which nearly halves the start-up time of a large store.
pub(crate) fn load_resolver(
    tx: &rusqlite::Connection,
    config: &ResolverConfig,
) -> Result<Resolver, StoreError> {
    let started = std::time::Instant::now();
    let params = active_parameters(tx)?;
    // The term-frequency table travels with the parameter version.
    let tf = Box::new(params.term_frequencies.clone());
    let mut resolver = Resolver::new(params.clone(), tf, config.clone());
    resolver.begin_load();
    type Row = (i64, String, String, i64, Vec<u8>);
    type Prepared = Vec<Result<(i64, ResolverInput, i64), StoreError>>;
    let prepare = |rows: Vec<Row>| -> Prepared {
        rows.into_iter()
            .map(|(id, source, source_id, customer, text)| {
                let input = resolver_input_of(id, &source, &source_id, &text, config.matching)?;
                Ok((id, input, customer))
            })
            .collect()
    };
    const CHUNK: usize = 4096;
    std::thread::scope(|scope| -> Result<(), StoreError> {
        let (to_worker, from_reader) = std::sync::mpsc::sync_channel::<Vec<Row>>(4);
        let (to_reader, prepared) = std::sync::mpsc::sync_channel::<Prepared>(4);
        let worker = scope.spawn(move || {
            for chunk in from_reader {
                if to_reader.send(prepare(chunk)).is_err() {
                    break;
                }
            }
        });
        let insert = |chunk: Prepared, resolver: &mut Resolver| -> Result<(), StoreError> {
            for item in chunk {
                let (id, input, customer) = item?;
                resolver.load_record(id, input, customer);
            }
            Ok(())
        };
        // A table scan in id order: through the customer index SQLite would fetch every row
        // at random (a third of the load time at 80k records).
        let mut stmt = tx.prepare(
            "SELECT id, source, source_id, customer_id, record FROM source_records
             NOT INDEXED WHERE customer_id IS NOT NULL",
        )?;
        let mut rows = stmt.query([])?;
        let mut chunk: Vec<Row> = Vec::with_capacity(CHUNK);
        // Alternate: every other chunk goes to the worker, the rest is prepared here.
        let mut to_worker = Some(to_worker);
        let mut turn = false;
        let mut outstanding = 0usize;
        loop {
            let row = rows.next()?;
            if let Some(r) = row {
                chunk.push((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?));
            }
            let done = row.is_none();
            if chunk.len() == CHUNK || (done && !chunk.is_empty()) {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                turn = !turn;
                if turn && let Some(tw) = &to_worker {
                    // The worker's channel is bounded: collect its results as they come so
                    // it never blocks.
                    tw.send(full)
                        .map_err(|_| StoreError::ThreadStopped("the resolver loader thread"))?;
                    outstanding += 1;
                } else {
                    insert(prepare(full), &mut resolver)?;
                }
                while let Ok(ready) = prepared.try_recv() {
                    outstanding -= 1;
                    insert(ready, &mut resolver)?;
                }
            }
            if done {
                break;
            }
        }
        to_worker.take();
        while outstanding > 0 {
            match prepared.recv() {
                Ok(ready) => {
                    outstanding -= 1;
                    insert(ready, &mut resolver)?;
                }
                Err(_) => break,
            }
        }
        let _ = worker.join();
        Ok(())
    })?;
    let mut stmt = tx.prepare(
        "SELECT record_a, record_b, weight, rule FROM evidence WHERE weight IS NOT NULL",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let weight: f64 = r.get(2)?;
        let status = r.get_ref(3)?.as_str().ok().and_then(LinkStatus::parse);
        resolver.load_edge(r.get(0)?, r.get(1)?, weight, params.band(weight), status);
    }
    let mut stmt =
        tx.prepare("SELECT action, record_a, record_b FROM curator_overrides ORDER BY id")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let action: String = r.get(0)?;
        let a: i64 = r.get(1)?;
        let b: Option<i64> = r.get(2)?;
        apply_override(&mut resolver, &action, a, b);
    }
    resolver.finish_load();
    // Seconds at a million records: worth a line in the daemon's log.
    tracing::info!(
        records = resolver.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "resolver loaded from the store"
    );
    Ok(resolver)
}

/// Feed one stored curator decision to the resolver.
pub(crate) fn apply_override(resolver: &mut Resolver, action: &str, a: i64, b: Option<i64>) {
    match (action, b) {
        ("never_merge", Some(b)) => resolver.never_merge(a, b),
        ("force_merge", Some(b)) => resolver.force_merge(a, b),
        ("detach", _) => resolver.detach(a),
        _ => {}
    }
}

impl Store {
    /// Apply a batch in one transaction.
    pub fn apply(&mut self, batch: Batch) -> Result<ApplySummary, StoreError> {
        let prepared = batch.prepare_for(&self.policy, self.resolution.matching);
        self.apply_prepared(prepared)
    }

    /// Apply a batch prepared with this store's policy, in one transaction.
    pub fn apply_prepared(&mut self, batch: PreparedBatch) -> Result<ApplySummary, StoreError> {
        self.apply_group(vec![batch])
    }

    /// Apply several prepared batches in one transaction (group commit), each batch's records,
    /// quarantine and checkpoint in order. The group is resolved as a set: records are staged,
    /// the resolver re-clusters every component they touch once, then rows are written (one
    /// changelog entry per changed customer). A bulk load also commits less often this way:
    /// every commit rewrites each index page it touched.
    pub fn apply_group(&mut self, batches: Vec<PreparedBatch>) -> Result<ApplySummary, StoreError> {
        self.write(batches, None, false)
    }

    /// Re-score every candidate pair with the active parameters and settings and re-cluster
    /// every customer, in one transaction (after `train`, or a change of `[resolution]`).
    /// Customer ids stay stable; merges and splits go to the changelog as usual.
    pub fn reresolve(&mut self) -> Result<ApplySummary, StoreError> {
        self.write(Vec::new(), None, true)
    }

    /// Record a curator decision and re-cluster what it touches, in one transaction. The
    /// decision is kept forever and wins over any evidence; a later decision on the same pair
    /// replaces an earlier one.
    pub fn curate(&mut self, decision: &CuratorDecision) -> Result<ApplySummary, StoreError> {
        self.write(Vec::new(), Some(decision), false)
    }

    /// Load the writer's state and the resolver now rather than at the first write that needs
    /// them (a daemon, so that its first live record does not wait seconds for them). A no-op
    /// when they are loaded and current.
    pub fn warm_up(&mut self) -> Result<(), StoreError> {
        let state = self.state.take();
        let tx = self.conn.transaction()?;
        let version = data_version(&tx)?;
        let mut state = match state {
            Some(s) if s.data_version == version => s,
            _ => WriterState::load(&tx, &self.resolution, version)?,
        };
        state.ensure_resolver(&tx)?;
        drop(tx);
        self.state = Some(state);
        Ok(())
    }

    /// Whether the resolver is loaded (see [`Store::warm_up`]).
    pub fn is_warm(&self) -> bool {
        self.state.as_ref().is_some_and(WriterState::has_resolver)
    }

    fn write(
        &mut self,
        batches: Vec<PreparedBatch>,
        decision: Option<&CuratorDecision>,
        everything: bool,
    ) -> Result<ApplySummary, StoreError> {
        // The state travels with the transaction and comes back only if it commits: a failed
        // transaction leaves the resolver ahead of the tables.
        let state = self.state.take();
        // IMMEDIATE: take the write lock now, so the snapshot read below is the one written to.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version = data_version(&tx)?;
        let mut state = match state {
            Some(s) if s.data_version == version => s,
            // First write, or another connection wrote since our last commit.
            _ => WriterState::load(&tx, &self.resolution, version)?,
        };
        let staged = state.stage(batches, &mut |rec| lookup_existing(&tx, rec))?;
        if staged.needs_resolver() || decision.is_some() || everything {
            state.ensure_resolver(&tx)?;
        }
        let mut plan = state.resolve(staged, decision.copied(), everything);
        let (summary, written) = execute(&tx, &plan)?;
        let acks = plan.take_on_commit();
        let committing = std::time::Instant::now();
        tx.commit()?;
        acks.into_iter().for_each(OnCommit::run);
        log_group(&plan, &summary, written, Some(committing.elapsed()));
        // Our own commits leave data_version unchanged; the next group compares to it.
        state.data_version = data_version(&self.conn)?;
        self.state = Some(state);
        Ok(summary)
    }
}

/// `PRAGMA data_version`: it moves when another connection commits.
pub(crate) fn data_version(conn: &rusqlite::Connection) -> Result<i64, StoreError> {
    // Cached: a single-record apply asks twice, and preparing costs more than the answer.
    Ok(conn
        .prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))?)
}

/// Where a group's time goes (stage: version checks and block index; resolve: scoring and
/// clustering; write: SQL statements; commit, when the group's transaction ends with it), for
/// tuning.
pub(crate) fn log_group(
    plan: &WritePlan,
    summary: &ApplySummary,
    written: std::time::Duration,
    committed: Option<std::time::Duration>,
) {
    tracing::debug!(
        records = plan.len(),
        stage_us = plan.staged.as_micros() as u64,
        resolve_us = plan.resolved.as_micros() as u64,
        write_us = written.as_micros() as u64,
        commit_us = committed.map(|d| d.as_micros() as u64),
        pairs = summary.pairs_scored,
        "group applied"
    );
}

/// Write a plan in `tx` (which the caller commits): records, indexes, customers, changelog,
/// evidence, flips, quarantine and checkpoints. Returns the full summary and the time spent.
pub(crate) fn execute(
    tx: &Transaction,
    plan: &WritePlan,
) -> Result<(ApplySummary, std::time::Duration), StoreError> {
    let started = std::time::Instant::now();
    let now = now_micros();
    let mut summary = plan.rows.summary;
    {
        let mut bump = tx.prepare_cached("UPDATE source_records SET version = ?2 WHERE id = ?1")?;
        for &(b, i, id) in &plan.rows.version_bumps {
            bump.execute(params![id, plan.rows.batches[b].records[i].version])?;
        }
    }
    for &id in &plan.rows.replaced {
        let bytes: Vec<u8> = tx
            .prepare_cached("SELECT record FROM source_records WHERE id = ?1")?
            .query_row(params![id], |r| r.get(0))?;
        let old = StoredRecord::decode(&bytes).map_err(|message| StoreError::Corrupt {
            record_id: id,
            message,
        })?;
        remove_indexes(tx, id, &old)?;
    }
    if let Some(d) = plan.decision {
        let (action, a, b) = d.parts();
        tx.prepare_cached(
            "INSERT INTO curator_overrides (action, record_a, record_b, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![action, a, b, now])?;
    }
    write_resolution(tx, plan, now, &mut summary)?;
    for batch in &plan.rows.batches {
        let mut q = tx.prepare_cached(
            "INSERT INTO quarantine (source, position, raw, reason, first_seen, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT (source, position) DO UPDATE SET raw = ?3, reason = ?4, last_seen = ?5",
        )?;
        for e in &batch.quarantine {
            q.execute(params![e.source, e.position, e.raw, e.reason, now])?;
            summary.quarantined += 1;
        }
        for (source, position) in &batch.released {
            tx.prepare_cached("DELETE FROM quarantine WHERE source = ?1 AND position = ?2")?
                .execute(params![source, position])?;
        }
        for c in &batch.checkpoints {
            tx.prepare_cached(
                "INSERT INTO checkpoints (connector, stream, position, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (connector, stream) DO UPDATE SET position = ?3, updated_at = ?4",
            )?
            .execute(params![batch.connector, c.stream, c.position, now])?;
        }
    }
    Ok((summary, started.elapsed()))
}

/// Hash of a record's `(source, source_id)`, for [`WriterState`].
fn key_hash(source: &str, source_id: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in source.bytes().chain([0u8]).chain(source_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    // FNV's low bits mix poorly; fold the high half in for the hash set.
    h ^ (h >> 29)
}

/// A record's `(source, source_id)`, hashed by its precomputed [`key_hash`].
struct StagedKey<'r>(&'r PreparedRecord);

impl std::hash::Hash for StagedKey<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.key_hash);
    }
}

impl PartialEq for StagedKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.key_hash == other.0.key_hash
            && self.0.source == other.0.source
            && self.0.source_id == other.0.source_id
    }
}

impl Eq for StagedKey<'_> {}

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

/// The rows resolution decided: customers and changelog, records and their indexes,
/// re-assigned records, evidence, customer statuses, flips.
fn write_resolution(
    tx: &Transaction,
    plan: &WritePlan,
    now: i64,
    summary: &mut ApplySummary,
) -> Result<(), StoreError> {
    let res = &plan.resolution;
    // Customer rows first: records reference them. Statements are prepared once per
    // group: looking a long SQL text up in the statement cache per row costs as much as a
    // small insert.
    let mut seqs: HashMap<i64, i64> = HashMap::with_capacity(res.changes.len());
    {
        let mut created: Vec<(i64, i64)> = Vec::new();
        let mut log: Vec<(i64, i64, &str, std::borrow::Cow<str>)> =
            Vec::with_capacity(res.changes.len());
        for (seq, ch) in (plan.first_seq..).zip(&res.changes) {
            let (change, details) = changelog_entry(ch);
            log.push((seq, ch.customer, change, details));
            seqs.insert(ch.customer, seq);
            if ch.created {
                created.push((ch.customer, seq));
                summary.customers_created += 1;
            }
        }
        insert_rows(
            tx,
            (
                "INSERT OR ROLLBACK INTO customers (id, created_at, version) VALUES",
                "(?, ?, ?)",
                "",
            ),
            3,
            &created,
            |stmt, i, (customer, seq)| {
                stmt.raw_bind_parameter(i, customer)?;
                stmt.raw_bind_parameter(i + 1, now)?;
                stmt.raw_bind_parameter(i + 2, seq)
            },
        )?;
        insert_rows(
            tx,
            (
                "INSERT OR ROLLBACK INTO changelog (seq, customer_id, change, details, at) VALUES",
                "(?, ?, ?, ?, ?)",
                "",
            ),
            5,
            &log,
            |stmt, i, (seq, customer, change, details)| {
                stmt.raw_bind_parameter(i, seq)?;
                stmt.raw_bind_parameter(i + 1, customer)?;
                stmt.raw_bind_parameter(i + 2, change)?;
                stmt.raw_bind_parameter(i + 3, details)?;
                stmt.raw_bind_parameter(i + 4, now)
            },
        )?;
    }
    let mut written: HashSet<RecordId> = HashSet::with_capacity(plan.rows.records.len());
    {
        let mut upd = tx.prepare_cached(
            "UPDATE source_records SET version = ?2, deleted = ?3, content_hash = ?4,
                 updated_at = ?5, customer_id = ?6, record = ?7, raw = ?8 WHERE id = ?1",
        )?;
        let mut new: Vec<(&PlannedRecord, &PreparedRecord)> = Vec::new();
        let mut idx = Indexes::prepare(tx)?;
        for p in &plan.rows.records {
            let rec = &plan.rows.batches[p.batch].records[p.index];
            let customer = p.customer;
            written.insert(p.id);
            if p.exists {
                upd.execute(params![
                    p.id,
                    rec.version,
                    rec.deleted,
                    rec.hash,
                    now,
                    customer,
                    rec.record,
                    rec.raw_json
                ])?;
            } else {
                new.push((p, rec));
            }
        }
        insert_rows(
            tx,
            (
                "INSERT OR ROLLBACK INTO source_records
                 (id, source, source_id, version, deleted, content_hash, first_seen, updated_at, customer_id, record, raw)
                 VALUES",
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                "",
            ),
            11,
            &new,
            |stmt, i, (p, rec)| {
                stmt.raw_bind_parameter(i, p.id)?;
                stmt.raw_bind_parameter(i + 1, &rec.source)?;
                stmt.raw_bind_parameter(i + 2, &rec.source_id)?;
                stmt.raw_bind_parameter(i + 3, rec.version)?;
                stmt.raw_bind_parameter(i + 4, rec.deleted)?;
                stmt.raw_bind_parameter(i + 5, rec.hash)?;
                stmt.raw_bind_parameter(i + 6, now)?;
                stmt.raw_bind_parameter(i + 7, now)?;
                stmt.raw_bind_parameter(i + 8, p.customer)?;
                stmt.raw_bind_parameter(i + 9, &rec.record)?;
                stmt.raw_bind_parameter(i + 10, &rec.raw_json)
            },
        )?;
        // Events reference their record's row, so they go in after it.
        for p in &plan.rows.records {
            idx.write(p.id, &plan.rows.batches[p.batch].records[p.index])?;
        }
        idx.flush(tx)?;
    }
    {
        let mut upd =
            tx.prepare_cached("UPDATE source_records SET customer_id = ?2 WHERE id = ?1")?;
        // In id order, like the evidence and identifier rows: each statement then lands next
        // to the previous one in the B-tree instead of on a random page.
        let mut moved: Vec<&(RecordId, i64)> = res
            .assignments
            .iter()
            .filter(|(id, _)| !written.contains(id))
            .collect();
        moved.sort_unstable();
        for (id, customer) in moved {
            upd.execute(params![id, customer])?;
        }
    }
    {
        let mut del_a = tx.prepare_cached("DELETE FROM evidence WHERE record_a = ?1")?;
        let mut del_b = tx.prepare_cached("DELETE FROM evidence WHERE record_b = ?1")?;
        for id in res
            .rewritten
            .iter()
            .filter(|id| **id < plan.rows.first_new_record)
        {
            del_a.execute(params![id])?;
            del_b.execute(params![id])?;
        }
        let mut evidence: Vec<&PairEvidence> = res.evidence.iter().collect();
        // Stable: were a pair listed twice, the later decision must still win.
        evidence.sort_by_key(|e| (e.a, e.b));
        insert_rows(
            tx,
            (
                "INSERT OR ROLLBACK INTO evidence (record_a, record_b, kind, rule, weight, accepted, created_at) VALUES",
                "(?, ?, ?, ?, ?, ?, ?)",
                "ON CONFLICT (record_a, record_b) DO UPDATE SET kind = excluded.kind,
                 rule = excluded.rule, weight = excluded.weight, accepted = excluded.accepted,
                 created_at = excluded.created_at",
            ),
            7,
            &evidence,
            |stmt, i, e| {
                let kind = match (e.status, plan.matching) {
                    (LinkStatus::Forced, _) => "curator",
                    (_, Matching::Identifiers) => "identifier",
                    (_, Matching::Probabilistic) => "probabilistic",
                };
                let accepted = matches!(e.status, LinkStatus::Accepted | LinkStatus::Forced);
                stmt.raw_bind_parameter(i, e.a)?;
                stmt.raw_bind_parameter(i + 1, e.b)?;
                stmt.raw_bind_parameter(i + 2, kind)?;
                stmt.raw_bind_parameter(i + 3, e.status.as_str())?;
                stmt.raw_bind_parameter(i + 4, e.weight)?;
                stmt.raw_bind_parameter(i + 5, accepted)?;
                stmt.raw_bind_parameter(i + 6, now)
            },
        )?;
    }
    for ch in &res.changes {
        let seq = seqs[&ch.customer];
        match &ch.status {
            // A new customer's row was inserted with its version above.
            CustomerStatus::Active if ch.created => {}
            CustomerStatus::Active => {
                tx
                        .prepare_cached("UPDATE customers SET version = ?2, status = 'active', merged_into = NULL WHERE id = ?1")?
                        .execute(params![ch.customer, seq])?;
            }
            CustomerStatus::MergedInto { into } => {
                // Aliases of the absorbed id now point straight at the survivor (one hop).
                tx.prepare_cached("UPDATE customers SET merged_into = ?2 WHERE merged_into = ?1")?
                    .execute(params![ch.customer, into])?;
                tx
                        .prepare_cached("UPDATE customers SET status = 'merged', merged_into = ?2, version = ?3 WHERE id = ?1")?
                        .execute(params![ch.customer, into, seq])?;
                summary.merges += 1;
            }
            CustomerStatus::SplitInto { .. } => {
                tx
                        .prepare_cached("UPDATE customers SET status = 'split', merged_into = NULL, version = ?2 WHERE id = ?1")?
                        .execute(params![ch.customer, seq])?;
                summary.splits += 1;
            }
            CustomerStatus::Empty => {
                tx
                        .prepare_cached("UPDATE customers SET status = 'empty', merged_into = NULL, version = ?2 WHERE id = ?1")?
                        .execute(params![ch.customer, seq])?;
            }
        }
        if ch.status == CustomerStatus::Active && !ch.split_off.is_empty() {
            summary.splits += 1;
        }
    }
    for flip in &res.flips {
        match flip {
            KeyFlip::Generic {
                kind,
                value,
                names,
                records,
                generic: true,
            } => {
                tx
                        .prepare_cached(
                            "INSERT INTO generic_values (kind, value, names, records, since) VALUES (?1, ?2, ?3, ?4, ?5)
                             ON CONFLICT (kind, value) DO UPDATE SET names = ?3, records = ?4",
                        )?
                        .execute(params![kind, value, *names as i64, *records as i64, now])?;
            }
            KeyFlip::Generic { kind, value, .. } => {
                tx.prepare_cached("DELETE FROM generic_values WHERE kind = ?1 AND value = ?2")?
                    .execute(params![kind, value])?;
            }
            KeyFlip::Overflow {
                key,
                records,
                overflowed: true,
            } => {
                tx.prepare_cached(
                    "INSERT INTO block_overflows (key, records, since) VALUES (?1, ?2, ?3)
                             ON CONFLICT (key) DO UPDATE SET records = ?2",
                )?
                .execute(params![key, *records as i64, now])?;
            }
            KeyFlip::Overflow { key, .. } => {
                tx.prepare_cached("DELETE FROM block_overflows WHERE key = ?1")?
                    .execute(params![key])?;
            }
        }
    }
    Ok(())
}
/// The change name and details JSON of a customer's changelog row.
fn changelog_entry(ch: &CustomerChange) -> (&'static str, std::borrow::Cow<'static, str>) {
    let change = match &ch.status {
        CustomerStatus::MergedInto { .. } => "merged_into",
        CustomerStatus::SplitInto { .. } => "split_into",
        CustomerStatus::Empty => "emptied",
        CustomerStatus::Active if ch.created => "created",
        CustomerStatus::Active if !ch.absorbed.is_empty() => "merged",
        CustomerStatus::Active if !ch.split_off.is_empty() => "split",
        CustomerStatus::Active => "updated",
    };
    let plain = matches!(ch.status, CustomerStatus::Active)
        && ch.absorbed.is_empty()
        && ch.split_off.is_empty();
    if plain {
        // Most changes (created, updated) have no details: no map to build.
        return (change, "{}".into());
    }
    let mut details = serde_json::Map::new();
    match &ch.status {
        CustomerStatus::MergedInto { into } => {
            details.insert("into".into(), (*into).into());
        }
        CustomerStatus::SplitInto { into } => {
            details.insert("into".into(), into.clone().into());
        }
        _ => {}
    }
    if !ch.absorbed.is_empty() {
        details.insert("absorbed".into(), ch.absorbed.clone().into());
    }
    if ch.status == CustomerStatus::Active && !ch.split_off.is_empty() {
        details.insert("split_off".into(), ch.split_off.clone().into());
    }
    (
        change,
        serde_json::Value::Object(details).to_string().into(),
    )
}

/// Rows per multi-row insert. A group inserts millions of small rows, and per-statement
/// overhead (step, reset, halt) cost as much as their B-tree work.
const ROWS_PER_INSERT: usize = 64;

/// `head (row), (row), ... tail` with `n` rows.
fn multi_row_sql(head: &str, row: &str, tail: &str, n: usize) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + n * (row.len() + 2));
    sql.push_str(head);
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// Insert `rows` with [`ROWS_PER_INSERT`] rows per statement (the rest one by one):
/// `head VALUES-rows tail`, where `row` has `per_row` positional `?` parameters and
/// `bind(statement, first, row)` binds one row's from index `first` (1-based). `tail` may
/// hold an `ON CONFLICT` clause (using `excluded.`); rows then upsert in order, as if
/// inserted one by one.
///
/// The bulk statements say `INSERT OR ROLLBACK`: a failed row fails the whole transaction
/// (which is what the caller does with any error anyway), so SQLite keeps no statement
/// journal to undo just the failed statement (a copy of every page a multi-row statement
/// touches, 5% of the writer thread in bulk loads with foreign-key checks off).
fn insert_rows<T>(
    tx: &Transaction,
    (head, row, tail): (&str, &str, &str),
    per_row: usize,
    rows: &[T],
    mut bind: impl FnMut(&mut rusqlite::Statement, usize, &T) -> rusqlite::Result<()>,
) -> Result<(), StoreError> {
    let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
    if chunks.len() > 0 {
        let mut stmt = tx.prepare_cached(&multi_row_sql(head, row, tail, ROWS_PER_INSERT))?;
        for chunk in &mut chunks {
            for (i, r) in chunk.iter().enumerate() {
                bind(&mut stmt, i * per_row + 1, r)?;
            }
            stmt.raw_execute()?;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut stmt = tx.prepare_cached(&multi_row_sql(head, row, tail, 1))?;
        for r in rest {
            bind(&mut stmt, 1, r)?;
            stmt.raw_execute()?;
        }
    }
    Ok(())
}

/// The statements that index written records' identifiers and events, prepared once.
/// Identifier rows are buffered and inserted in key order by [`Indexes::flush`]: the index is
/// keyed by value, so rows in record order land on random pages, while sorted rows walk the
/// B-tree once (a third less time per row at 300k records).
struct Indexes<'t> {
    event: rusqlite::CachedStatement<'t>,
    event_identifier: rusqlite::CachedStatement<'t>,
    /// (identifier key, record id, linkable)
    identifiers: Vec<((i64, i64), i64, bool)>,
    /// (identifier key, record id, event seq)
    event_identifiers: Vec<((i64, i64), i64, i64)>,
}

impl<'t> Indexes<'t> {
    fn prepare(tx: &'t Transaction) -> Result<Self, StoreError> {
        Ok(Indexes {
            identifiers: Vec::new(),
            event_identifiers: Vec::new(),
            event: tx.prepare_cached(
                "INSERT INTO events (record_id, seq, kind, occurred_at, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            event_identifier: tx.prepare_cached(
                "INSERT OR IGNORE INTO event_identifiers (key_hi, key_lo, record_id, seq) VALUES (?1, ?2, ?3, ?4)",
            )?,
        })
    }

    fn write(&mut self, record_id: i64, rec: &PreparedRecord) -> Result<(), StoreError> {
        for (key, linkable) in &rec.identifier_keys {
            self.identifiers.push((*key, record_id, *linkable));
        }
        for (seq, e) in rec.events.iter().enumerate() {
            self.event.execute(params![
                record_id,
                seq as i64,
                e.kind,
                e.occurred_at,
                e.data
            ])?;
            for key in &e.identifier_keys {
                self.event_identifiers.push((*key, record_id, seq as i64));
            }
        }
        Ok(())
    }

    /// Insert the buffered identifier rows, in index order.
    fn flush(mut self, tx: &'t Transaction) -> Result<(), StoreError> {
        self.identifiers.sort_unstable();
        insert_rows(
            tx,
            (
                "INSERT OR IGNORE INTO identifiers (key_hi, key_lo, record_id, linkable) VALUES",
                "(?, ?, ?, ?)",
                "",
            ),
            4,
            &self.identifiers,
            |stmt, i, ((hi, lo), record_id, linkable)| {
                stmt.raw_bind_parameter(i, hi)?;
                stmt.raw_bind_parameter(i + 1, lo)?;
                stmt.raw_bind_parameter(i + 2, record_id)?;
                stmt.raw_bind_parameter(i + 3, linkable)
            },
        )?;
        self.event_identifiers.sort_unstable();
        for ((hi, lo), record_id, seq) in &self.event_identifiers {
            self.event_identifier
                .execute(params![hi, lo, record_id, seq])?;
        }
        Ok(())
    }
}

fn remove_indexes(tx: &Transaction, record_id: i64, old: &StoredRecord) -> Result<(), StoreError> {
    let mut del = tx.prepare_cached(
        "DELETE FROM identifiers WHERE key_hi = ?1 AND key_lo = ?2 AND record_id = ?3",
    )?;
    for id in &old.identifiers {
        let (hi, lo) = identifier_key_columns(id.kind.as_str(), &id.value);
        del.execute(params![hi, lo, record_id])?;
    }
    let mut del_ev = tx.prepare_cached(
        "DELETE FROM event_identifiers WHERE key_hi = ?1 AND key_lo = ?2 AND record_id = ?3",
    )?;
    for e in &old.events {
        for id in &e.identifiers {
            let (hi, lo) = identifier_key_columns(id.kind.as_str(), &id.value);
            del_ev.execute(params![hi, lo, record_id])?;
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
