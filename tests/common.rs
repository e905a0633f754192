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

/// A running `onetruth run` daemon (or any long-running command), killed on drop.
pub struct Daemon {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Where its stderr (the log) goes.
    pub log: PathBuf,
}

impl Daemon {
    /// Start `onetruth --db DB ARGS... --listen 127.0.0.1:0` and wait until it listens.
    pub fn start(db: &Path, args: &[&str], log: &Path) -> Daemon {
        use std::io::BufRead;
        let mut child = Command::new(BIN)
            .arg("--db")
            .arg(db)
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("ONETRUTH_CONFIG")
            .env_remove("ONETRUTH_DB")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("start onetruth");
        let stdout = child.stdout.take().unwrap();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(url) = line.strip_prefix("listening on ") {
                return Daemon {
                    child,
                    base: url.trim().to_string(),
                    log: log.to_path_buf(),
                };
            }
        }
        let _ = child.wait();
        panic!(
            "daemon exited before listening; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }

    /// GET `path`: status and body text.
    pub fn get(&self, path: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = agent
            .get(format!("{}{path}", self.base))
            .call()
            .expect("http request");
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap_or_default())
    }

    /// Poll `path` until `ok` accepts its answer, for at most `secs` seconds.
    pub fn wait_for(&self, path: &str, secs: u64, ok: impl Fn(u16, &str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let (status, body) = self.get(path);
            if ok(status, &body) {
                return body;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "{path} never came right: last {status} {body}\nlog:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send a signal (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Wait for the process to exit (at most `secs`), returning its exit code.
    pub fn wait_exit(&mut self, secs: u64) -> Option<i32> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                panic!("daemon did not exit in {secs} s; log:\n{}", self.log_text());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
