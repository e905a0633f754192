//! End to end: the real binary ingests files into a temp store, looks customers up, exports.

mod common;

use common::{ingest_demo, ok, onetruth};

const MANIFEST: &str = r#"
source = "shop"
[record]
id = "id"
version = { field = "updated" }
[[identifiers]]
kind = "email"
value = "email"
[[identifiers]]
kind = "phone"
value = "phone"
[attributes]
name = { value = "name" }
"#;

const CRM_MANIFEST: &str = r#"
source = "crm"
[record]
id = "contact_id"
[[identifiers]]
kind = "email"
value = "contact.email"
[attributes]
given_name = "contact.first"
family_name = "contact.last"
"#;

fn write(dir: &std::path::Path, name: &str, text: impl AsRef<[u8]>) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn ingest_merges_across_sources_lookup_and_export_links() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let shop = write(dir.path(), "shop.toml", MANIFEST);
    let crm = write(dir.path(), "crm.toml", CRM_MANIFEST);
    let shop_csv = write(
        dir.path(),
        "shop.csv",
        "id,updated,email,phone,name\n\
         s1,1,Jane@Example.com,(415) 555-2671,Jane Doe\n\
         s2,1,test@test.com,,Ann Placeholder\n\
         s3,1,bad row\n\
         s4,1,test@test.com,,Ben Placeholder\n",
    );
    let crm_jsonl = write(
        dir.path(),
        "crm.jsonl",
        "{\"contact_id\":\"c1\",\"contact\":{\"email\":\" jane@example.com \",\"first\":\"Jane\",\"last\":\"Doe\"}}\n\
         {\"contact_id\":\"c2\",\"contact\":{\"email\":\"bob@example.com\",\"first\":\"Bob\",\"last\":\"Roe\"}}\n",
    );

    let r = ok(&db, &["ingest", "--connector", &shop, &shop_csv]);
    assert!(
        r.stdout
            .contains("read 4 / applied 3 / unchanged 0 / quarantined 1"),
        "{}",
        r.stdout
    );
    let r = ok(&db, &["ingest", "--connector", &crm, &crm_jsonl]);
    assert!(r.stdout.contains("applied 2"), "{}", r.stdout);

    // Jane is one customer across both sources, found by email or by phone in any format.
    let by_email = ok(&db, &["lookup", "email:JANE@example.com"]).stdout;
    let jane = by_email.split('\t').next().unwrap().to_string();
    assert!(jane.starts_with("cus_"), "{by_email}");
    assert!(by_email.contains("2 records"), "{by_email}");
    let by_phone = ok(&db, &["lookup", "phone:+1 415-555-2671"]).stdout;
    assert!(by_phone.starts_with(&jane), "{by_phone}");

    // Placeholders link no one.
    let placeholder = onetruth(&db, &["lookup", "email:test@test.com"]);
    assert_eq!(placeholder.status, 3, "not found");

    // One link row per source record, with source, source_id, customer_id.
    let links = ok(&db, &["export", "links", "--format", "csv"]).stdout;
    let rows: Vec<&str> = links.lines().collect();
    assert_eq!(rows[0], "source,source_id,customer_id");
    assert_eq!(rows.len(), 1 + 5, "{links}");
    assert!(rows.contains(&format!("crm,c1,{jane}").as_str()), "{links}");
    assert!(
        rows.contains(&format!("shop,s1,{jane}").as_str()),
        "{links}"
    );
    let distinct: std::collections::BTreeSet<&str> = rows[1..]
        .iter()
        .map(|r| r.rsplit(',').next().unwrap())
        .collect();
    assert_eq!(
        distinct.len(),
        4,
        "jane, bob and two placeholder people: {links}"
    );

    let jsonl = ok(&db, &["export", "customers", "--format", "jsonl"]).stdout;
    assert_eq!(jsonl.lines().count(), 4);
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert!(first["golden"]["identifiers"].is_array());

    // Re-ingesting the same files changes nothing: no applied records, no new changelog.
    let before = ok(&db, &["stats", "--json"]).stdout;
    let r = ok(&db, &["ingest", "--connector", &shop, &shop_csv]);
    assert!(r.stdout.contains("applied 0 / unchanged 3"), "{}", r.stdout);
    // The CRM manifest has no version field: unchanged content is detected by comparison.
    let r = ok(&db, &["ingest", "--connector", &crm, &crm_jsonl]);
    assert!(r.stdout.contains("applied 0 / unchanged 2"), "{}", r.stdout);
    let after = ok(&db, &["stats", "--json"]).stdout;
    let (b, a): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&before).unwrap(),
        serde_json::from_str(&after).unwrap(),
    );
    for key in [
        "customers",
        "records",
        "changelog_version",
        "links",
        "quarantined",
    ] {
        assert_eq!(b[key], a[key], "{key} unchanged by re-ingest");
    }

    // The malformed row is in quarantine with its raw text and reason.
    let q = ok(&db, &["quarantine"]).stdout;
    assert!(
        q.contains("shop.csv:4") && q.contains("csv row has 3 fields, header has 5"),
        "{q}"
    );
    assert!(q.contains("bad row"), "{q}");

    // show prints the golden profile with provenance and every source record.
    let show = ok(&db, &["show", &jane]).stdout;
    assert!(
        show.contains("Jane") && show.contains("crm:c1") && show.contains("shop:s1"),
        "{show}"
    );
}

#[test]
fn ingest_the_bundled_demo_sources() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    ingest_demo(
        &db,
        &[
            ("crm.toml", "crm.csv"),
            ("billing.toml", "billing.jsonl"),
            ("helpdesk.toml", "helpdesk.csv"),
            ("calls.toml", "calls.csv"),
        ],
    );
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&db, &["stats", "--json"]).stdout).unwrap();
    assert_eq!(
        stats["quarantined"], 3,
        "one bad row per broken demo file: {stats}"
    );
    assert!(stats["events"].as_i64().unwrap() > 400, "{stats}");
    let customers = stats["customers"].as_i64().unwrap();
    assert!((250..=400).contains(&customers), "{stats}");
    // Every calls.csv record is an event, not a customer.
    let links = ok(&db, &["export", "links"]).stdout;
    assert!(
        !links.contains("\"source\":\"calls\""),
        "calls are not identities"
    );
    let events = ok(&db, &["export", "events", "--format", "csv"]).stdout;
    let attached = events
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("cus_"))
        .count();
    assert!(
        attached > 300,
        "most events attach to a customer: {attached}"
    );

    // The switchboard number is shared by four CRM contacts with different names: it is
    // detected as generic, stops linking, and each contact stays its own customer.
    let generic = &stats["generic_values"];
    assert_eq!(generic[0]["value"], "phone:+15125550100", "{stats}");
    assert_eq!(generic[0]["names"], 4, "{stats}");
    let holders = ok(&db, &["lookup", "phone:512-555-0100", "--json"]).stdout;
    let holders: serde_json::Value = serde_json::from_str(&holders).unwrap();
    let holders = holders.as_array().unwrap();
    assert_eq!(holders.len(), 4, "four people, four customers");
    let crm: Vec<String> = holders
        .iter()
        .map(|c| {
            let r = c["records"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["source"] == "crm")
                .unwrap();
            format!("crm:{}", r["source_id"].as_str().unwrap())
        })
        .collect();
    let pair = ok(&db, &["explain-pair", &crm[0], &crm[1], "--json"]).stdout;
    let pair: serde_json::Value = serde_json::from_str(&pair).unwrap();
    assert_eq!(pair["same_customer"], false);
    assert_eq!(pair["generic_values"][0], "phone:+15125550100", "{pair}");
    assert_eq!(pair["comparison"]["phone"], "missing", "{pair}");
    assert_eq!(pair["score"]["band"], "no_link", "{pair}");
    let total: f64 = pair["score"]["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["weight"].as_f64().unwrap())
        .sum();
    assert!((total - pair["score"]["total_weight"].as_f64().unwrap()).abs() < 1e-9);
    let text = ok(&db, &["explain-pair", &crm[0], &crm[1]]).stdout;
    assert!(
        text.contains("ignored generic values: phone:+15125550100")
            && text.contains("band no_link"),
        "{text}"
    );

    // Possible matches wait for review; confirming one merges the two customers.
    let possible: serde_json::Value =
        serde_json::from_str(&ok(&db, &["possible", "--json"]).stdout).unwrap();
    let first = &possible[0];
    let w = first["weight"].as_f64().unwrap();
    assert!((2.0..6.0).contains(&w), "between the thresholds: {first}");
    assert_ne!(first["left"]["customer_id"], first["right"]["customer_id"]);
    let key = |r: &serde_json::Value| {
        format!(
            "{}:{}",
            r["source"].as_str().unwrap(),
            r["source_id"].as_str().unwrap()
        )
    };
    let (left, right) = (key(&first["left"]), key(&first["right"]));
    ok(&db, &["curate", "force-merge", &left, &right]);
    let pair: serde_json::Value =
        serde_json::from_str(&ok(&db, &["explain-pair", &left, &right, "--json"]).stdout).unwrap();
    assert_eq!(pair["same_customer"], true);
    assert_eq!(pair["decision"], "forced");

    let r = onetruth(&db, &["explain-pair", "crm:nope", &crm[1]]);
    assert_eq!(r.status, 3, "{}", r.stderr);
    let r = onetruth(&db, &["explain-pair", "nocolon", &crm[1]]);
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("SOURCE:SOURCE_ID"), "{}", r.stderr);
}

#[test]
fn bad_input_gives_one_clear_line_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let data = write(dir.path(), "d.csv", "id,email\n1,a@b.com\n");

    let typo = write(
        dir.path(),
        "typo.toml",
        MANIFEST.replace("[record]", "[record]\nidd = \"x\""),
    );
    let r = onetruth(&db, &["ingest", "--connector", &typo, &data]);
    assert_eq!(r.status, 1);
    assert!(
        r.stderr.contains("typo.toml") && r.stderr.contains("idd"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"));

    let shop = write(dir.path(), "shop.toml", MANIFEST);
    let r = onetruth(
        &db,
        &["ingest", "--connector", &shop, "/nonexistent/file.csv"],
    );
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("/nonexistent/file.csv"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);

    let r = onetruth(&db, &["export", "links", "--since", "5"]);
    assert_eq!(r.status, 1);
    assert!(
        r.stderr
            .contains("--since applies to `export customers` only"),
        "{}",
        r.stderr
    );

    let r = onetruth(
        &dir.path().join("typo.db"),
        &["serve", "--listen", "127.0.0.1:0"],
    );
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    assert!(
        !dir.path().join("typo.db").exists(),
        "a mistyped --db is not created"
    );

    let r = onetruth(&db, &["lookup", "fax:123"]);
    assert_eq!(r.status, 1);
    assert!(
        r.stderr.contains("unknown identifier kind `fax`"),
        "{}",
        r.stderr
    );

    let r = onetruth(&db, &["lookup", "nonsense"]);
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("KIND:VALUE"), "{}", r.stderr);

    // A store written by a newer onetruth is refused, not guessed at.
    ok(&db, &["ingest", "--connector", &shop, &data]);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let r = onetruth(&db, &["stats"]);
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("newer onetruth"), "{}", r.stderr);
    let r = onetruth(&db, &["ingest", "--connector", &shop, &data]);
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("newer onetruth"), "{}", r.stderr);
}

/// Records of one person in two systems, plus an unrelated one.
const PEOPLE: &str = "id,updated,email,phone,name\n\
    a1,1,jane@example.com,,Jane Doe\n\
    a2,1,jane@example.com,(415) 555-2671,Jane Doe\n\
    a3,1,j.doe@work.example,(415) 555-2671,Jane Doe\n\
    b1,1,bob@example.com,,Bob Roe\n";

fn customer_of(db: &std::path::Path, record: &str) -> String {
    let links = ok(db, &["export", "links"]).stdout;
    let (source, id) = record.split_once(':').unwrap();
    links
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["source"] == source && l["source_id"] == id)
        .map(|l| l["customer_id"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("{record} not linked: {links}"))
}

#[test]
fn explain_curate_split_and_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let shop = write(dir.path(), "shop.toml", MANIFEST);
    let data = write(dir.path(), "people.csv", PEOPLE);
    ok(&db, &["ingest", "--connector", &shop, &data]);
    let jane = customer_of(&db, "shop:a1");
    assert_eq!(customer_of(&db, "shop:a2"), jane);
    assert_eq!(customer_of(&db, "shop:a3"), jane);
    let bob = customer_of(&db, "shop:b1");
    assert_ne!(bob, jane);

    // explain lists every link inside with per-field levels and weights.
    let e: serde_json::Value =
        serde_json::from_str(&ok(&db, &["explain", &jane, "--json"]).stdout).unwrap();
    assert_eq!(e["records"].as_array().unwrap().len(), 3);
    let links = e["links"].as_array().unwrap();
    assert!(links.len() >= 2, "{e}");
    let accepted = links.iter().filter(|l| l["decision"] == "accepted").count();
    assert_eq!(
        accepted, 2,
        "a spanning set of links joins three records: {e}"
    );
    assert!(
        links[0]["score"]["contributions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["field"] == "email" || c["field"] == "phone")
    );
    let text = ok(&db, &["explain", &jane]).stdout;
    assert!(
        text.contains("links inside") && text.contains("decision: accepted"),
        "{text}"
    );

    // Detach a3: the customer splits; the larger part keeps the id.
    ok(&db, &["curate", "detach", "shop:a3"]);
    assert_eq!(customer_of(&db, "shop:a1"), jane);
    let a3 = customer_of(&db, "shop:a3");
    assert_ne!(a3, jane, "a detached record stands alone");
    let e: serde_json::Value =
        serde_json::from_str(&ok(&db, &["explain", &a3, "--json"]).stdout).unwrap();
    assert!(
        e["refused"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["decision"] == "refused_detached"),
        "{e}"
    );

    // Never-merge a1/a2: they share an email and a name, but the curator wins.
    ok(&db, &["curate", "never-merge", "shop:a1", "shop:a2"]);
    assert_ne!(customer_of(&db, "shop:a1"), customer_of(&db, "shop:a2"));

    // Force-merge Bob into Jane's a1: Bob's id becomes an alias of the older one.
    ok(&db, &["curate", "force-merge", "shop:a1", "shop:b1"]);
    let merged = customer_of(&db, "shop:b1");
    assert_eq!(merged, customer_of(&db, "shop:a1"));
    let shown = ok(&db, &["show", &bob, "--json"]).stdout;
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["id"], merged.as_str(), "{shown}");

    // Decisions persist: re-ingesting (even a changed record) keeps them.
    let changed = PEOPLE.replace("a2,1,", "a2,2,").replace("b1,1,", "b1,2,");
    let data2 = write(dir.path(), "people2.csv", &changed);
    ok(&db, &["ingest", "--connector", &shop, &data2]);
    assert_ne!(customer_of(&db, "shop:a1"), customer_of(&db, "shop:a2"));
    assert_eq!(customer_of(&db, "shop:a1"), customer_of(&db, "shop:b1"));
    assert_ne!(customer_of(&db, "shop:a3"), customer_of(&db, "shop:a1"));

    // Unknown records are "not found".
    let r = onetruth(&db, &["curate", "detach", "shop:nope"]);
    assert_eq!(r.status, 3, "{}", r.stderr);
}

const BRIDGE_MANIFEST: &str = r#"
source = "shop"
[record]
id = "id"
version = { field = "updated" }
delete_when = { field = "deleted", equals = "yes" }
[[identifiers]]
kind = "email"
value = "email"
split = ";"
[attributes]
name = { value = "name" }
"#;

#[test]
fn a_deleted_bridge_record_splits_its_customer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let shop = write(dir.path(), "shop.toml", BRIDGE_MANIFEST);
    // a and c2/c share nothing; b carries both emails and bridges them.
    let v1 = write(
        dir.path(),
        "v1.csv",
        "id,updated,email,name,deleted\n\
         a,1,kim@example.com,Kim Park,\n\
         c,1,kp@work.example,Kim Park,\n\
         c2,1,kp@work.example,Kim Park,\n\
         b,1,kim@example.com;kp@work.example,Kim Park,\n",
    );
    ok(&db, &["ingest", "--connector", &shop, &v1]);
    let one = customer_of(&db, "shop:a");
    for r in ["shop:b", "shop:c", "shop:c2"] {
        assert_eq!(customer_of(&db, r), one, "{r}");
    }
    // Delete the bridge: the customer splits, the larger part (c, c2) keeps the id, the
    // other part gets a new one, and the change is in the changelog-backed stats.
    let v2 = write(
        dir.path(),
        "v2.csv",
        "id,updated,email,name,deleted\nb,2,,,yes\n",
    );
    ok(&db, &["ingest", "--connector", &shop, &v2]);
    assert_eq!(customer_of(&db, "shop:c"), one);
    assert_eq!(customer_of(&db, "shop:c2"), one);
    let a = customer_of(&db, "shop:a");
    assert_ne!(a, one);
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&db, &["show", &a, "--json"]).stdout).unwrap();
    assert_eq!(shown["records"].as_array().unwrap().len(), 1);
    // Bring the bridge back: one customer again, under the oldest id.
    let v3 = write(
        dir.path(),
        "v3.csv",
        "id,updated,email,name,deleted\nb,3,kim@example.com;kp@work.example,Kim Park,\n",
    );
    ok(&db, &["ingest", "--connector", &shop, &v3]);
    assert_eq!(customer_of(&db, "shop:a"), one);
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&db, &["show", &a, "--json"]).stdout).unwrap();
    assert_eq!(
        shown["id"],
        one.as_str(),
        "the split-off id is now an alias: {shown}"
    );
}

#[test]
fn train_saves_versioned_parameters_and_reresolve_keeps_ids() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    ingest_demo(
        &db,
        &[("crm.toml", "crm.csv"), ("billing.toml", "billing.jsonl")],
    );
    let stats = |db: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&ok(db, &["stats", "--json"]).stdout).unwrap()
    };
    assert!(stats(&db)["match_parameters"].is_null(), "shipped defaults");

    let dry: serde_json::Value =
        serde_json::from_str(&ok(&db, &["train", "--dry-run", "--json"]).stdout).unwrap();
    assert!(dry["id"].is_null());
    assert!(
        dry["report"]["random_pairs"].as_u64().unwrap() > 1000,
        "{}",
        dry["report"]
    );
    assert!(dry["report"]["candidate_pairs"].as_u64().unwrap() > 0);
    // Family-name frequencies travel with the parameters, for the term-frequency adjustment.
    let tf = dry["params"]["term_frequencies"].as_object().unwrap();
    assert!(!tf.is_empty());
    assert!(
        tf.values()
            .all(|f| f.as_f64().unwrap() > 0.0 && f.as_f64().unwrap() < 1.0)
    );
    assert!(
        stats(&db)["match_parameters"].is_null(),
        "a dry run saves nothing"
    );

    let text = ok(&db, &["train"]).stdout;
    assert!(text.contains("saved as match parameters #1"), "{text}");
    assert!(
        text.contains("given_name") && text.contains("nickname"),
        "{text}"
    );
    let s = stats(&db);
    assert_eq!(s["match_parameters"]["id"], 1);
    assert_eq!(s["match_parameters"]["origin"], "train");

    // The first reresolve applies the trained parameters; a second one, with nothing
    // changed, moves nothing: re-clustering is deterministic and ids are stable.
    let before = ok(&db, &["export", "links"]).stdout;
    ok(&db, &["reresolve"]);
    let first = ok(&db, &["export", "links"]).stdout;
    let version = stats(&db)["changelog_version"].clone();
    let r = ok(&db, &["reresolve"]);
    assert!(
        r.stdout.contains("0 customers created, 0 merged, 0 split"),
        "{}",
        r.stdout
    );
    assert_eq!(ok(&db, &["export", "links"]).stdout, first);
    assert_eq!(
        stats(&db)["changelog_version"],
        version,
        "no changelog entries"
    );
    assert_eq!(
        before.lines().count(),
        first.lines().count(),
        "every record still linked"
    );
}

#[test]
fn identifier_matching_links_by_shared_identifiers_and_explains_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let config = write(
        dir.path(),
        "onetruth.toml",
        "[resolution]\nmatching = \"identifiers\"\n",
    );
    let shop = write(dir.path(), "shop.toml", MANIFEST);
    let crm = write(dir.path(), "crm.toml", CRM_MANIFEST);
    let shop_csv = write(
        dir.path(),
        "shop.csv",
        "id,updated,email,phone,name\ns1,1,Jane@Example.com,(415) 555-2671,Jane Doe\n",
    );
    // c2 has Jane's name but none of her identifiers: scoring could link it, identifiers not.
    let crm_jsonl = write(
        dir.path(),
        "crm.jsonl",
        "{\"contact_id\":\"c1\",\"contact\":{\"email\":\"jane@example.com\",\"first\":\"Jane\",\"last\":\"Doe\"}}\n\
         {\"contact_id\":\"c2\",\"contact\":{\"email\":\"jdoe@work.example\",\"first\":\"Jane\",\"last\":\"Doe\"}}\n",
    );
    let with_config = |args: &[&str]| {
        let mut all = vec!["--config", config.as_str()];
        all.extend_from_slice(args);
        ok(&db, &all)
    };
    with_config(&["ingest", "--connector", &shop, &shop_csv]);
    let crm_run = with_config(&["ingest", "--connector", &crm, &crm_jsonl]);
    // Nothing is scored: the summary counts the one pair that shares an identifier.
    assert!(
        crm_run
            .stdout
            .contains("; 1 candidate pairs sharing an identifier"),
        "{}",
        crm_run.stdout
    );
    let jane = customer_of(&db, "shop:s1");
    assert_eq!(customer_of(&db, "crm:c1"), jane);
    assert_ne!(customer_of(&db, "crm:c2"), jane);

    let pair: serde_json::Value =
        serde_json::from_str(&with_config(&["explain-pair", "crm:c1", "shop:s1", "--json"]).stdout)
            .unwrap();
    assert_eq!(pair["matching"], "identifiers", "{pair}");
    assert_eq!(pair["decision"], "accepted", "{pair}");
    assert_eq!(
        pair["shared_identifiers"],
        serde_json::json!(["email:jane@example.com"]),
        "{pair}"
    );
    let text = with_config(&["explain-pair", "crm:c1", "shop:s1"]).stdout;
    assert!(
        text.contains("shared identifiers: email:jane@example.com")
            && text.contains("matching: identifiers"),
        "{text}"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&with_config(&["stats", "--json"]).stdout).unwrap();
    assert_eq!(stats["possible_pairs"], 0, "{stats}");
    assert_eq!(stats["matching"], "identifiers", "{stats}");
    assert!(
        with_config(&["stats"])
            .stdout
            .contains("matching               identifiers")
    );
}

/// `n` shop records as gzipped JSON lines with ids `prefix0..`; with `truncated`, the file
/// stops a third of the way into its compressed stream (a read error after the first batches).
fn shop_gz(dir: &std::path::Path, name: &str, prefix: &str, n: usize, truncated: bool) -> String {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for i in 0..n {
        // Values that do not compress away, so the stream is long enough to cut.
        let salt = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        writeln!(
            gz,
            r#"{{"id":"{prefix}{i}","updated":1,"email":"p{i}.{salt:x}@example.com","name":"P {salt:x}"}}"#
        )
        .unwrap();
    }
    let mut bytes = gz.finish().unwrap();
    if truncated {
        bytes.truncate(bytes.len() / 3);
    }
    write(dir, name, bytes)
}

#[test]
fn a_failed_first_ingest_leaves_no_store_and_a_later_one_keeps_its_committed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let shop = write(dir.path(), "shop.toml", MANIFEST);
    let config = write(dir.path(), "small.toml", "[ingest]\nbatch_size = 10\n");
    let broken = shop_gz(dir.path(), "broken.jsonl.gz", "b", 3000, true);
    let ingest = |file: &str| {
        onetruth(
            &db,
            &["--config", &config, "ingest", "--connector", &shop, file],
        )
    };

    // The store's first ingest is written beside it and moved into place only when whole.
    let r = ingest(&broken);
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert!(r.stderr.contains("broken.jsonl.gz"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert_eq!(
        r.stderr.matches("incomplete deflate stream").count(),
        1,
        "the cause once: {}",
        r.stderr
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("t.db"))
        .collect();
    assert!(left.is_empty(), "a failed first ingest leaves {left:?}");

    let good = shop_gz(dir.path(), "good.jsonl.gz", "g", 3000, false);
    let r = ingest(&good);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(r.stdout.contains("applied 3000"), "{}", r.stdout);
    assert!(db.exists() && !dir.path().join("t.db.loading").exists());
    let records = |db: &std::path::Path| -> i64 {
        let stats: serde_json::Value =
            serde_json::from_str(&ok(db, &["stats", "--json"]).stdout).unwrap();
        stats["records"].as_i64().unwrap()
    };
    assert_eq!(records(&db), 3000);

    // Into a store that exists, every committed batch stays, with the checkpoint of the last.
    let r = ingest(&broken);
    assert_eq!(r.status, 1, "{}", r.stderr);
    let kept = records(&db) - 3000;
    assert!(
        kept > 0 && kept < 3000,
        "{kept} records kept of the broken file"
    );

    // `initial_load = false` writes a new store in place, like any other ingest.
    let in_place = dir.path().join("in_place.db");
    let config = write(
        dir.path(),
        "in_place.toml",
        "[ingest]\nbatch_size = 10\ninitial_load = false\n",
    );
    let r = onetruth(
        &in_place,
        &["--config", &config, "ingest", "--connector", &shop, &broken],
    );
    assert_eq!(r.status, 1, "{}", r.stderr);
    let kept = records(&in_place);
    assert!(kept > 0 && kept < 3000, "{kept} records kept in place");
}

#[test]
fn quarantine_replay_applies_what_a_fixed_manifest_maps_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let data = dir.path().join("people.jsonl");
    std::fs::write(
        &data,
        concat!(
            "{\"id\":\"1\",\"email\":\"a@x.example\",\"version\":1}\n",
            "{\"id\":\"2\",\"email\":\"b@x.example\",\"version\":\"v2\"}\n",
            "{\"id\":\"3\",\"email\":\"c@x.example\",\"version\":\"v3\"}\n",
            "{oops\n",
        ),
    )
    .unwrap();
    let manifest = |name: &str, version: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "source = \"people\"\n[record]\nid = \"id\"\n{version}\n[[identifiers]]\nkind = \"email\"\nvalue = \"email\"\n"
            ),
        )
        .unwrap();
        path.display().to_string()
    };
    let strict = manifest("strict.toml", "version = { field = \"version\" }");
    let fixed = manifest("fixed.toml", "");
    let r = ok(
        &db,
        &["ingest", "--connector", &strict, data.to_str().unwrap()],
    );
    assert!(
        r.stdout.contains("applied 1 / unchanged 0 / quarantined 3"),
        "{}",
        r.stdout
    );

    let r = ok(&db, &["quarantine", "replay", "--connector", &fixed]);
    assert_eq!(
        r.stdout.trim(),
        "replayed 3 quarantined records: applied 2, unchanged 0, still quarantined 1"
    );
    ok(&db, &["lookup", "email:b@x.example"]);
    let q = ok(&db, &["quarantine"]).stdout;
    assert!(
        q.contains("people.jsonl:4") && q.contains("invalid json"),
        "{q}"
    );
    assert!(!q.contains("people.jsonl:2"), "{q}");
    // Again: only the line no manifest can read is left, and it stays.
    let r = ok(&db, &["quarantine", "replay", "--connector", &fixed]);
    assert_eq!(
        r.stdout.trim(),
        "replayed 1 quarantined records: applied 0, unchanged 0, still quarantined 1"
    );
}
