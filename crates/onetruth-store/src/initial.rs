//! A store's first load, written as a new file beside the store's path and moved into place
//! whole.
//!
//! A store that does not exist yet has nothing to protect, so its first load needs neither a
//! WAL nor a rollback journal: [`InitialLoad`] writes `PATH.loading` with `journal_mode = OFF`
//! and `synchronous = OFF` (every page written once, no fsync until the end), then switches the
//! file to WAL, syncs it and links it to `PATH`. Until then `PATH` does not exist; a load that
//! fails or is interrupted leaves no store (the next run starts over), never a half-written one.
//! The same writer code runs as for any ingest, so the rows are the ones a WAL-mode load writes.
//!
//! `PATH.loading` is locked (`flock`) for the whole load: a second process that finds it
//! locked is refused, one that finds it unlocked (left by a crash) starts it over.
//!
//! Without fsyncs the kernel holds the whole file as dirty pages (its background writeback
//! starts at a tenth of RAM), and syncing it at the end took 2 of 21 s at 1M records with both
//! cores idle; a thread syncs it every second instead, so the disk writes while the load
//! computes.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use crate::{Journal, Store, StoreError, StoreOptions, StreamCommit};

/// A store being written for the first time; see the module docs.
pub struct InitialLoad {
    /// `None` once [`InitialLoad::finish`] has closed it.
    store: Option<Store>,
    target: PathBuf,
    loading: PathBuf,
    /// The open `PATH.loading`, holding the lock. Closed last (no other descriptor of it is
    /// opened or closed meanwhile): closing any descriptor of a file drops the process's POSIX
    /// locks on it, which are SQLite's while a connection is open.
    lock: Arc<File>,
    /// Stops the thread that syncs the file every second (dropping it does too).
    flusher: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
    finished: bool,
}

/// Files SQLite may keep beside a database; a crash can leave them next to `PATH.loading`.
const SIDE_FILES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// How often the load's file is synced while it is written. Often: the last commit writes
/// the page cache's dirty pages (up to `cache_mib`), and syncing while it does so left
/// 0.2 – 0.25 s for the final sync at 1M records instead of 0.3 – 0.45 s with a 1 s period.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// The most page cache a first load uses, MiB. Nothing reads the store while it loads, and
/// without a journal every cached page is dirty until the final commit writes it: a larger
/// cache only makes that last write and its sync longer. At 1M records, 128 instead of 256
/// took 0.25 GiB off the peak and a third off the kernel time, with the same user time.
pub const INITIAL_LOAD_CACHE_MIB: u32 = 128;

impl InitialLoad {
    /// Start the first load of the store at `path`, or `Ok(None)` when it exists already (write
    /// it the usual way then).
    pub fn begin(path: &Path, options: StoreOptions) -> Result<Option<InitialLoad>, StoreError> {
        if path.exists() {
            return Ok(None);
        }
        let loading = loading_path(path);
        let io = |e: std::io::Error| StoreError::Io {
            path: loading.clone(),
            cause: e,
        };
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&loading)
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::LoadInProgress {
                    path: path.to_path_buf(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Another process may have finished a first load between the check above and the lock;
        // the file opened here is then an empty one of ours.
        if path.exists() {
            let _ = std::fs::remove_file(&loading);
            return Ok(None);
        }
        // What a crashed load left behind is of no use: start from an empty file.
        lock.set_len(0).map_err(io)?;
        for suffix in SIDE_FILES {
            let stale = sibling(&loading, suffix);
            match std::fs::remove_file(&stale) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StoreError::Io {
                        path: stale,
                        cause: e,
                    });
                }
            }
        }
        let options = StoreOptions {
            cache_mib: options.cache_mib.min(INITIAL_LOAD_CACHE_MIB),
            ..options
        };
        let mut store = Store::open_with(&loading, options, Journal::Off)?;
        // Nothing is durable before `finish`, so a commit would only write pages that change
        // again later: commit when the planner must read the tables, and at the end (6 – 8%
        // less time at 1M records than the default of 50,000 records or 1 s).
        store.set_stream_commit(StreamCommit {
            records: u64::MAX,
            interval: Duration::MAX,
        });
        let lock = Arc::new(lock);
        let (stop, stopped) = mpsc::channel::<()>();
        let file = Arc::clone(&lock);
        let flusher = std::thread::Builder::new()
            .name("onetruth-flush".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(FLUSH_EVERY) {
                    // Only makes the final sync shorter: an error here shows up there.
                    let _ = file.sync_data();
                }
            })
            .map_err(io)?;
        Ok(Some(InitialLoad {
            store: Some(store),
            target: path.to_path_buf(),
            loading,
            lock,
            flusher: Some((stop, flusher)),
            finished: false,
        }))
    }

    /// The store being written (at `PATH.loading`).
    pub fn store(&mut self) -> &mut Store {
        // Invariant: `store` is only taken by `finish`, which consumes `self`.
        self.store.as_mut().expect("the store is open until finish")
    }

    /// Make the load the store at its path: switch the file to WAL, sync it, and link it into
    /// place. Fails, discarding the load, if something created the path meanwhile.
    pub fn finish(mut self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        if let Some(store) = self.store.take() {
            // Leaves the file in WAL mode (its header says so), as every store is; the last
            // connection to close removes the empty WAL.
            store.conn.execute_batch("PRAGMA journal_mode = WAL")?;
            drop(store);
        }
        let closed = started.elapsed();
        self.stop_flusher();
        let flusher_stopped = started.elapsed();
        let io = |path: &Path, e: std::io::Error| StoreError::Io {
            path: path.to_path_buf(),
            cause: e,
        };
        self.lock.sync_all().map_err(|e| io(&self.loading, e))?;
        let synced = started.elapsed();
        // A hard link never replaces: if another process created the store meanwhile, its
        // store stays and this load is discarded (by `drop`).
        match std::fs::hard_link(&self.loading, &self.target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::CreatedDuringLoad {
                    path: self.target.clone(),
                });
            }
            // File systems without hard links: rename, which replaces, after checking again.
            Err(_) if !self.target.exists() => {
                std::fs::rename(&self.loading, &self.target).map_err(|e| io(&self.target, e))?
            }
            Err(e) => return Err(io(&self.target, e)),
        }
        self.finished = true;
        let _ = std::fs::remove_file(&self.loading);
        if let Some(dir) = self.target.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            // The new directory entry is durable only once the directory is synced.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io(dir, e))?;
        }
        tracing::debug!(
            close_us = closed.as_micros() as u64,
            flusher_us = (flusher_stopped - closed).as_micros() as u64,
            sync_us = (synced - flusher_stopped).as_micros() as u64,
            link_us = (started.elapsed() - synced).as_micros() as u64,
            "first load moved into place"
        );
        Ok(())
    }
}

impl Drop for InitialLoad {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // A load that did not finish is discarded: close it, then remove what it wrote.
        self.store = None;
        self.stop_flusher();
        let _ = std::fs::remove_file(&self.loading);
        for suffix in SIDE_FILES {
            let _ = std::fs::remove_file(sibling(&self.loading, suffix));
        }
    }
}

impl InitialLoad {
    /// Ends the syncing thread (before the final sync, or when the load is discarded).
    fn stop_flusher(&mut self) {
        if let Some((stop, thread)) = self.flusher.take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}

/// Where the first load of the store at `path` is written.
pub(crate) fn loading_path(path: &Path) -> PathBuf {
    sibling(path, ".loading")
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_kib(load: &mut InitialLoad) -> i64 {
        load.store()
            .conn
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_first_load_caps_the_page_cache_and_keeps_a_smaller_one() {
        let dir = tempfile::tempdir().unwrap();
        let cap = i64::from(INITIAL_LOAD_CACHE_MIB);
        for (name, cache_mib, want_mib) in [("a.db", 256, cap), ("b.db", 16, 16)] {
            let options = StoreOptions {
                cache_mib,
                ..StoreOptions::default()
            };
            let mut load = InitialLoad::begin(&dir.path().join(name), options)
                .unwrap()
                .expect("no store yet");
            assert_eq!(
                cache_kib(&mut load),
                -want_mib * 1024,
                "{cache_mib} MiB asked"
            );
        }
    }
}
