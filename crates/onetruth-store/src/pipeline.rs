//! The pipelined writer for bulk ingest: this thread stages and resolves group N+1 while a
//! second thread writes and commits group N, so resolution and SQLite use both cores. Each
//! group is still one transaction with its checkpoint, and the result is the one
//! [`Store::apply_group`] gives group by group.
//!
//! The planning thread reads the tables through its own read-only connection, and only when
//! nothing is in flight (a group that may hold stored records, and loading the resolver, wait
//! for the previous commit), so it never sees a half-written group. If another connection
//! writes meanwhile (`PRAGMA data_version` moves), the plan it would have overwritten comes
//! back, the state is reloaded from the tables and the groups are planned again.

use std::collections::VecDeque;
use std::sync::mpsc;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::apply::{WritePlan, WriterState, execute, log_group, lookup_existing};
use crate::{ApplySummary, PreparedBatch, Store, StoreError};

/// What the SQLite thread says about a plan.
enum Outcome {
    Committed(ApplySummary),
    /// Another connection wrote since the last commit: the plan was not written.
    Conflict(Box<WritePlan>),
    Failed(StoreError),
}

fn data_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
}

impl Store {
    /// Apply groups of prepared batches, each in one transaction like
    /// [`Store::apply_group`], with resolving and writing overlapped on two threads. For
    /// bulk ingest; returns the summary of every group.
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
        let conn = &mut self.conn;
        let (result, state) = std::thread::scope(|scope| {
            let (to_writer, plans) = mpsc::sync_channel::<Box<WritePlan>>(1);
            let (to_planner, outcomes) = mpsc::channel::<Outcome>();
            let writer = scope.spawn(move || write_plans(conn, version, plans, to_planner));
            let mut planner = Planner {
                state: Some(state),
                reader: &reader,
                resolution: &resolution,
                outcomes: &outcomes,
                in_flight: false,
                retry: VecDeque::new(),
                total: ApplySummary::default(),
            };
            let result = planner.run(groups, &to_writer);
            drop(to_writer);
            // The writer ends when the channel closes; its last data_version is the state's.
            let last_version = writer
                .join()
                .unwrap_or(Err(StoreError::ThreadStopped("the store writer thread")));
            let state = match (&result, last_version) {
                (Ok(_), Ok(v)) => planner.state.take().map(|mut s| {
                    s.data_version = v;
                    s
                }),
                _ => None,
            };
            (result, state)
        });
        // A failed run drops the state: the resolver may be ahead of the tables.
        self.state = state;
        self.conn.execute_batch("PRAGMA foreign_keys = ON")?;
        result
    }
}

/// The SQLite side: write and commit each plan, unless another connection wrote first.
/// Returns the data_version after the last commit.
fn write_plans(
    conn: &mut Connection,
    mut expected: i64,
    plans: mpsc::Receiver<Box<WritePlan>>,
    outcomes: mpsc::Sender<Outcome>,
) -> Result<i64, StoreError> {
    for plan in plans {
        let outcome = (|| -> Result<Outcome, StoreError> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = data_version(&tx)?;
            if now != expected {
                // Rolled back on drop. The planner reloads from what is committed now.
                expected = now;
                return Ok(Outcome::Conflict(plan));
            }
            let (summary, written) = execute(&tx, &plan)?;
            let committing = std::time::Instant::now();
            tx.commit()?;
            log_group(&plan, &summary, written, committing.elapsed());
            expected = data_version(conn)?;
            Ok(Outcome::Committed(summary))
        })();
        let failed = outcome.is_err();
        let outcome = outcome.unwrap_or_else(Outcome::Failed);
        if outcomes.send(outcome).is_err() || failed {
            break;
        }
    }
    Ok(expected)
}

/// The planning side of [`Store::apply_stream`].
struct Planner<'a> {
    /// `None` only while being replaced after a conflict.
    state: Option<WriterState>,
    reader: &'a Connection,
    resolution: &'a onetruth_resolve::ResolverConfig,
    outcomes: &'a mpsc::Receiver<Outcome>,
    /// A plan is with the writer and not yet answered.
    in_flight: bool,
    /// Groups to plan again (after a conflict), before new ones.
    retry: VecDeque<Vec<PreparedBatch>>,
    total: ApplySummary,
}

impl Planner<'_> {
    fn run(
        &mut self,
        mut groups: impl Iterator<Item = Vec<PreparedBatch>>,
        to_writer: &mpsc::SyncSender<Box<WritePlan>>,
    ) -> Result<ApplySummary, StoreError> {
        loop {
            let Some(batches) = self.retry.pop_front().or_else(|| groups.next()) else {
                // The end: wait for the last commit (which may send its group back).
                if self.settle(|| Ok(Vec::new()))? {
                    break;
                }
                continue;
            };
            let state = self.state.as_mut().expect("state present between groups");
            // Records that may be stored are looked up in the tables: wait for the commit
            // in flight so the lookup sees it.
            let mut held = Some(batches);
            if state.may_know_any(held.as_deref().unwrap_or_default())
                && !self.settle(|| Ok(held.take().expect("taken once")))?
            {
                continue;
            }
            let batches = held.expect("not taken: no conflict");
            let state = self.state.as_mut().expect("state present between groups");
            let staged = state.stage(batches, &mut |rec| lookup_existing(self.reader, rec))?;
            if staged.needs_resolver() && !state.has_resolver() {
                // Loading reads the tables too.
                let mut staged = Some(staged);
                if !self.settle(|| staged.take().expect("taken once").into_batches())? {
                    continue;
                }
                let state = self.state.as_mut().expect("state present between groups");
                state.ensure_resolver(self.reader)?;
                let plan = state.resolve(staged.expect("not taken: no conflict"), None, false);
                self.send(plan, to_writer)?;
                continue;
            }
            let plan = state.resolve(staged, None, false);
            self.send(plan, to_writer)?;
        }
        Ok(self.total)
    }

    /// Hand a plan to the writer once the previous one is committed (one in flight: a
    /// conflict never has to unwind more than the plan at hand).
    fn send(
        &mut self,
        plan: WritePlan,
        to_writer: &mpsc::SyncSender<Box<WritePlan>>,
    ) -> Result<(), StoreError> {
        let mut plan = Some(plan);
        if !self.settle(|| plan.take().expect("taken once").into_batches())? {
            return Ok(());
        }
        let plan = plan.expect("not taken: no conflict");
        if to_writer.send(Box::new(plan)).is_err() {
            // The writer stopped: its outcome says why.
            return match self.outcomes.recv() {
                Ok(Outcome::Failed(e)) => Err(e),
                _ => Err(StoreError::ThreadStopped("the store writer thread")),
            };
        }
        self.in_flight = true;
        Ok(())
    }

    /// Wait for the plan in flight, if any. On a conflict, queue its groups and the current
    /// one (`current` gives its batches back) for planning again, reload the state, and
    /// return false.
    fn settle(
        &mut self,
        current: impl FnOnce() -> Result<Vec<PreparedBatch>, StoreError>,
    ) -> Result<bool, StoreError> {
        if !self.in_flight {
            return Ok(true);
        }
        self.in_flight = false;
        match self.outcomes.recv() {
            Ok(Outcome::Committed(summary)) => {
                self.total += summary;
                Ok(true)
            }
            Ok(Outcome::Conflict(plan)) => {
                tracing::debug!("another connection wrote during the ingest; planning again");
                let current = current()?;
                if !current.is_empty() {
                    self.retry.push_front(current);
                }
                self.retry.push_front(plan.into_batches()?);
                self.state = None;
                let version = data_version(self.reader)?;
                self.state = Some(WriterState::load(self.reader, self.resolution, version)?);
                Ok(false)
            }
            Ok(Outcome::Failed(e)) => Err(e),
            Err(_) => Err(StoreError::ThreadStopped("the store writer thread")),
        }
    }
}
