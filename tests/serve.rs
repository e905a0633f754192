//! End to end: `onetruth serve` and `onetruth demo` answer over real HTTP on 127.0.0.1.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{BIN, ingest_demo, ok};

/// A running server, killed on drop.
struct Server {
    child: Child,
    base: String,
    /// Everything the process printed before it said it was listening.
    banner: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("ONETRUTH_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start onetruth");
    let stdout = child.stdout.take().unwrap();
    let mut banner = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("listening on ") {
            return Server {
                child,
                base: url.trim().to_string(),
                banner,
            };
        }
        banner.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("server exited before listening; output: {banner:?}");
}

fn get(url: &str) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent.get(url).call().expect("http request");
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .read_json()
        .unwrap_or(serde_json::Value::Null);
    (status, body)
}

#[test]
fn serve_answers_lookups_and_customer_ids() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    ingest_demo(
        &db,
        &[("crm.toml", "crm.csv"), ("billing.toml", "billing.jsonl")],
    );
    let server = start(&[
        "--db",
        db.to_str().unwrap(),
        "serve",
        "--listen",
        "127.0.0.1:0",
    ]);
    let (status, body) = get(&format!("{}/healthz", server.base));
    assert_eq!(status, 200, "{body}");

    // Take any linked customer from the export and find it again by its email over HTTP.
    let export = ok(&db, &["export", "customers"]).stdout;
    let customer: serde_json::Value = export
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|c| {
            c["records"] == 2
                && c["golden"]["identifiers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["value"]["kind"] == "email")
        })
        .expect("a customer with two records and an email");
    let id = customer["id"].as_str().unwrap();
    let email = customer["golden"]["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["value"]["kind"] == "email")
        .unwrap()["value"]["value"]
        .as_str()
        .unwrap()
        .to_uppercase();
    let (status, body) = get(&format!(
        "{}/v1/lookup?email={}",
        server.base,
        email.replace('+', "%2B")
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["customers"][0]["id"], id);

    let (status, body) = get(&format!("{}/v1/customers/{id}", server.base));
    assert_eq!(status, 200);
    assert_eq!(body["records"].as_array().unwrap().len(), 2);
    let (status, _) = get(&format!("{}/v1/customers/cus_999999", server.base));
    assert_eq!(status, 404);
}

#[test]
fn demo_prints_three_queries_that_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let server = start(&[
        "--db",
        db.to_str().unwrap(),
        "demo",
        "--listen",
        "127.0.0.1:0",
    ]);
    let urls: Vec<String> = server
        .banner
        .iter()
        .filter_map(|l| l.trim().strip_prefix("curl -s '"))
        .map(|u| u.trim_end_matches('\'').to_string())
        .collect();
    assert_eq!(urls.len(), 3, "{:?}", server.banner);
    let mut ids = Vec::new();
    for u in &urls {
        // The banner was printed before the port was known; point it at the real one.
        let path = &u[u.find("/v1/").unwrap()..];
        let (status, body) = get(&format!("{}{path}", server.base));
        assert_eq!(status, 200, "{u}: {body}");
        let id = if body["customers"].is_array() {
            body["customers"][0]["id"].clone()
        } else {
            body["id"].clone()
        };
        ids.push(id);
    }
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "all three queries find the same customer: {ids:?}"
    );
}
