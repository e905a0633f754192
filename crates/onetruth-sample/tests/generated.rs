//! The generator is deterministic, and the demo files committed in `crates/onetruth/demo` are
//! exactly what it produces.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use onetruth_model::{IdentifierKind, Normalizer};
use onetruth_sample::{BENCH_SEED, DEMO_SEED, demo_files, demo_files_with_seed, write_bench};

fn committed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../onetruth/demo")
}

fn bench(records: u64, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    write_bench(&mut out, records, seed).unwrap();
    out
}

#[test]
fn demo_generation_is_deterministic() {
    let a = demo_files();
    let b = demo_files();
    assert_eq!(a, b);
    assert_eq!(a, demo_files_with_seed(DEMO_SEED));
    let names: Vec<&str> = a.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        ["crm.csv", "billing.jsonl", "helpdesk.csv", "calls.csv"]
    );
    // Another seed: the same files with other people in them.
    let other = demo_files_with_seed(DEMO_SEED + 1);
    for (x, y) in a.iter().zip(&other) {
        assert_eq!(x.name, y.name);
        assert_ne!(x.contents, y.contents, "{}", x.name);
        if !x.name.ends_with(".csv") {
            continue;
        }
        assert_eq!(
            x.contents.lines().next(),
            y.contents.lines().next(),
            "same header in {}",
            x.name
        );
    }
}

#[test]
fn committed_demo_files_match_the_generator() {
    let dir = committed_dir();
    for file in demo_files() {
        let path = dir.join(file.name);
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == file.contents.as_bytes(),
            "{} differs from the generator's output; regenerate it with \
             `cargo run -p onetruth-sample -- demo --out crates/onetruth/demo` \
             (or revert the generator change)",
            path.display()
        );
    }
}

#[test]
fn demo_is_small_and_shaped_like_its_sources() {
    let files = demo_files();
    let total: usize = files.iter().map(|f| f.contents.len()).sum();
    assert!(total < 200_000, "demo is {total} bytes");
    let lines = |name: &str| {
        files
            .iter()
            .find(|f| f.name == name)
            .unwrap()
            .contents
            .lines()
            .count()
    };
    // Header + rows; billing has one extra, broken line.
    assert_eq!(lines("crm.csv"), 1 + 250 + 8);
    assert_eq!(lines("billing.jsonl"), 200 + 1);
    assert_eq!(lines("helpdesk.csv"), 1 + 153);
    assert_eq!(lines("calls.csv"), 1 + 299);
    for f in &files {
        assert!(f.contents.ends_with('\n'), "{}", f.name);
        assert!(!f.contents.contains('\r'), "{}", f.name);
    }
}

#[test]
fn bench_is_deterministic_and_a_third_of_it_repeats_people() {
    const N: u64 = 3_000;
    let a = bench(N, BENCH_SEED);
    assert_eq!(a, bench(N, BENCH_SEED));
    assert_ne!(a, bench(N, BENCH_SEED + 1));
    // A prefix of a longer run is the shorter run: record n depends only on (seed, n).
    assert!(bench(N + 500, BENCH_SEED).starts_with(&a));

    let text = String::from_utf8(a).unwrap();
    let normalizer = Normalizer::default();
    let (mut emails, mut phones, mut ids) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut repeats = 0;
    let mut phone_formats = BTreeSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let obj = v.as_object().unwrap();
        // The line's own key order (serde_json's Map sorts keys, so read it from the text).
        let keys: Vec<&str> = line
            .trim_matches(|c| c == '{' || c == '}')
            .split(",\"")
            .map(|kv| kv.trim_start_matches('"').split('"').next().unwrap())
            .collect();
        assert_eq!(keys.len(), obj.len(), "{line}");
        assert_eq!(
            keys,
            [
                "id",
                "updated_at",
                "email",
                "phone",
                "first_name",
                "last_name",
                "company",
                "city",
                "postcode"
            ]
        );
        assert!(obj["updated_at"].is_i64());
        assert!(ids.insert(obj["id"].as_str().unwrap().to_string()));
        let email = normalizer
            .normalize(&IdentifierKind::Email, obj["email"].as_str().unwrap(), None)
            .unwrap()
            .value;
        let raw_phone = obj["phone"].as_str().unwrap();
        phone_formats.insert(raw_phone.replace(|c: char| c.is_ascii_digit(), "9"));
        let phone = normalizer
            .normalize(&IdentifierKind::Phone, raw_phone, None)
            .unwrap_or_else(|e| panic!("{raw_phone}: {e}"))
            .value;
        let seen_email = !emails.insert(email);
        let seen_phone = !phones.insert(phone);
        assert!(
            !(seen_email && seen_phone),
            "a repeat brings one new identifier: {line}"
        );
        repeats += usize::from(seen_email || seen_phone);
    }
    assert_eq!(ids.len() as u64, N);
    let share = repeats as f64 / N as f64;
    assert!((0.30..0.37).contains(&share), "{repeats} repeats of {N}");
    assert_eq!(phone_formats.len(), 5, "{phone_formats:?}");
}

#[test]
fn the_binary_writes_what_the_library_generates() {
    let exe = env!("CARGO_BIN_EXE_onetruth-sample");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let status = Command::new(exe)
        .args(["demo", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    for file in demo_files() {
        assert_eq!(
            std::fs::read_to_string(out.join(file.name)).unwrap(),
            file.contents
        );
    }

    let stdout = Command::new(exe)
        .args(["bench", "--records", "250"])
        .output()
        .unwrap();
    assert!(stdout.status.success());
    assert_eq!(stdout.stdout, bench(250, BENCH_SEED));

    let file = dir.path().join("bench.jsonl");
    let status = Command::new(exe)
        .args(["bench", "--records", "250", "--seed", "7", "--out"])
        .arg(&file)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(&file).unwrap(), bench(250, 7));

    let bad = Command::new(exe).args(["bench"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--records"));
}
