//! Latency of resolving one new record against a large store: applies records one at a time
//! (one transaction each: match, cluster, write, commit) and prints percentiles.
//!
//! ```sh
//! cargo run --release -p onetruth-store --example resolve_latency -- /tmp/bench-1m.db [COUNT [WARMUP [CACHE_MIB]]]
//! ```
//!
//! COUNT applies (default 2000) are timed after WARMUP untimed ones (default 0). A warm-up
//! measures a running daemon's steady state: its WAL file already at full size (appends that
//! grow the file cost more than overwrites) and the index pages it touches in the cache.
//!
//! Every fourth record is another record of the previous person (same name and email), so a
//! quarter of the applies merge into an existing customer; the rest are new people.

use std::time::Instant;

use onetruth_model::{Attributes, IdentifierKind, Normalizer, Op, SourceRecord};
use onetruth_store::{Batch, Store, StoreOptions};

/// splitmix64's finalizer: a fixed scramble of `x`.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let db = args
        .next()
        .expect("usage: resolve_latency DB [COUNT [WARMUP [CACHE_MIB]]]");
    let count: usize = args
        .next()
        .map_or(2000, |n| n.parse().expect("COUNT is a number"));
    let warmup: usize = args
        .next()
        .map_or(0, |n| n.parse().expect("WARMUP is a number"));
    // As the binary does, before SQLite starts.
    onetruth_store::install_page_cache();
    let mut options = StoreOptions::default();
    if let Some(mib) = args.next() {
        options.cache_mib = mib.parse().expect("CACHE_MIB is a number");
    }
    let mut store = Store::open(db.as_ref(), options).expect("open store");
    let normalizer = Normalizer::default();
    // A fresh id range per run, so every apply is a new record even on a reused store.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let given = [
        "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken",
    ];
    let family = [
        "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen",
    ];
    let record = |i: usize| {
        // Every fourth record repeats the previous person.
        let person = if i.is_multiple_of(4) && i > 0 {
            i - 1
        } else {
            i
        };
        // Emails and phones are unique per run (and per person), so runs on one store do not
        // link to each other's records, and scattered like real ones: consecutive values
        // would all land on the same index pages and flatter the index.
        let email = format!(
            "{:016x}.{}@example.net",
            mix(run ^ (person as u64) << 20),
            family[person % family.len()].to_lowercase()
        );
        let number = (mix(run ^ (i as u64) << 20) % 7_000_000) as usize;
        let phone = format!("+1 628 {:03} {:04}", 200 + number / 10_000, number % 10_000);
        SourceRecord {
            source: "latency".into(),
            source_id: format!("lat-{run}-{i}"),
            version: 1,
            op: Op::Upsert,
            identifiers: vec![
                normalizer
                    .normalize(&IdentifierKind::Email, &email, None)
                    .expect("valid email"),
                normalizer
                    .normalize(&IdentifierKind::Phone, &phone, None)
                    .expect("valid phone"),
            ],
            attributes: Attributes {
                given_name: Some(given[person % given.len()].into()),
                family_name: Some(family[person % family.len()].into()),
                ..Attributes::default()
            },
            events: Vec::new(),
            raw: serde_json::Value::Null,
            raw_text: None,
        }
    };
    let batch = |r: SourceRecord| Batch {
        connector: "latency".into(),
        records: vec![r],
        quarantine: Vec::new(),
        checkpoints: Vec::new(),
        on_commit: None,
        released: Vec::new(),
    };
    // The first write loads the resolver's state from the store: timed separately.
    let started = Instant::now();
    store.apply(batch(record(0))).expect("apply");
    let load = started.elapsed();
    for i in 1..=warmup {
        store.apply(batch(record(i))).expect("apply");
    }
    let mut times = Vec::with_capacity(count);
    for i in warmup + 1..=warmup + count {
        let r = record(i);
        let t = Instant::now();
        store.apply(batch(r)).expect("apply");
        times.push(t.elapsed());
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "state load (first write) {:.2?}; {} single-record applies after {} warm-up: p50 {:.2?} p90 {:.2?} p99 {:.2?} max {:.0?}",
        load,
        times.len(),
        warmup,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        times[times.len() - 1]
    );
    eprintln!(
        "page-cache truncations skipped: {}",
        onetruth_store::skipped_truncations()
    );
    store.forget_writer_state();
}
