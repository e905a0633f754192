//! End to end: `onetruth run`, the sync daemon, with the file transport's inbox: config checks,
//! exports dropped in the inbox served over HTTP, `/readyz` and `/metrics`, SIGTERM drains and
//! exits 0, a restart takes nothing twice, and SIGKILLs mid-file lose and double nothing.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{Daemon, demo_dir, ok, onetruth};

/// A scratch directory with `crm.toml` (the demo CRM manifest reading `inbox/`) and a config
/// running it.
fn setup(extra_config: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("inbox")).unwrap();
    let manifest = std::fs::read_to_string(demo_dir().join("crm.toml"))
        .unwrap()
        .replace(
            r#"transport = { type = "file", format = "csv" }"#,
            r#"transport = { type = "file", format = "csv", inbox = "inbox", settle_ms = 50, poll_interval_ms = 50 }"#,
        );
    assert!(manifest.contains("inbox = \"inbox\""));
    std::fs::write(dir.path().join("crm.toml"), manifest).unwrap();
    let config = dir.path().join("onetruth.toml");
    std::fs::write(
        &config,
        format!("[daemon]\nconnectors = [\"crm.toml\"]\n{extra_config}"),
    )
    .unwrap();
    let db = dir.path().join("t.db");
    (dir, config, db)
}

fn run_args(config: &Path) -> Vec<String> {
    vec![
        "--config".into(),
        config.display().to_string(),
        "run".into(),
    ]
}

fn start(db: &Path, config: &Path, log: &str) -> Daemon {
    let args = run_args(config);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::start(db, &args, &db.with_file_name(log))
}

#[test]
fn check_config_validates_every_manifest_and_names_what_is_wrong() {
    let (dir, config, db) = setup("");
    let c = config.display().to_string();
    let r = ok(&db, &["--config", &c, "run", "--check-config"]);
    assert_eq!(r.stdout.trim(), "config ok: 1 connector: crm (file)");
    assert!(!db.exists(), "checking creates no store");

    // Every problem at once, each naming the key and the file.
    std::fs::write(
        dir.path().join("bad.toml"),
        "source = \"crm\"\ntransport = { type = \"file\", fromat = \"csv\" }\n[record]\nid = \"Id\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("kafkaish.toml"),
        "source = \"k\"\ntransport = { type = \"carrier-pigeon\" }\n[record]\nid = \"Id\"\n",
    )
    .unwrap();
    std::fs::write(
        &config,
        "[daemon]\nconnectors = [\"crm.toml\", \"bad.toml\", \"kafkaish.toml\", \"missing.toml\"]\n",
    )
    .unwrap();
    let r = onetruth(&db, &["--config", &c, "run", "--check-config"]);
    assert_eq!(r.status, 1, "{}", r.stderr);
    for expected in [
        "bad.toml: transport: unknown field `fromat`",
        "kafkaish.toml: transport.type: unknown transport `carrier-pigeon`",
        "missing.toml",
    ] {
        assert!(
            r.stderr.contains(expected),
            "{expected:?} in:\n{}",
            r.stderr
        );
    }

    std::fs::write(
        &config,
        "[daemon]\nconnectors = [\"crm.toml\", \"crm.toml\"]\n",
    )
    .unwrap();
    let r = onetruth(&db, &["--config", &c, "run", "--check-config"]);
    assert!(
        r.stderr
            .contains("daemon.connectors: `crm.toml` is listed twice"),
        "{}",
        r.stderr
    );
    std::fs::write(&config, "[daemon]\ncommit_interval_ms = \"soon\"\n").unwrap();
    let r = onetruth(&db, &["--config", &c, "run", "--check-config"]);
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("commit_interval_ms"), "{}", r.stderr);
    std::fs::write(&config, "[daemon]\n").unwrap();
    let r = onetruth(&db, &["--config", &c, "run", "--check-config"]);
    assert!(
        r.stderr.contains("daemon.connectors: list at least one"),
        "{}",
        r.stderr
    );
}

#[test]
fn exports_dropped_in_the_inbox_are_served_and_sigterm_drains_and_exits_zero() {
    let (dir, config, db) = setup("");
    let mut d = start(&db, &config, "run1.log");
    assert_eq!(d.get("/healthz"), (200, "ok".to_string()));
    let ready = d.wait_for("/readyz", 10, |s, _| s == 200);
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["resolver"], "loaded");
    assert_eq!(ready["connectors"]["crm"], "running");

    std::fs::copy(demo_dir().join("crm.csv"), dir.path().join("inbox/crm.csv")).unwrap();
    let found = d.wait_for("/v1/lookup?email=nclark@willowcreek.example", 10, |s, _| {
        s == 200
    });
    assert!(found.contains("\"family_name\""), "{found}");
    let metrics = d.wait_for("/metrics", 5, |_, body| {
        body.contains("onetruth_connector_records_committed_total{connector=\"crm\"} 258")
    });
    assert!(metrics.contains("onetruth_connector_up{connector=\"crm\",state=\"running\"} 1"));
    // No record content in metrics.
    assert!(!metrics.contains("@"), "{metrics}");

    d.signal("TERM");
    assert_eq!(d.wait_exit(15), Some(0), "log:\n{}", d.log_text());
    let log = d.log_text();
    assert!(log.contains("stopping: draining"), "{log}");
    assert!(!log.contains("nclark"), "no email in the log: {log}");

    let stats: serde_json::Value =
        serde_json::from_str(&ok(&db, &["stats", "--json"]).stdout).unwrap();
    // 258 rows, 3 of them deleted contacts.
    assert_eq!(stats["records"], 255);
    assert!(
        stats["checkpoints"]["crm"]["crm.csv"]
            .as_str()
            .unwrap()
            .starts_with("done:"),
        "{stats}"
    );

    // A restart takes nothing twice, then takes the next export; Ctrl-C drains as well.
    let mut d = start(&db, &config, "run2.log");
    d.wait_for("/readyz", 10, |s, _| s == 200);
    std::fs::write(
        dir.path().join("inbox/late.csv"),
        "Id,FirstName,LastName,Email,Phone,MobilePhone,MailingStreet,MailingCity,MailingState,MailingPostalCode,MailingCountry,Birthdate,AccountName,Title,LeadSource,LastModifiedDate,IsDeleted\n\
         late-1,Zed,Late,zed@late.example,,,,,,,,,,,,2026-01-01 00:00:00,false\n",
    )
    .unwrap();
    d.wait_for("/v1/lookup?email=zed@late.example", 10, |s, _| s == 200);
    let metrics = d.get("/metrics").1;
    assert!(
        metrics.contains("onetruth_connector_records_read_total{connector=\"crm\"} 1\n"),
        "only the new export was read: {metrics}"
    );
    d.signal("INT");
    assert_eq!(d.wait_exit(15), Some(0), "log:\n{}", d.log_text());
}

#[test]
fn readyz_reports_a_connector_that_cannot_read() {
    let (dir, config, db) = setup("");
    // An inbox that does not exist yet (a volume mounted later) is retried, not fatal.
    std::fs::remove_dir(dir.path().join("inbox")).unwrap();
    let d = start(&db, &config, "run.log");
    d.wait_for("/readyz", 10, |s, body| {
        s == 503 && body.contains("\"crm\":\"retrying\"")
    });
    std::fs::create_dir(dir.path().join("inbox")).unwrap();
    d.wait_for("/readyz", 15, |s, _| s == 200);
    // The inbox vanishes: the connector retries with backoff and the daemon is not ready.
    std::fs::remove_dir(dir.path().join("inbox")).unwrap();
    let body = d.wait_for("/readyz", 10, |s, _| s == 503);
    assert!(body.contains("\"crm\":\"retrying\""), "{body}");
    assert_eq!(d.get("/healthz").0, 200, "the process is up all the same");
    std::fs::create_dir(dir.path().join("inbox")).unwrap();
    d.wait_for("/readyz", 15, |s, _| s == 200);
    let metrics = d.get("/metrics").1;
    assert!(
        !metrics.contains("onetruth_connector_retries_total{connector=\"crm\"} 0"),
        "{metrics}"
    );
}

/// `onetruth export links` as a partition: sets of `source:source_id`, whatever the ids.
fn partition(db: &Path) -> BTreeSet<BTreeSet<String>> {
    let csv = ok(db, &["export", "links", "--format", "csv"]).stdout;
    let mut by_customer: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        by_customer
            .entry(f[2].to_string())
            .or_default()
            .insert(format!("{}:{}", f[0], f[1]));
    }
    by_customer.into_values().collect()
}

#[test]
fn sigkills_while_reading_an_export_lose_and_double_nothing() {
    // Small batches and commits, so that kills land between, inside and after commits.
    let (dir, config, db) =
        setup("[ingest]\nbatch_size = 200\n[daemon]\ncommit_interval_ms = 10\n");
    // The [daemon] table above would repeat the one setup writes: write the config whole.
    std::fs::write(
        &config,
        "[ingest]\nbatch_size = 200\n[daemon]\nconnectors = [\"crm.toml\"]\ncommit_interval_ms = 10\n",
    )
    .unwrap();
    let header = "Id,FirstName,LastName,Email,Phone,MobilePhone,MailingStreet,MailingCity,MailingState,MailingPostalCode,MailingCountry,Birthdate,AccountName,Title,LeadSource,LastModifiedDate,IsDeleted\n";
    let mut csv = String::from(header);
    for i in 0..12_000 {
        // Pairs of rows share an email: merges happen across batch boundaries too.
        csv.push_str(&format!(
            "r{i},Ann{},Lee{},p{}@x.example,,,,,,,,,,,,2026-01-01 00:00:00,false\n",
            i / 2,
            i / 2,
            i / 2
        ));
    }
    let export = dir.path().join("export.csv");
    std::fs::write(&export, &csv).unwrap();

    let mut kills = 0;
    let mut round = 0u64;
    loop {
        if round == 0 {
            std::fs::copy(&export, dir.path().join("inbox/export.csv")).unwrap();
        }
        let mut d = start(&db, &config, &format!("kill{round}.log"));
        // Kill at a different moment each round, from before the first commit to well into
        // the file.
        std::thread::sleep(std::time::Duration::from_millis(150 + (round * 97) % 400));
        let done = db.exists() && {
            let stats: serde_json::Value =
                serde_json::from_str(&ok(&db, &["stats", "--json"]).stdout).unwrap();
            stats["checkpoints"]["crm"]["export.csv"]
                .as_str()
                .is_some_and(|p| p.starts_with("done:"))
        };
        d.signal("KILL");
        d.wait_exit(10);
        round += 1;
        if done {
            break;
        }
        kills += 1;
        assert!(round < 60, "the export never finished after {kills} kills");
    }
    assert!(
        kills >= 3,
        "only {kills} kills landed before the export was done"
    );

    // Same partition as one clean ingest of the same export, and a sound database file.
    let clean = dir.path().join("clean.db");
    ok(
        &clean,
        &[
            "ingest",
            "--connector",
            dir.path().join("crm.toml").to_str().unwrap(),
            export.to_str().unwrap(),
        ],
    );
    let got = partition(&db);
    assert_eq!(got.iter().map(BTreeSet::len).sum::<usize>(), 12_000);
    assert_eq!(got, partition(&clean));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    // Each customer was created once: no record was applied twice as new.
    let (created, customers): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM changelog WHERE change = 'created'), (SELECT count(*) FROM customers)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(created, customers);
}

#[test]
fn curate_and_reresolve_go_through_the_running_daemon_without_a_reload() {
    let (dir, config, db) = setup("");
    let mut d = start(&db, &config, "run.log");
    d.wait_for("/readyz", 10, |s, _| s == 200);
    std::fs::copy(demo_dir().join("crm.csv"), dir.path().join("inbox/crm.csv")).unwrap();
    // Two CRM contacts of one customer in the demo data.
    let one = d.wait_for("/v1/customers/cus_1", 10, |s, _| s == 200);
    let one: serde_json::Value = serde_json::from_str(&one).unwrap();
    let records: Vec<String> = one["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["source"].as_str().unwrap(),
                r["source_id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(records.len(), 2, "{one}");
    assert!(db.with_file_name("t.db.daemon").exists());

    let r = ok(&db, &["curate", "never-merge", &records[0], &records[1]]);
    assert_eq!(r.stdout.trim(), "recorded by the running daemon");
    let split = d.get("/v1/customers/cus_1").1;
    let split: serde_json::Value = serde_json::from_str(&split).unwrap();
    assert_eq!(split["records"].as_array().unwrap().len(), 1, "{split}");
    let r = onetruth(&db, &["curate", "detach", "crm:nobody"]);
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("no such record"), "{}", r.stderr);
    let r = ok(&db, &["reresolve"]);
    assert_eq!(r.stdout.trim(), "re-resolved by the running daemon");
    // The writer applied both on its warm resolver: loaded once, at start.
    assert_eq!(
        d.log_text()
            .matches("resolver loaded from the store")
            .count(),
        1,
        "{}",
        d.log_text()
    );

    d.signal("TERM");
    assert_eq!(d.wait_exit(15), Some(0));
    assert!(
        !db.with_file_name("t.db.daemon").exists(),
        "the daemon file is removed"
    );
    // Without a daemon, the CLI writes the store itself.
    let r = ok(&db, &["curate", "force-merge", &records[0], &records[1]]);
    assert!(r.stdout.starts_with("recorded;"), "{}", r.stdout);
}
