//! The router, in-process, over a real SQLite file.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use onetruth_api::{ApiState, router};
use onetruth_model::{Attributes, IdentifierKind, Normalizer, Op, SourceRecord};
use onetruth_store::{Batch, Store, StoreOptions};
use tower::ServiceExt;

fn rec(source: &str, id: &str, ids: &[(&str, &str)]) -> SourceRecord {
    let n = Normalizer::default();
    SourceRecord {
        source: source.into(),
        source_id: id.into(),
        version: 1,
        op: Op::Upsert,
        identifiers: ids
            .iter()
            .map(|(k, v)| {
                n.normalize(&IdentifierKind::parse(k).unwrap(), v, None)
                    .unwrap()
            })
            .collect(),
        attributes: Attributes {
            given_name: Some("Jane".into()),
            ..Default::default()
        },
        events: vec![],
        raw: serde_json::Value::Null,
        raw_text: None,
    }
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, serde_json::Value) {
    let resp = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn setup() -> (tempfile::TempDir, axum::Router) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let mut store = Store::open(&db, StoreOptions::default()).unwrap();
    // Two customers, then a record that joins them: cus_2 becomes an alias of cus_1.
    for r in [
        rec("crm", "1", &[("email", "jane@example.com")]),
        rec(
            "billing",
            "b1",
            &[("phone", "+14155552671"), ("external", "stripe:cus_X")],
        ),
        rec(
            "helpdesk",
            "h1",
            &[("email", "jane@example.com"), ("phone", "415-555-2671")],
        ),
    ] {
        store
            .apply(Batch {
                connector: "t".into(),
                records: vec![r],
                ..Default::default()
            })
            .unwrap();
    }
    let app = router(ApiState::new(
        db,
        StoreOptions::default(),
        Normalizer::default(),
    ));
    (dir, app)
}

#[tokio::test]
async fn customer_by_id_and_by_alias() {
    let (_d, app) = setup();
    let (status, body) = get(&app, "/v1/customers/cus_1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], "cus_1");
    assert_eq!(body["records"].as_array().unwrap().len(), 3);
    assert_eq!(body["golden"]["given_name"]["value"], "Jane");

    let (status, body) = get(&app, "/v1/customers/cus_2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], "cus_1", "alias resolves to the canonical id");
    assert_eq!(body["requested_id"], "cus_2");

    assert_eq!(
        get(&app, "/v1/customers/cus_99").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, "/v1/customers/nope").await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn lookup_normalizes_like_ingest() {
    let (_d, app) = setup();
    for q in [
        "email=JANE%40Example.com",
        "phone=(415)%20555-2671",
        "phone=%2B1%20415%20555%202671",
        "external=Stripe:cus_X",
    ] {
        let (status, body) = get(&app, &format!("/v1/lookup?{q}")).await;
        assert_eq!(status, StatusCode::OK, "{q}");
        assert_eq!(body["customers"][0]["id"], "cus_1", "{q}");
    }
    let (status, body) = get(&app, "/v1/lookup?email=nobody%40example.com").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        !body.to_string().contains("nobody"),
        "error bodies never echo identifiers"
    );
    assert_eq!(
        get(&app, "/v1/lookup?email=a%40b.com&phone=1").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(get(&app, "/v1/lookup").await.0, StatusCode::BAD_REQUEST);
    let (status, body) = get(&app, "/v1/lookup?email=not-an-email").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!body.to_string().contains("not-an-email"));
}

#[tokio::test]
async fn a_split_customer_answers_gone_with_where_its_records_went() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let mut store = Store::open(&db, StoreOptions::default()).unwrap();
    let person = |id: &str, given: &str, email: &str| {
        let mut r = rec("crm", id, &[("email", email)]);
        r.attributes.given_name = Some(given.into());
        r.attributes.family_name = Some("Moss".into());
        r
    };
    let apply = |store: &mut Store, records: Vec<SourceRecord>| {
        store
            .apply(Batch {
                connector: "t".into(),
                records,
                ..Default::default()
            })
            .unwrap();
    };
    apply(&mut store, vec![person("x", "Xena", "xena@example.com")]); // cus_1
    apply(&mut store, vec![person("y", "Yuri", "yuri@example.com")]); // cus_2
    // a and b: one person by email and name, cus_3.
    apply(
        &mut store,
        vec![
            person("a", "Ann", "ann@example.com"),
            person("b", "Ann", "ann@example.com"),
        ],
    );
    // Both change: a turns out to be Xena, b Yuri. cus_3's records go to cus_1 and cus_2.
    let mut a = person("a", "Xena", "xena@example.com");
    a.version = 2;
    let mut b = person("b", "Yuri", "yuri@example.com");
    b.version = 2;
    apply(&mut store, vec![a, b]);
    let app = router(ApiState::new(
        db,
        StoreOptions::default(),
        Normalizer::default(),
    ));
    let (status, body) = get(&app, "/v1/customers/cus_3").await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["split_into"], serde_json::json!(["cus_1", "cus_2"]));
    let (status, body) = get(&app, "/v1/customers/cus_1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["records"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn explain_serves_the_links_as_data() {
    let (_d, app) = setup();
    let (status, body) = get(&app, "/v1/customers/cus_1/explain").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "cus_1");
    let links = body["links"].as_array().unwrap();
    assert!(!links.is_empty(), "{body}");
    assert!(links[0]["score"]["contributions"].as_array().unwrap().len() >= 8);
    let (status, _) = get(&app, "/v1/customers/cus_999/explain").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
