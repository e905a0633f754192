//! The pipelined writer for bulk ingest: this thread stages and resolves group N+1 while a
//! second thread writes group N, so resolution and SQLite use both cores. Each group is
//! written whole with its checkpoint, and the result is the one [`Store::apply_group`] gives
//! group by group.
//!
//! A transaction holds whole groups: the writer commits when it holds
//! [`StreamCommit::records`] records or its first group is [`StreamCommit::interval`] old, and
//! whenever the planner must read the tables. Every commit rewrites the random-order index pages
//! it touched, so fewer, larger commits write fewer bytes.
//!
//! The planning thread reads the tables through its own read-only connection, and only after
//! the writer has committed what it holds (a group that may hold stored records, loading the
//! resolver, and the end of the stream ask for it), so it never sees a half-written group. If
//! another connection writes between two transactions (`PRAGMA data_version` moves), the plan
//! that would open the next one comes back, the state is reloaded from the tables and the
//! groups are planned again.
//!
//! A third thread copies the WAL into the database file while the writer commits
//! (`WalCheckpoints`).
//!
//! Written groups can go back to the thread that prepared their batches
//! ([`Store::set_stream_spent`]), to be freed there.

use std::collections::VecDeque;
use std::sync::mpsc;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::apply::{WritePlan, WriterState, data_version, execute, log_group, lookup_existing};
use crate::{ApplySummary, OnCommit, PreparedBatch, Store, StoreError, WriteCommand};

/// What the planner asks of the SQLite thread.
enum ToWriter {
    /// Write this group (one answer: `Written`, `Conflict` or `Failed`).
    Plan(Box<WritePlan>),
    /// Commit what is written (one answer: `Committed` or `Failed`).
    Commit,
}

/// What the SQLite thread answers.
enum Outcome {
    /// The group is written; `committed` says whether its transaction is committed yet.
    Written {
        summary: ApplySummary,
        committed: bool,
    },
    /// Nothing written is left uncommitted.
    Committed,
    /// Another connection wrote since the last commit: the plan was not written.
    Conflict(Box<WritePlan>),
    Failed(StoreError),
}

/// A group [`Store::apply_stream`]'s writer has written, handed back through
/// [`Store::set_stream_spent`]. It holds nothing the caller can use: dropping it frees the
/// group's batches and resolution.
pub struct SpentGroup(#[allow(dead_code)] Box<WritePlan>);

/// When a stream's writer commits (see the module docs). Groups of one transaction are all
/// committed or all rolled back, with the last one's connector checkpoint; a crash loses at
/// most what one transaction holds, and the checkpoint says where to resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCommit {
    /// Commit once the transaction holds this many records (default 50,000).
    pub records: u64,
    /// Commit once the oldest uncommitted group was written this long ago (default 1 s),
    /// even if no group follows. Zero commits every group. A group marked as part of a
    /// backlog ([`PreparedBatch::set_backlog`]) stretches this to
    /// [`Store::set_stream_backlog_interval`]: a daemon commits live changes within a
    /// fraction of a second and a backlog in large groups.
    pub interval: std::time::Duration,
}

impl Default for StreamCommit {
    fn default() -> Self {
        StreamCommit {
            records: 50_000,
            interval: std::time::Duration::from_secs(1),
        }
    }
}

impl Store {
    /// WAL pages after which [`Store::apply_stream`]'s writer checkpoints, between two
    /// groups (default 40,000: 320 MiB). Lower keeps the WAL file smaller; higher copies each
    /// often-rewritten index page to the database file less often.
    pub fn set_stream_checkpoint_pages(&mut self, pages: u32) {
        self.stream_checkpoint_pages = pages;
    }

    /// When [`Store::apply_stream`]'s writer commits (default [`StreamCommit::default`]).
    pub fn set_stream_commit(&mut self, commit: StreamCommit) {
        self.stream_commit = commit;
    }

    /// A flag [`Store::apply_stream`]'s writer raises when it fails. The planner learns of a
    /// failure only when it hands over its next group; a caller whose groups come from live
    /// sources (which may send nothing for a long time) watches this flag and ends its groups
    /// iterator, so that the failure comes back at once. Used by the next `apply_stream` only.
    pub fn set_stream_failure_flag(&mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        self.stream_failed = Some(flag);
    }

    /// How long a transaction may stay open while the groups it holds are part of a backlog
    /// (see [`PreparedBatch::set_backlog`]); default: [`StreamCommit::interval`].
    pub fn set_stream_backlog_interval(&mut self, interval: std::time::Duration) {
        self.stream_backlog_interval = Some(interval);
    }

    /// Where [`Store::apply_stream`]'s writer sends each group once written, instead of
    /// freeing it (default: nowhere, it frees them). Hand them to the thread that prepared
    /// the batches and drop them there: mimalloc frees a block fastest on the thread that
    /// allocated it, and at a million records the writer's cross-thread frees, with the
    /// preparing thread collecting them, cost 3 – 5% of a bulk ingest's CPU. A group the sink
    /// no longer takes (its receiver dropped) is freed by the writer. Used by the next
    /// [`Store::apply_stream`] only.
    pub fn set_stream_spent(&mut self, sink: Option<mpsc::Sender<SpentGroup>>) {
        self.stream_spent = sink;
    }

    /// Apply groups of prepared batches, each written like [`Store::apply_group`] and
    /// committed as [`Store::set_stream_commit`] says, with resolving and writing overlapped
    /// on two threads. For bulk ingest; returns the summary of every group once all are
    /// committed.
    pub fn apply_stream(
        &mut self,
        groups: impl Iterator<Item = Vec<PreparedBatch>>,
    ) -> Result<ApplySummary, StoreError> {
        let state = self.state.take();
        let version = data_version(&self.conn)?;
        let state = match state {
            Some(s) if s.data_version == version => s,
            _ => {
                let tx = self.conn.transaction()?;
                WriterState::load(&tx, &self.resolution, version)?
            }
        };
        let reader = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader.busy_timeout(std::time::Duration::from_secs(10))?;
        let resolution = self.resolution.clone();
        // Foreign-key checks cost a seek per reference (6% of a bulk load's instructions).
        // The plans are written by the same code as `apply_group`, which runs with the checks
        // on (and is what the tests check them with); they come back on at the end.
        self.conn.execute_batch("PRAGMA foreign_keys = OFF")?;
        // The stream checkpoints on its own schedule (`WalCheckpoints`): the hook, which tells
        // the writer the WAL's size, replaces the automatic checkpoint, which would run inside
        // the commit.
        self.conn.wal_hook(Some(note_wal_pages));
        let conn = &mut self.conn;
        let checkpointer = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        checkpointer.busy_timeout(std::time::Duration::from_secs(10))?;
        let (result, state) = std::thread::scope(|scope| {
            let (to_writer, plans) = mpsc::sync_channel::<ToWriter>(1);
            let (to_planner, outcomes) = mpsc::channel::<Outcome>();
            let (wake, woken) = mpsc::sync_channel::<()>(1);
            let (copied, done) = mpsc::channel::<()>();
            scope.spawn(move || checkpoint_when_woken(checkpointer, woken, copied));
            let checkpoint_pages = self.stream_checkpoint_pages;
            let commit = self.stream_commit;
            let backlog_interval = self.stream_backlog_interval.unwrap_or(commit.interval);
            let spent = self.stream_spent.take();
            let failed = self.stream_failed.take();
            let writer = scope.spawn(move || {
                let checkpoint = WalCheckpoints {
                    pages: checkpoint_pages,
                    wake,
                    done,
                    copying: false,
                };
                let commit = CommitPolicy {
                    records: commit.records,
                    live: commit.interval,
                    backlog: backlog_interval,
                };
                let written =
                    write_plans(conn, version, commit, checkpoint, plans, to_planner, spent);
                if let Some(flag) = failed {
                    flag.store(true, std::sync::atomic::Ordering::Release);
                }
                written
            });
            let mut planner = Planner {
                state,
                reader: &reader,
                resolution: &resolution,
                outcomes: &outcomes,
                in_flight: false,
                uncommitted: false,
                retry: VecDeque::new(),
                total: ApplySummary::default(),
            };
            let result = planner.run(groups, &to_writer);
            drop(to_writer);
            // The writer ends when the channel closes; its last data_version is the state's.
            let last_version = writer
                .join()
                .unwrap_or(Err(StoreError::ThreadStopped("the store writer thread")));
            let (result, state) = match (result, last_version) {
                (Ok(total), Ok(v)) => {
                    let mut state = planner.state;
                    state.data_version = v;
                    (Ok(total), Some(state))
                }
                (Err(e), _) | (Ok(_), Err(e)) => (Err(e), None),
            };
            (result, state)
        });
        // A failed run drops the state: the resolver may be ahead of the tables.
        self.state = state;
        self.conn.execute_batch(&format!(
            "PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = {}",
            crate::CHECKPOINT_PAGES
        ))?;
        result
    }
}

/// WAL pages after which a stream's writer checkpoints by default (320 MiB; see
/// [`Store::set_stream_checkpoint_pages`]). A stream commits group
/// after group, and each commit rewrites the pages of the random-order indexes (identifiers
/// above all); a longer WAL between checkpoints copies each such page into the database once
/// per checkpoint instead of once per commit or two (a fifth fewer bytes written at 1M
/// records). Not longer still: every page read searches the WAL index.
pub(crate) const STREAM_CHECKPOINT_PAGES: u32 = 40_000;

thread_local! {
    /// Pages in the WAL after this thread's last commit, from SQLite's WAL hook.
    static WAL_PAGES: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// The WAL hook of a stream's writer: SQLite calls it on the committing thread, after the
/// commit, with the WAL's size in pages.
fn note_wal_pages(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.set(pages);
    Ok(())
}

/// The SQLite side: write each plan, unless another connection wrote first, and commit as
/// `commit` says or when the planner asks. Returns the data_version after the last commit.
fn write_plans(
    conn: &Connection,
    mut expected: i64,
    commit: CommitPolicy,
    mut checkpoint: WalCheckpoints,
    plans: mpsc::Receiver<ToWriter>,
    outcomes: mpsc::Sender<Outcome>,
    spent: Option<mpsc::Sender<SpentGroup>>,
) -> Result<i64, StoreError> {
    let mut open: Option<OpenTransaction> = None;
    loop {
        let message = match &open {
            None => plans.recv().ok(),
            Some(t) => {
                match plans.recv_timeout(t.interval.saturating_sub(t.began.elapsed())) {
                    Ok(m) => Some(m),
                    // Nothing came in time: what is written must not wait for the next group.
                    // Nobody asked, so only a failure is answered.
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Some(t) = open.take()
                            && let Err(e) = t.commit(conn, &mut expected)
                        {
                            let _ = outcomes.send(Outcome::Failed(e));
                            break;
                        }
                        checkpoint.after_commit(conn);
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                }
            }
        };
        // The planner commits before it stops; if it stopped on an error, the open
        // transaction is rolled back on drop.
        let Some(message) = message else { break };
        let outcome = match message {
            ToWriter::Commit => match open.take() {
                Some(t) => t.commit(conn, &mut expected).map(|()| Outcome::Committed),
                None => Ok(Outcome::Committed),
            },
            ToWriter::Plan(plan) => (|| -> Result<Outcome, StoreError> {
                if open.is_none() {
                    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
                    let now = data_version(&tx)?;
                    if now != expected {
                        // Rolled back on drop. The planner reloads from what is committed now.
                        expected = now;
                        return Ok(Outcome::Conflict(plan));
                    }
                    open = Some(OpenTransaction {
                        tx,
                        began: std::time::Instant::now(),
                        records: 0,
                        groups: 0,
                        acks: Vec::new(),
                        interval: commit.live,
                    });
                }
                let t = open.as_mut().expect("opened above when there was none");
                let mut plan = plan;
                // The latest group says whether input is still queued behind it.
                t.interval = if plan.is_backlog() {
                    commit.backlog
                } else {
                    commit.live
                };
                let (summary, written) = execute(&t.tx, &plan)?;
                t.acks.extend(plan.take_on_commit());
                t.records += plan.len();
                t.groups += 1;
                log_group(&plan, &summary, written, None);
                if let Some(sink) = &spent {
                    // A closed sink hands the group back in the error: freed here.
                    let _ = sink.send(SpentGroup(plan));
                }
                let due = t.records >= commit.records || t.began.elapsed() >= t.interval;
                if due && let Some(t) = open.take() {
                    t.commit(conn, &mut expected)?;
                }
                Ok(Outcome::Written {
                    summary,
                    committed: open.is_none(),
                })
            })(),
        };
        let failed = outcome.is_err();
        let outcome = outcome.unwrap_or_else(Outcome::Failed);
        if outcomes.send(outcome).is_err() || failed {
            break;
        }
        if open.is_none() {
            checkpoint.after_commit(conn);
        }
    }
    Ok(expected)
}

/// The writer's transaction while it holds groups not yet committed.
struct OpenTransaction<'c> {
    tx: Transaction<'c>,
    began: std::time::Instant,
    records: u64,
    groups: u32,
    /// The groups' acknowledgements, run once the transaction commits (dropped unrun if it
    /// does not).
    acks: Vec<OnCommit>,
    /// How long it may stay open: [`CommitPolicy`]'s live or backlog interval, by its latest
    /// group.
    interval: std::time::Duration,
}

/// When the writer commits: at `records`, or once the transaction is `live` old (`backlog`
/// while its latest group came from a backlog).
#[derive(Clone, Copy)]
struct CommitPolicy {
    records: u64,
    live: std::time::Duration,
    backlog: std::time::Duration,
}

impl OpenTransaction<'_> {
    fn commit(self, conn: &Connection, expected: &mut i64) -> Result<(), StoreError> {
        let committing = std::time::Instant::now();
        self.tx.commit()?;
        self.acks.into_iter().for_each(OnCommit::run);
        tracing::debug!(
            records = self.records,
            groups = self.groups,
            open_us = self.began.elapsed().as_micros() as u64,
            commit_us = committing.elapsed().as_micros() as u64,
            "transaction committed"
        );
        *expected = data_version(conn)?;
        Ok(())
    }
}

/// How a stream's writer keeps the WAL short. Copying a WAL of `pages` pages into the
/// database (and syncing it) takes seconds; done between two transactions, it held up the
/// writer and so the planner and the reader behind it. So the bulk is copied by a passive
/// checkpoint on another thread and connection while the writer goes on committing, and the
/// writer then copies what it committed meanwhile itself, between two transactions: only a
/// checkpoint that leaves no frame behind lets the next transaction restart the WAL.
struct WalCheckpoints {
    /// WAL pages after which the bulk copy starts.
    pages: u32,
    /// Starts a bulk copy on the checkpointer thread.
    wake: mpsc::SyncSender<()>,
    /// The checkpointer's answer: a bulk copy is over.
    done: mpsc::Receiver<()>,
    /// A bulk copy is under way.
    copying: bool,
}

impl WalCheckpoints {
    /// Called by the writer between transactions, after answering the planner.
    fn after_commit(&mut self, conn: &Connection) {
        if self.copying {
            // Past twice the threshold the writer waits for the copy: the WAL stays bounded
            // even when the checkpointer falls behind.
            let done = if i64::from(WAL_PAGES.get()) >= 2 * i64::from(self.pages) {
                self.done.recv().is_ok()
            } else {
                self.done.try_recv().is_ok()
            };
            if done {
                self.copying = false;
                WAL_PAGES.set(0);
                // Passive: it does not wait for the planner's reads (if one holds frames
                // back, the next bulk copy takes them).
                passive_checkpoint(conn, "wal tail checkpointed");
            }
        } else if i64::from(WAL_PAGES.get()) >= i64::from(self.pages) {
            // The checkpointer is gone only if the scope is unwinding.
            self.copying = self.wake.send(()).is_ok();
        }
    }
}

/// The checkpointer thread of a stream: passive checkpoints each time the writer asks, on its
/// own connection, answered when they are over. It copies again what the writer committed
/// during each copy (a few rounds at most), so that the tail the writer copies itself between
/// two transactions stays short: under a live load of many small commits, a tail of a few
/// thousand random pages took the writer half a second, and every change waited for it.
fn checkpoint_when_woken(conn: Connection, woken: mpsc::Receiver<()>, done: mpsc::Sender<()>) {
    for () in woken {
        // A round copies what the WAL held when it began; the next one what was committed
        // while it ran. Stop once a round had little left to copy.
        let mut before = 0;
        for _ in 0..TAIL_ROUNDS {
            match passive_checkpoint(&conn, "wal checkpointed") {
                Some((_, copied)) if copied - before > TAIL_PAGES => before = copied,
                _ => break,
            }
        }
        if done.send(()).is_err() {
            break;
        }
    }
}

/// The checkpointer copies again while its last round copied more than this many pages...
const TAIL_PAGES: i64 = 256;
/// ... at most this many times in all.
const TAIL_ROUNDS: usize = 6;

/// A passive checkpoint, logged at debug: the WAL's size and the pages copied so far. Nothing
/// is lost when one fails: the frames stay in the WAL for the next.
fn passive_checkpoint(conn: &Connection, what: &'static str) -> Option<(i64, i64)> {
    let started = std::time::Instant::now();
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    }) {
        Ok((wal_pages, copied)) => {
            tracing::debug!(
                wal_pages,
                copied,
                checkpoint_us = started.elapsed().as_micros() as u64,
                "{what}"
            );
            Some((wal_pages, copied))
        }
        Err(e) => {
            tracing::warn!(error = %e, "wal checkpoint failed");
            None
        }
    }
}

/// The planning side of [`Store::apply_stream`].
struct Planner<'a> {
    state: WriterState,
    reader: &'a Connection,
    resolution: &'a onetruth_resolve::ResolverConfig,
    outcomes: &'a mpsc::Receiver<Outcome>,
    /// A plan is with the writer and not yet answered.
    in_flight: bool,
    /// The writer may hold written groups it has not committed.
    uncommitted: bool,
    /// Groups to plan again (after a conflict), before new ones.
    retry: VecDeque<Vec<PreparedBatch>>,
    total: ApplySummary,
}

impl Planner<'_> {
    fn run(
        &mut self,
        mut groups: impl Iterator<Item = Vec<PreparedBatch>>,
        to_writer: &mpsc::SyncSender<ToWriter>,
    ) -> Result<ApplySummary, StoreError> {
        loop {
            let Some(mut batches) = self.retry.pop_front().or_else(|| groups.next()) else {
                // The end: wait for the last group and commit it; it may come back.
                match self.flush(to_writer)? {
                    Some(refused) => {
                        self.plan_again(refused, Vec::new())?;
                        continue;
                    }
                    None => break,
                }
            };
            // A command is planned alone: what follows it in the group waits its turn.
            if let Some(i) = batches
                .iter()
                .position(|b| b.write_command().is_some())
                .map(|i| if i == 0 { 1 } else { i })
                && i < batches.len()
            {
                self.retry.push_front(batches.split_off(i));
            }
            let command = match batches.as_slice() {
                [only] => only.write_command(),
                _ => None,
            };
            // Records that may be stored are looked up in the tables: wait for the groups
            // written so far to be committed so the lookup sees them.
            if self.state.may_know_any(&batches)
                && let Some(refused) = self.flush(to_writer)?
            {
                self.plan_again(refused, batches)?;
                continue;
            }
            let staged = self
                .state
                .stage(batches, &mut |rec| lookup_existing(self.reader, rec))?;
            if (staged.needs_resolver() || command.is_some()) && !self.state.has_resolver() {
                // Loading reads the tables too.
                if let Some(refused) = self.flush(to_writer)? {
                    self.plan_again(refused, staged.into_batches()?)?;
                    continue;
                }
                self.state.ensure_resolver(self.reader)?;
            }
            let plan = match command {
                None => self.state.resolve(staged, None, false),
                Some(WriteCommand::Curate(d)) => self.state.resolve(staged, Some(d), false),
                Some(WriteCommand::Reresolve) => self.state.resolve(staged, None, true),
            };
            // One plan in flight: a refused plan never has to unwind more than the one at hand.
            if let Some(refused) = self.settle()? {
                self.plan_again(refused, plan.into_batches()?)?;
                continue;
            }
            if to_writer.send(ToWriter::Plan(Box::new(plan))).is_err() {
                return Err(self.writer_stopped());
            }
            self.in_flight = true;
        }
        Ok(self.total)
    }

    /// Wait for the plan in flight, if any. Returns it if the writer refused it because
    /// another connection wrote first.
    fn settle(&mut self) -> Result<Option<Box<WritePlan>>, StoreError> {
        if !self.in_flight {
            return Ok(None);
        }
        self.in_flight = false;
        match self.outcomes.recv() {
            Ok(Outcome::Written { summary, committed }) => {
                self.total += summary;
                self.uncommitted = !committed;
                Ok(None)
            }
            // Refused only at the start of a transaction: everything before is committed.
            Ok(Outcome::Conflict(plan)) => {
                self.uncommitted = false;
                Ok(Some(plan))
            }
            Ok(Outcome::Failed(e)) => Err(e),
            // `Committed` answers only `flush`, which waits for it itself.
            Ok(Outcome::Committed) | Err(_) => {
                Err(StoreError::ThreadStopped("the store writer thread"))
            }
        }
    }

    /// [`Planner::settle`], then have the writer commit what it holds: the planner is about to
    /// read the tables, or the stream is over.
    fn flush(
        &mut self,
        to_writer: &mpsc::SyncSender<ToWriter>,
    ) -> Result<Option<Box<WritePlan>>, StoreError> {
        if let Some(refused) = self.settle()? {
            return Ok(Some(refused));
        }
        if self.uncommitted {
            // The writer may have committed on its own meanwhile; it answers all the same.
            self.uncommitted = false;
            if to_writer.send(ToWriter::Commit).is_err() {
                return Err(self.writer_stopped());
            }
            match self.outcomes.recv() {
                Ok(Outcome::Committed) => {}
                Ok(Outcome::Failed(e)) => return Err(e),
                Ok(_) | Err(_) => return Err(StoreError::ThreadStopped("the store writer thread")),
            }
        }
        Ok(None)
    }

    /// Why the writer stopped taking messages: its last outcome says.
    fn writer_stopped(&self) -> StoreError {
        match self.outcomes.recv() {
            Ok(Outcome::Failed(e)) => e,
            _ => StoreError::ThreadStopped("the store writer thread"),
        }
    }

    /// After a refused plan: queue its group and the current one (in that order) to be
    /// planned again, and reload the state from what is committed now.
    fn plan_again(
        &mut self,
        refused: Box<WritePlan>,
        current: Vec<PreparedBatch>,
    ) -> Result<(), StoreError> {
        tracing::debug!("another connection wrote during the ingest; planning again");
        if !current.is_empty() {
            self.retry.push_front(current);
        }
        self.retry.push_front(refused.into_batches()?);
        let version = data_version(self.reader)?;
        self.state = WriterState::load(self.reader, self.resolution, version)?;
        Ok(())
    }
}
