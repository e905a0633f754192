//! The JSON Schemas in schemas/ are generated from the Rust types; this fails when they drift.
//! Regenerate with `UPDATE_SCHEMAS=1 cargo test --test schemas`.

use std::path::Path;

fn check(name: &str, schema: serde_json::Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas")
        .join(name);
    let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schemas/{name} is out of date with the Rust types; regenerate with `UPDATE_SCHEMAS=1 cargo test --test schemas` and commit it"
    );
}

#[test]
fn source_record_schema_is_current() {
    check(
        "source-record.schema.json",
        onetruth_model::source_record_schema(),
    );
}

#[test]
fn manifest_schema_is_current() {
    check(
        "manifest.schema.json",
        onetruth_connect::manifest_schema(&onetruth_pipeline::transports()),
    );
}

#[test]
fn schemas_describe_the_types() {
    let record = onetruth_model::source_record_schema();
    let required: Vec<&str> = record["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(required, ["source", "source_id", "version"]);
    let manifest = onetruth_connect::manifest_schema(&onetruth_pipeline::transports());
    assert_eq!(
        manifest["additionalProperties"], false,
        "unknown manifest keys are rejected"
    );
}
