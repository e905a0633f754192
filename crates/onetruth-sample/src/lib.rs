//! Deterministic sample data for onetruth: the bundled demo exports (`crm.csv`,
//! `billing.jsonl`, `helpdesk.csv`, `calls.csv`), CRM-like JSON lines for throughput
//! benchmarks, and the quality benchmark (multi-source records with ground truth, and a scorer
//! for the links a resolver produced).
//!
//! Everything is generated from a seed with an inline SplitMix64 and hand-written calendar code,
//! so the output is byte-for-byte stable across platforms and dependency updates. The demo files
//! committed in `crates/onetruth/demo` are checked against this generator by a test; regenerate
//! them with `cargo run -p onetruth-sample -- demo --out crates/onetruth/demo`.

mod bench;
mod demo;
mod quality;
mod rng;
mod time;
mod words;

pub use bench::{BENCH_SEED, write_bench};
pub use demo::{DEMO_PEOPLE, DEMO_SEED, DemoFile, demo_files, demo_files_with_seed};
pub use quality::{
    BRIDGING, LinkRow, NOISE_RATES, NoiseCount, PLACEHOLDERS, QUALITY_DATA_FILES,
    QUALITY_MANIFESTS, QUALITY_SEED, QualityFile, QualitySummary, Rate, Score, TRAP_RATES,
    TrapClass, TrapCount, TrapScore, TruthRow, UnderMergeScore, quality_files, read_links,
    read_truth, score, write_quality,
};
pub use rng::{Rng, mix};

use std::io;
use std::path::Path;

/// Write the demo files into `dir` (created if missing); returns the paths written.
pub fn write_demo(dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    demo_files()
        .into_iter()
        .map(|f| {
            let path = dir.join(f.name);
            std::fs::write(&path, f.contents)?;
            Ok(path)
        })
        .collect()
}
