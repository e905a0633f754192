//! Helpers shared by the end-to-end tests: run the real `onetruth` binary on a temp store.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_onetruth");

/// The bundled demo data and manifests.
pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("demo")
}

pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            status: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Run `onetruth --db DB ARGS...` with a clean environment for config.
pub fn onetruth(db: &Path, args: &[&str]) -> Run {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("ONETRUTH_CONFIG")
        .env_remove("ONETRUTH_DB")
        .output()
        .expect("run onetruth binary")
        .into()
}

/// Run and insist on success.
pub fn ok(db: &Path, args: &[&str]) -> Run {
    let r = onetruth(db, args);
    assert_eq!(
        r.status, 0,
        "onetruth {args:?} failed:\n{}\n{}",
        r.stdout, r.stderr
    );
    r
}

/// Ingest bundled demo sources into `db`: `(manifest, file)` names in the demo directory.
pub fn ingest_demo(db: &Path, sources: &[(&str, &str)]) {
    let demo = demo_dir();
    for (m, f) in sources {
        ok(
            db,
            &[
                "ingest",
                "--connector",
                demo.join(m).to_str().unwrap(),
                demo.join(f).to_str().unwrap(),
            ],
        );
    }
}
