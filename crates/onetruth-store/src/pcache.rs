//! A thin wrapper around SQLite's own page cache that skips needless truncation scans.
//!
//! When `balance_nonroot` reorders sibling pages it parks one page for a moment at the page
//! number just past the 1 GiB lock byte (`PENDING_BYTE / page_size + 1`, 131 073 for 8 KiB
//! pages). The default cache remembers that key as the largest it has seen, and every commit
//! that follows truncates the cache to the database size: for a database under 1 GiB that
//! visits every hash bucket between the two, tens of thousands of scattered reads with a large
//! cache. At 1M records about one commit in twenty paid about a millisecond for it, which
//! made the single-record p99 latency. This wrapper forwards everything to the default cache
//! and keeps its own bound on the keys that can be present (the transient key aside), so a
//! truncation that can drop nothing is not forwarded.
//!
//! Installed by [`install_page_cache`], first thing in `main`.

use std::ffi::{c_int, c_uint, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::ffi;

/// The byte offset SQLite never stores data at (its lock byte): a fixed part of the file
/// format, 1 GiB.
const PENDING_BYTE: u32 = 0x4000_0000;

/// The default page cache's methods, captured before ours replaced them.
struct Inner(ffi::sqlite3_pcache_methods2);

// SAFETY: the struct holds function pointers and SQLite's `pArg`, which SQLite itself shares
// between threads; it is written once (before installation) and only read afterwards.
unsafe impl Send for Inner {}
unsafe impl Sync for Inner {}

/// Set before our methods are registered, so every call finds it.
static INNER: OnceLock<Inner> = OnceLock::new();

/// Whether our methods are registered.
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Truncations not forwarded because they could not drop a page (for tests and tuning).
static SKIPPED: AtomicU64 = AtomicU64::new(0);

/// One cache: the default cache's handle and what we know about the keys in it.
struct Cache {
    inner: *mut ffi::sqlite3_pcache,
    keys: KeyBound,
}

/// A bound on the keys present in one cache, kept from the calls that give pages keys: a
/// truncation below the bound must be forwarded, one above it can drop nothing.
#[derive(Debug)]
struct KeyBound {
    /// No page outside `temp_key` has a key above this.
    max_key: c_uint,
    /// The key `balance_nonroot` parks pages at while it swaps them.
    temp_key: c_uint,
    /// Pages currently parked at `temp_key`.
    at_temp: u32,
}

impl KeyBound {
    fn new(page_size: c_int) -> Self {
        let temp_key = u32::try_from(page_size)
            .ok()
            .filter(|&s| s > 0)
            .map_or(c_uint::MAX, |s| PENDING_BYTE / s + 1);
        KeyBound {
            max_key: 0,
            temp_key,
            at_temp: 0,
        }
    }

    /// A fetch returned a page at `key`. One fetched at the parked key counts like any
    /// other (SQLite never stores data there, so this is only conservative).
    fn fetched(&mut self, key: c_uint) {
        self.max_key = self.max_key.max(key);
    }

    fn rekeyed(&mut self, old_key: c_uint, new_key: c_uint) {
        if old_key == self.temp_key && self.at_temp > 0 {
            self.at_temp -= 1;
        }
        if new_key == self.temp_key {
            self.at_temp += 1;
        } else {
            self.max_key = self.max_key.max(new_key);
        }
    }

    /// Whether a truncation to `limit` (dropping keys `>= limit`) can drop a page.
    fn may_drop(&self, limit: c_uint) -> bool {
        self.max_key >= limit || (self.at_temp > 0 && self.temp_key >= limit)
    }

    /// The cache was truncated to `limit`.
    fn truncated(&mut self, limit: c_uint) {
        self.max_key = self.max_key.min(limit.saturating_sub(1));
        if self.temp_key >= limit {
            self.at_temp = 0;
        }
    }
}

/// Install the wrapper, once per process. Call it before anything else uses SQLite (first
/// thing in `main`): SQLite's global configuration must not race with another thread's use of
/// SQLite, and once SQLite is initialized the default cache stays (correct, only slower).
/// Returns whether the wrapper is in place.
pub fn install_page_cache() -> bool {
    *INSTALLED.get_or_init(|| {
        let mut methods = std::mem::MaybeUninit::<ffi::sqlite3_pcache_methods2>::zeroed();
        // SAFETY: GETPCACHE2 fills the struct we pass; allowed before initialization (it
        // installs the default cache first if none is configured).
        let rc =
            unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETPCACHE2, methods.as_mut_ptr()) };
        if rc != ffi::SQLITE_OK {
            return false;
        }
        // SAFETY: filled by SQLite above.
        let default = unsafe { methods.assume_init() };
        if default.xCreate.is_none()
            || default.xFetch.is_none()
            || default.xRekey.is_none()
            || default.xTruncate.is_none()
            || default.xDestroy.is_none()
        {
            return false;
        }
        // Before registering: from then on SQLite may call our methods, which read it.
        INNER.get_or_init(|| Inner(default));
        let ours = ffi::sqlite3_pcache_methods2 {
            iVersion: 1,
            pArg: std::ptr::null_mut(),
            xInit: Some(init),
            xShutdown: Some(shutdown),
            xCreate: Some(create),
            xCachesize: Some(cachesize),
            xPagecount: Some(pagecount),
            xFetch: Some(fetch),
            xUnpin: Some(unpin),
            xRekey: Some(rekey),
            xTruncate: Some(truncate),
            xDestroy: Some(destroy),
            xShrink: Some(shrink),
        };
        // SAFETY: PCACHE2 copies the struct; it fails (and changes nothing) once SQLite is
        // initialized.
        let rc = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_PCACHE2, &ours) };
        rc == ffi::SQLITE_OK
    })
}

/// Truncations skipped so far in this process.
pub fn skipped_truncations() -> u64 {
    SKIPPED.load(Ordering::Relaxed)
}

fn inner() -> &'static ffi::sqlite3_pcache_methods2 {
    match INNER.get() {
        Some(inner) => &inner.0,
        // Our methods are registered only after INNER holds the default cache.
        None => unreachable!("page cache wrapper called before it was installed"),
    }
}

/// # Safety
/// `p` is a handle `create` returned and `destroy` has not freed.
unsafe fn cache<'a>(p: *mut ffi::sqlite3_pcache) -> &'a mut Cache {
    // SAFETY: per the contract; SQLite calls a cache's methods from one thread at a time.
    unsafe { &mut *p.cast::<Cache>() }
}

unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    let m = inner();
    match m.xInit {
        // SAFETY: forwarding SQLite's call with the default cache's own argument.
        Some(f) => unsafe { f(m.pArg) },
        None => ffi::SQLITE_OK,
    }
}

unsafe extern "C" fn shutdown(_: *mut c_void) {
    let m = inner();
    if let Some(f) = m.xShutdown {
        // SAFETY: as in `init`.
        unsafe { f(m.pArg) }
    }
}

unsafe extern "C" fn create(
    page_size: c_int,
    extra: c_int,
    purgeable: c_int,
) -> *mut ffi::sqlite3_pcache {
    let m = inner();
    // SAFETY: checked non-null at installation; forwarding SQLite's arguments.
    let handle = unsafe { (m.xCreate.expect("checked at install"))(page_size, extra, purgeable) };
    if handle.is_null() {
        return handle;
    }
    Box::into_raw(Box::new(Cache {
        inner: handle,
        keys: KeyBound::new(page_size),
    }))
    .cast()
}

unsafe extern "C" fn cachesize(p: *mut ffi::sqlite3_pcache, n: c_int) {
    // SAFETY: `p` came from `create`.
    let c = unsafe { cache(p) };
    if let Some(f) = inner().xCachesize {
        // SAFETY: forwarding to the default cache's own handle.
        unsafe { f(c.inner, n) }
    }
}

unsafe extern "C" fn pagecount(p: *mut ffi::sqlite3_pcache) -> c_int {
    // SAFETY: `p` came from `create`.
    let c = unsafe { cache(p) };
    match inner().xPagecount {
        // SAFETY: as in `cachesize`.
        Some(f) => unsafe { f(c.inner) },
        None => 0,
    }
}

unsafe extern "C" fn fetch(
    p: *mut ffi::sqlite3_pcache,
    key: c_uint,
    create_flag: c_int,
) -> *mut ffi::sqlite3_pcache_page {
    // SAFETY: `p` came from `create`.
    let c = unsafe { cache(p) };
    // SAFETY: as in `cachesize`; checked non-null at installation.
    let page = unsafe { (inner().xFetch.expect("checked at install"))(c.inner, key, create_flag) };
    if !page.is_null() {
        c.keys.fetched(key);
    }
    page
}

unsafe extern "C" fn unpin(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    discard: c_int,
) {
    // SAFETY: `p` came from `create`.
    let c = unsafe { cache(p) };
    if let Some(f) = inner().xUnpin {
        // SAFETY: as in `cachesize`; `page` is the default cache's own page.
        unsafe { f(c.inner, page, discard) }
    }
}

unsafe extern "C" fn rekey(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    old_key: c_uint,
    new_key: c_uint,
) {
    // SAFETY: `p` came from `create`.
    let c = unsafe { cache(p) };
    // SAFETY: as in `unpin`; checked non-null at installation.
    unsafe { (inner().xRekey.expect("checked at install"))(c.inner, page, old_key, new_key) };
    c.keys.rekeyed(old_key, new_key);
}

unsafe extern "C" fn truncate(p: *mut ffi::sqlite3_pcache, limit: c_uint) {
    // SAFETY: `p` came from `create`.
    let c = unsafe { cache(p) };
    if !c.keys.may_drop(limit) {
        SKIPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // SAFETY: as in `cachesize`; checked non-null at installation.
    unsafe { (inner().xTruncate.expect("checked at install"))(c.inner, limit) };
    c.keys.truncated(limit);
}

unsafe extern "C" fn destroy(p: *mut ffi::sqlite3_pcache) {
    // SAFETY: `p` came from `create` and SQLite destroys it once.
    let c = unsafe { Box::from_raw(p.cast::<Cache>()) };
    // SAFETY: as in `cachesize`; checked non-null at installation.
    unsafe { (inner().xDestroy.expect("checked at install"))(c.inner) };
}

unsafe extern "C" fn shrink(p: *mut ffi::sqlite3_pcache) {
    // SAFETY: `p` came from `create`.
    let c = unsafe { cache(p) };
    if let Some(f) = inner().xShrink {
        // SAFETY: as in `cachesize`.
        unsafe { f(c.inner) }
    }
}

#[cfg(test)]
mod tests {
    use super::KeyBound;

    /// The key balancing parks pages at, for 8 KiB pages.
    const TEMP: u32 = 131_073;

    #[test]
    fn only_truncations_that_can_drop_a_page_are_forwarded() {
        // (calls, truncation limit, forwarded)
        enum Call {
            Fetch(u32),
            Rekey(u32, u32),
            Truncate(u32),
        }
        use Call::*;
        let cases: &[(&[Call], u32, bool)] = &[
            (&[], 1, false),
            (&[Fetch(10)], 11, false),
            (&[Fetch(10)], 10, true),
            (&[Fetch(10)], 1, true),
            // A page of a rolled-back transaction past the database's end.
            (&[Fetch(10), Fetch(12)], 11, true),
            // Already truncated: the same limit again drops nothing.
            (&[Fetch(12), Truncate(11)], 11, false),
            (&[Fetch(12), Truncate(11)], 10, true),
            // balance_nonroot's swap of pages 7 and 5 through the parked key.
            (
                &[
                    Fetch(7),
                    Fetch(5),
                    Rekey(7, TEMP),
                    Rekey(5, 7),
                    Rekey(TEMP, 5),
                ],
                8,
                false,
            ),
            (
                &[
                    Fetch(7),
                    Fetch(5),
                    Rekey(7, TEMP),
                    Rekey(5, 7),
                    Rekey(TEMP, 5),
                ],
                7,
                true,
            ),
            // Still parked: the parked page is past any limit below it.
            (&[Fetch(7), Rekey(7, TEMP)], 8, true),
            (&[Fetch(7), Rekey(7, TEMP), Truncate(8)], 8, false),
            // Moved past the end (autovacuum moves pages to dbSize + 1).
            (&[Fetch(7), Rekey(7, 20)], 8, true),
            // Fetched at the parked key itself: conservative.
            (&[Fetch(TEMP)], 8, true),
        ];
        for (n, (calls, limit, forwarded)) in cases.iter().enumerate() {
            let mut keys = KeyBound::new(8192);
            assert_eq!(keys.temp_key, TEMP);
            for call in calls.iter() {
                match *call {
                    Fetch(k) => keys.fetched(k),
                    Rekey(a, b) => keys.rekeyed(a, b),
                    Truncate(l) => keys.truncated(l),
                }
            }
            assert_eq!(keys.may_drop(*limit), *forwarded, "case {n}: {keys:?}");
        }
    }
}
