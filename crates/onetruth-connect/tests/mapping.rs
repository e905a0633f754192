//! The mapping engine on small inline manifests: every kind of field spec, and the errors a
//! manifest author or a bad record gets.

use onetruth_connect::{Manifest, MapError, Mapper, Position, RawBody, RawRecord, RecordMeta};
use onetruth_model::{Normalizer, Op, SourceRecord};
use serde_json::{Value, json};

const RUN_VERSION: i64 = 99;

fn manifest(text: &str) -> Manifest {
    Manifest::parse_str(text, config::FileFormat::Toml).unwrap_or_else(|e| panic!("{e}"))
}

fn mapper(text: &str) -> Mapper {
    Mapper::new(&manifest(text), &Normalizer::default())
        .unwrap_or_else(|errors| panic!("{errors:?}"))
}

fn raw(v: Value) -> RawRecord {
    RawRecord {
        position: Position("test:1".into()),
        body: RawBody::Parsed(v.as_object().expect("an object").clone()),
        text: None,
        meta: None,
    }
}

/// Map `v` as a parsed object, and as the text of a JSONL line (which the mapper parses
/// itself, borrowing its strings): both must give the same record or the same error.
fn map(m: &Mapper, v: Value) -> Result<SourceRecord, MapError> {
    let parsed = m.map(&raw(v.clone()), RUN_VERSION);
    let text = v.to_string();
    let line = RawRecord {
        position: Position("test:1".into()),
        body: RawBody::Json(text.clone()),
        text: None,
        meta: None,
    };
    match (&parsed, m.map(&line, RUN_VERSION)) {
        (Ok(a), Ok(mut b)) => {
            assert_eq!(
                b.raw_text.as_deref(),
                Some(text.as_str()),
                "the line is the payload"
            );
            assert_eq!(b.raw, Value::Null);
            b.raw = a.raw.clone();
            b.raw_text = a.raw_text.clone();
            assert_eq!(a, &b, "mapped from the text of {v}");
        }
        (Err(a), Err(b)) => assert_eq!(a, &b, "mapped from the text of {v}"),
        (a, b) => panic!("{v}: parsed {a:?}, from its text {b:?}"),
    }
    parsed
}

fn ok(m: &Mapper, v: Value) -> SourceRecord {
    map(m, v).unwrap_or_else(|e| panic!("maps: {e}"))
}

fn keys(r: &SourceRecord) -> Vec<String> {
    r.identifiers.iter().map(|i| i.key()).collect()
}

/// Errors from `Mapper::new`.
fn invalid(text: &str) -> Vec<String> {
    match Mapper::new(&manifest(text), &Normalizer::default()) {
        Ok(_) => panic!("manifest should be invalid"),
        Err(errors) => errors,
    }
}

const HEAD: &str = "source = \"t\"\n[record]\nid = \"id\"\n";

#[test]
fn templates_collapse_whitespace_and_skip_missing_placeholders() {
    let m = mapper(
        r#"
        source = "t"
        [record]
        id = { template = "{region}-{number}" }
        [attributes]
        full_name = { template = "{title} {first}   {last}" }
        company = { template = "{org.name}", default = "Independent" }
        [attributes.traits]
        label = { template = "{a.b} / {list.1}" }
        fixed = { template = "Acme  Inc" }
        "#,
    );
    let r = ok(
        &m,
        json!({"region": "eu", "number": 42, "first": " Jane ", "last": "Doe",
               "a": {"b": "x"}, "list": ["p", "q"]}),
    );
    assert_eq!(r.source_id, "eu-42", "numbers render as text");
    assert_eq!(r.attributes.full_name.as_deref(), Some("Jane Doe"));
    assert_eq!(r.attributes.traits["label"], "x / q");
    // No placeholders at all: literal text.
    assert_eq!(r.attributes.traits["fixed"], "Acme Inc");
    // Every placeholder missing: the template is empty, so the default applies.
    assert_eq!(r.attributes.company.as_deref(), Some("Independent"));

    // A template whose placeholders are all missing is no id at all.
    let e = map(&m, json!({})).unwrap_err();
    assert_eq!(e.to_string(), "record.id: missing template");
    // One placeholder is enough.
    assert_eq!(ok(&m, json!({"number": 5})).source_id, "-5");

    let errors = invalid(&format!(
        "{HEAD}[attributes]\nfull_name = {{ template = \"{{first\" }}\ncompany = {{ template = \"a {{}} b\" }}\n"
    ));
    assert_eq!(
        errors,
        [
            "attributes.full_name: unclosed `{` in template `{first`",
            "attributes.company: empty placeholder in template `a {} b`",
        ]
    );
}

#[test]
fn constants_and_defaults() {
    let m = mapper(&format!(
        r#"{HEAD}
        [[identifiers]]
        kind = "external"
        system = "legacy"
        value = {{ field = "legacy_id", default = "none" }}
        [attributes]
        company = {{ field = "org", default = "Independent" }}
        [[attributes.addresses]]
        city = "city"
        country = {{ const = "US" }}
        [attributes.traits]
        tier = {{ const = "gold" }}
        plan = {{ field = "plan", default = "free" }}
        "#
    ));
    let r = ok(
        &m,
        json!({"id": "1", "org": "Acme", "plan": "pro", "legacy_id": "L-9"}),
    );
    assert_eq!(r.attributes.company.as_deref(), Some("Acme"));
    assert_eq!(r.attributes.traits["tier"], "gold");
    assert_eq!(r.attributes.traits["plan"], "pro");
    assert_eq!(keys(&r), ["external:legacy:L-9"]);
    // A constant alone makes an address: the country is known even without a city.
    assert_eq!(r.attributes.addresses[0].country.as_deref(), Some("US"));
    assert_eq!(r.attributes.addresses[0].city, None);

    // Missing, empty and blank values all take the default — for attributes, traits and
    // identifiers alike.
    for v in [
        json!({"id": "1"}),
        json!({"id": "1", "org": "", "plan": "  ", "legacy_id": ""}),
        json!({"id": "1", "org": null, "plan": null, "legacy_id": null}),
    ] {
        let r = ok(&m, v.clone());
        assert_eq!(r.attributes.company.as_deref(), Some("Independent"), "{v}");
        assert_eq!(r.attributes.traits["plan"], "free", "{v}");
        assert_eq!(keys(&r), ["external:legacy:none"], "{v}");
    }

    let errors = invalid(&format!(
        "{HEAD}[attributes]\ncompany = {{ field = \"a\", const = \"b\" }}\nbirth_date = {{ default = \"x\" }}\n"
    ));
    assert_eq!(
        errors,
        [
            "attributes.birth_date: give exactly one of `field`, `template`, `const`",
            "attributes.company: give exactly one of `field`, `template`, `const`",
        ]
    );
}

#[test]
fn nested_paths_array_indexes_and_dotted_keys() {
    let m = mapper(
        r#"
        source = "t"
        [record]
        id = "meta.id"
        [[identifiers]]
        kind = "email"
        value = "contact.emails.0"
        [[identifiers]]
        kind = "phone"
        value = "contact.phones.1.number"
        [attributes]
        company = "Account.Name"
        given_name = "contact.name.given"
        "#,
    );
    let r = ok(
        &m,
        json!({
            "meta": {"id": 7},
            "contact": {
                "emails": ["Jane@Example.com", "other@example.com"],
                "phones": [{"number": "bad"}, {"number": "+44 20 7946 0018"}],
                "name": {"given": "Jane"}
            },
            // A CSV header with a dot: the whole key wins over the path.
            "Account.Name": "Acme",
            "Account": {"Name": "Not this"}
        }),
    );
    assert_eq!(r.source_id, "7");
    assert_eq!(keys(&r), ["email:jane@example.com", "phone:+442079460018"]);
    assert_eq!(r.attributes.company.as_deref(), Some("Acme"));
    assert_eq!(r.attributes.given_name.as_deref(), Some("Jane"));

    // Out-of-range indexes, indexes into objects and paths through scalars are just absent.
    let r = ok(
        &m,
        json!({"meta": {"id": "8"}, "contact": {"emails": [], "phones": {"1": {"number": "x"}},
               "name": "Jane"}}),
    );
    assert!(r.identifiers.is_empty(), "{:?}", r.identifiers);
    assert_eq!(r.attributes.given_name, None);
    // Objects and arrays are not text.
    let e = map(&m, json!({"meta": {"id": {"x": 1}}})).unwrap_err();
    assert_eq!(e.to_string(), "record.id: missing field `meta.id`");
}

#[test]
fn split_and_arrays_give_several_identifiers_without_duplicates() {
    let m = mapper(&format!(
        r#"{HEAD}
        [[identifiers]]
        kind = "email"
        value = "emails"
        split = ";"
        [[identifiers]]
        kind = "phone"
        value = "phones"
        "#
    ));
    let r = ok(
        &m,
        json!({"id": "1", "emails": "a@x.com; B@x.com;;a@X.com ;", "phones": ["415-555-2671", "(415) 555 2671", "212 555 0100"]}),
    );
    assert_eq!(
        keys(&r),
        [
            "email:a@x.com",
            "email:b@x.com",
            "phone:+14155552671",
            "phone:+12125550100",
        ]
    );
    // Arrays are split too.
    let r = ok(
        &m,
        json!({"id": "1", "emails": ["a@x.com;c@x.com", "b@x.com"]}),
    );
    assert_eq!(
        keys(&r),
        ["email:a@x.com", "email:c@x.com", "email:b@x.com"]
    );
}

#[test]
fn dates_and_timestamps_in_every_format() {
    let m = mapper(
        r#"
        source = "t"
        [record]
        id = "id"
        version = { field = "modified", format = "rfc3339" }
        [attributes]
        birth_date = { field = "dob", format = "%d.%m.%Y" }
        [attributes.traits]
        since = { field = "since", format = "%Y%m%d" }
        [event]
        kind = "invoice"
        occurred_at = { field = "at", format = "unix_ms" }
        [event.data]
        amount = "amount"
        paid = "paid"
        "#,
    );
    let r = ok(
        &m,
        json!({"id": "1", "modified": "2024-01-02T03:04:05+01:00", "dob": "03.02.1990",
               "since": "20240102", "at": 1_700_000_000_123_i64, "amount": 12.5, "paid": true}),
    );
    assert_eq!(
        r.version, 1_704_161_045_000_000,
        "2024-01-02T02:04:05Z in µs"
    );
    assert_eq!(r.attributes.birth_date.as_deref(), Some("1990-02-03"));
    assert_eq!(r.attributes.traits["since"], "2024-01-02T00:00:00Z");
    let e = &r.events[0];
    assert_eq!(e.kind, "invoice");
    assert_eq!(e.occurred_at, "2023-11-14T22:13:20Z");
    assert_eq!(
        e.data["amount"],
        json!(12.5),
        "JSON numbers keep their type"
    );
    assert_eq!(e.data["paid"], json!(true));
    // An event with a describing record attaches through the record.
    assert!(e.identifiers.is_empty());

    let bad_date = map(
        &m,
        json!({"id": "1", "modified": "2024-01-02T03:04:05Z", "dob": "31.02.1990", "at": 1}),
    )
    .unwrap_err();
    assert_eq!(
        bad_date.to_string(),
        "attributes.birth_date: not a valid date in field `dob`"
    );
    let bad_version = map(&m, json!({"id": "1", "modified": "yesterday", "at": 1})).unwrap_err();
    assert_eq!(
        bad_version.to_string(),
        "record.version: field `modified` is not a valid timestamp"
    );
    let no_time = map(&m, json!({"id": "1", "modified": "2024-01-02T03:04:05Z"})).unwrap_err();
    assert_eq!(no_time.to_string(), "event.occurred_at: missing field `at`");

    // Defaults: ISO dates (or RFC 3339 timestamps) for birth dates, RFC 3339 for events; the
    // version is an integer unless a format is given.
    let m = mapper(
        r#"
        source = "t"
        [record]
        id = "id"
        version = { field = "v" }
        [attributes]
        birth_date = "dob"
        [event]
        kind = "visit"
        occurred_at = "at"
        "#,
    );
    for (dob, want) in [
        ("1990-02-03", "1990-02-03"),
        ("1990-02-03T23:00:00Z", "1990-02-03"),
    ] {
        let r = ok(
            &m,
            json!({"id": "1", "v": "17", "dob": dob, "at": "2024-05-06T07:08:09.5Z"}),
        );
        assert_eq!(r.version, 17);
        assert_eq!(r.attributes.birth_date.as_deref(), Some(want));
        assert_eq!(r.events[0].occurred_at, "2024-05-06T07:08:09Z");
    }
    // A local time without offset is read as UTC.
    let r = ok(&m, json!({"id": "1", "v": 1, "at": "2024-05-06T07:08:09"}));
    assert_eq!(r.events[0].occurred_at, "2024-05-06T07:08:09Z");
    let e = map(
        &m,
        json!({"id": "1", "v": "1.5", "at": "2024-05-06T07:08:09Z"}),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "record.version: field `v` is not an integer");
    let e = map(&m, json!({"id": "1", "at": "2024-05-06T07:08:09Z"})).unwrap_err();
    assert_eq!(e.to_string(), "record.version: missing field `v`");

    // Version formats: unix seconds, and a chrono pattern.
    for (format, value, want) in [
        ("unix", json!(1_700_000_000), 1_700_000_000_000_000_i64),
        ("unix_ms", json!("1700000000123"), 1_700_000_000_123_000),
        (
            "%Y-%m-%d %H:%M:%S",
            json!("2023-11-14 22:13:20"),
            1_700_000_000_000_000,
        ),
        ("%d/%m/%Y", json!("14/11/2023"), 1_699_920_000_000_000),
    ] {
        let m = mapper(&format!(
            "source = \"t\"\n[record]\nid = \"id\"\nversion = {{ field = \"v\", format = \"{format}\" }}\n"
        ));
        assert_eq!(
            ok(&m, json!({"id": "1", "v": value})).version,
            want,
            "{format}"
        );
    }

    // Format strings chrono cannot use are rejected when the manifest is loaded.
    let errors = invalid(
        "source = \"t\"\n[record]\nid = \"id\"\nversion = { field = \"v\", format = \"%Q\" }\n[attributes]\nbirth_date = { field = \"d\", format = \"%Y-%\" }\n",
    );
    assert_eq!(
        errors,
        [
            "record.version: invalid date format `%Q`",
            "attributes.birth_date: invalid date format `%Y-%`",
        ]
    );
}

#[test]
fn delete_when_compares_text_case_insensitively() {
    let m = mapper(
        "source = \"t\"\n[record]\nid = \"id\"\ndelete_when = { field = \"status\", equals = \"DELETED\" }\n",
    );
    for (status, op) in [
        (json!("deleted"), Op::Delete),
        (json!(" Deleted "), Op::Delete),
        (json!("DELETED"), Op::Delete),
        (json!("active"), Op::Upsert),
        (json!(null), Op::Upsert),
    ] {
        assert_eq!(
            ok(&m, json!({"id": "1", "status": status})).op,
            op,
            "{status}"
        );
    }
    assert_eq!(ok(&m, json!({"id": "1"})).op, Op::Upsert, "missing field");

    // JSON booleans through a nested path.
    let m = mapper(
        "source = \"t\"\n[record]\nid = \"id\"\ndelete_when = { field = \"meta.deleted\", equals = \"true\" }\n",
    );
    assert_eq!(
        ok(&m, json!({"id": "1", "meta": {"deleted": true}})).op,
        Op::Delete
    );
    assert_eq!(
        ok(&m, json!({"id": "1", "meta": {"deleted": false}})).op,
        Op::Upsert
    );

    // A CSV header with a dot, looked up as a whole key like every other path.
    let m = mapper(
        "source = \"t\"\n[record]\nid = \"id\"\ndelete_when = { field = \"Contact.IsDeleted\", equals = \"1\" }\n",
    );
    assert_eq!(
        ok(&m, json!({"id": "1", "Contact.IsDeleted": "1"})).op,
        Op::Delete
    );
}

#[test]
fn name_splitting_styles() {
    let with_style = |style: &str| {
        mapper(&format!(
            "{HEAD}[attributes]\nname = {{ value = \"name\", style = \"{style}\" }}\n"
        ))
    };
    let split = |m: &Mapper, name: &str| {
        let a = ok(m, json!({"id": "1", "name": name})).attributes;
        (a.given_name, a.family_name, a.full_name)
    };
    let s = |v: &str| Some(v.to_string());

    let auto = with_style("auto");
    assert_eq!(
        split(&auto, "Doe, Jane"),
        (s("Jane"), s("Doe"), s("Jane Doe"))
    );
    assert_eq!(
        split(&auto, "Jane Doe"),
        (s("Jane"), s("Doe"), s("Jane Doe"))
    );
    assert_eq!(
        split(&auto, "  Mary   Ann Smith "),
        (s("Mary Ann"), s("Smith"), s("Mary Ann Smith"))
    );
    assert_eq!(
        split(&auto, "van der Berg, Anna Maria"),
        (
            s("Anna Maria"),
            s("van der Berg"),
            s("Anna Maria van der Berg")
        )
    );
    assert_eq!(split(&auto, "Cher"), (s("Cher"), None, s("Cher")));

    let last_first = with_style("last_first");
    assert_eq!(
        split(&last_first, "Doe Jane"),
        (s("Jane"), s("Doe"), s("Jane Doe"))
    );
    assert_eq!(
        split(&last_first, "Doe, Jane Q."),
        (s("Jane Q."), s("Doe"), s("Jane Q. Doe"))
    );
    assert_eq!(split(&last_first, "Doe"), (None, s("Doe"), s("Doe")));

    let first_last = with_style("first_last");
    assert_eq!(
        split(&first_last, "Jane Doe"),
        (s("Jane"), s("Doe"), s("Jane Doe"))
    );
    assert_eq!(split(&first_last, "Jane"), (s("Jane"), None, s("Jane")));

    // The default style is auto.
    let default = mapper(&format!(
        "{HEAD}[attributes]\nname = {{ value = \"name\" }}\n"
    ));
    assert_eq!(
        split(&default, "Doe, Jane"),
        (s("Jane"), s("Doe"), s("Jane Doe"))
    );

    // The split only fills what is not mapped directly.
    let m = mapper(&format!(
        "{HEAD}[attributes]\ngiven_name = \"preferred\"\nname = {{ value = \"name\" }}\n"
    ));
    let a = ok(
        &m,
        json!({"id": "1", "name": "Doe, Jane", "preferred": "Janie"}),
    )
    .attributes;
    assert_eq!(
        (a.given_name, a.family_name, a.full_name),
        (s("Janie"), s("Doe"), s("Janie Doe"))
    );
    let a = ok(&m, json!({"id": "1", "name": "Doe, Jane", "preferred": ""})).attributes;
    assert_eq!(a.given_name, s("Jane"));

    // Without a name field, given + family make the full name.
    let m = mapper(&format!(
        "{HEAD}[attributes]\ngiven_name = \"g\"\nfamily_name = \"f\"\n"
    ));
    let a = ok(&m, json!({"id": "1", "g": "Jane", "f": "Doe"})).attributes;
    assert_eq!(a.full_name, s("Jane Doe"));

    let err = Manifest::parse_str(
        &format!("{HEAD}[attributes]\nname = {{ value = \"n\", style = \"surname_first\" }}\n"),
        config::FileFormat::Toml,
    )
    .unwrap_err();
    assert!(err.contains("surname_first"), "{err}");
}

#[test]
fn unknown_manifest_keys_are_errors_that_name_the_key() {
    let cases = [
        (
            format!("{HEAD}bogus = 1\n"),
            "unknown field `bogus`, expected one of `id`, `version`, `delete_when` for key `record`",
        ),
        (
            "source = \"t\"\nsoruce = \"u\"\n[record]\nid = \"id\"\n".to_string(),
            "unknown field `soruce`, expected one of `source`, `description`, `default_region`, `transport`, `record`, `identifiers`, `attributes`, `event`",
        ),
        (
            "source = \"t\"\n[record]\nid = { field = \"id\", fromat = \"x\" }\n".to_string(),
            "unknown field `fromat`, expected one of `field`, `template`, `const`, `format`, `default` for key `record.id`",
        ),
        (
            format!("{HEAD}[attributes]\ngivenname = \"x\"\n"),
            "unknown field `givenname`, expected one of `given_name`, `family_name`, `full_name`, `name`, `birth_date`, `company`, `addresses`, `traits` for key `attributes`",
        ),
    ];
    for (text, want) in cases {
        let err = Manifest::parse_str(&text, config::FileFormat::Toml).unwrap_err();
        assert_eq!(err, want);
    }
    // Inside arrays of tables too.
    let err = Manifest::parse_str(
        &format!("{HEAD}[[identifiers]]\nkind = \"email\"\nvalue = \"e\"\nsplt = \";\"\n"),
        config::FileFormat::Toml,
    )
    .unwrap_err();
    assert!(err.contains("unknown field `splt`"), "{err}");

    // Loading a file names the file as well.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        format!("{HEAD}[event]\nkind = \"call\"\noccured_at = \"t\"\n"),
    )
    .unwrap();
    let err = Manifest::load(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("manifest {}: ", path.display())),
        "{err}"
    );
    assert!(err.contains("unknown field `occured_at`"), "{err}");
}

#[test]
fn mapper_reports_every_problem_at_once() {
    let text = r#"
        source = "Bad Source"
        default_region = "XX"
        [record]
        id = { }
        [[identifiers]]
        kind = "loyalty_card"
        value = "card"
        [[identifiers]]
        kind = "Not A Kind"
        value = "x"
        [[identifiers]]
        kind = "email"
        value = "email"
        system = "crm"
        region = "US"
        [[identifiers]]
        kind = "external"
        value = "ext"
        [[identifiers]]
        kind = "phone"
        value = "phone"
        region = "ZZ"
        [event]
        kind = " "
        occurred_at = "at"
    "#;
    let errors = invalid(text);
    let want = [
        "source: `Bad Source` must be lowercase letters, digits, `_` or `-`",
        "default_region: unknown phone region `XX`: use an ISO 3166 alpha-2 code such as US or GB",
        "record.id: give exactly one of `field`, `template`, `const`",
        "identifiers[0].kind: custom kind `loyalty_card` is not declared in config (identifiers.custom_kinds)",
        "identifiers[1].kind: invalid kind `Not A Kind`",
        "identifiers[2].system: required for kind `external` and only allowed there",
        "identifiers[2].region: only allowed for kind `phone`",
        "identifiers[3].system: required for kind `external` and only allowed there",
        "identifiers[4].region: unknown phone region `ZZ`: use an ISO 3166 alpha-2 code such as US or GB",
        "event.kind: must not be empty",
    ];
    assert_eq!(errors, want);

    // Declaring the custom kind in the normalizer makes it valid.
    let ok_text = format!("{HEAD}[[identifiers]]\nkind = \"loyalty_card\"\nvalue = \"card\"\n");
    let declared = Normalizer::new("US".parse().unwrap(), ["loyalty_card".to_string()]);
    let m = Mapper::new(&manifest(&ok_text), &declared).unwrap();
    let r = m
        .map(&raw(json!({"id": "1", "card": " LC  42 "})), 1)
        .unwrap();
    assert_eq!(keys(&r), ["loyalty_card:LC 42"]);
}

#[test]
fn bad_records_fail_with_a_reason_and_bad_values_are_flagged() {
    let m = mapper(&format!(
        "{HEAD}[[identifiers]]\nkind = \"phone\"\nvalue = \"phone\"\n[[identifiers]]\nkind = \"email\"\nvalue = \"email\"\n"
    ));
    for v in [
        json!({"phone": "4155552671"}),
        json!({"id": ""}),
        json!({"id": "   "}),
        json!({"id": null}),
    ] {
        let e = map(&m, v.clone()).unwrap_err();
        assert_eq!(e.to_string(), "record.id: missing field `id`", "{v}");
    }
    // The reason never contains identifier values.
    let malformed = RawRecord {
        position: Position("f:3".into()),
        body: RawBody::Malformed {
            text: "{\"id\": 1, \"email\": \"jane@".into(),
            reason: "invalid json: EOF while parsing a string".into(),
        },
        text: None,
        meta: None,
    };
    assert_eq!(
        m.map(&malformed, 1).unwrap_err(),
        MapError("invalid json: EOF while parsing a string".into())
    );

    // A JSONL line the transport passed on as text is refused by the mapper, with
    // serde_json's reason (a position, never the content).
    for (text, reason) in [
        (
            "{\"id\": 1, \"email\": \"jane@",
            "invalid json: EOF while parsing a string at line 1 column 25",
        ),
        (
            "{\"id\": 1} {",
            "invalid json: trailing characters at line 1 column 11",
        ),
        ("[1, 2]", "json line is not an object"),
        ("\"jane@example.com\"", "json line is not an object"),
    ] {
        let line = RawRecord {
            position: Position("f:4".into()),
            body: RawBody::Json(text.into()),
            text: None,
            meta: None,
        };
        assert_eq!(
            m.map(&line, 1).unwrap_err(),
            MapError(reason.into()),
            "{text}"
        );
        let (e, back) = *m.map_owned(line.clone(), 1).unwrap_err();
        assert_eq!(e, MapError(reason.into()));
        assert_eq!(back, line, "handed back whole, for quarantine");
    }

    // Values that cannot be normalized do not fail the record: they are kept, flagged.
    let r = ok(
        &m,
        json!({"id": 5, "phone": "call me", "email": "jane at example"}),
    );
    assert_eq!(r.source_id, "5");
    assert!(r.identifiers.is_empty());
    let flagged: Vec<(&str, &str)> = r
        .attributes
        .flagged
        .iter()
        .map(|f| (f.original.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(
        flagged,
        [
            ("call me", "not a valid phone number"),
            ("jane at example", "not an email address")
        ]
    );
    // No version field: the run's version.
    assert_eq!(r.version, RUN_VERSION);
    assert_eq!(r.raw["phone"], "call me", "the raw record is kept whole");
}

#[test]
fn phone_regions_per_manifest_and_per_identifier() {
    let m = mapper(
        r#"
        source = "t"
        default_region = "GB"
        [record]
        id = "id"
        [[identifiers]]
        kind = "phone"
        value = "uk"
        [[identifiers]]
        kind = "phone"
        value = "us"
        region = "us"
        "#,
    );
    let r = ok(
        &m,
        json!({"id": "1", "uk": "020 7946 0018", "us": "(415) 555-2671"}),
    );
    assert_eq!(keys(&r), ["phone:+442079460018", "phone:+14155552671"]);
}

#[test]
fn event_only_records_move_identifiers_onto_the_event() {
    let m = mapper(
        r#"
        source = "calls"
        [record]
        id = "id"
        [[identifiers]]
        kind = "phone"
        value = "from"
        [attributes]
        full_name = "caller_name"
        [event]
        kind = "call"
        occurred_at = "at"
        describes_customer = false
        [event.data]
        seconds = { field = "secs", default = "0" }
        "#,
    );
    let r = ok(
        &m,
        json!({"id": "c1", "from": "+1 415 555 2671", "caller_name": "JANE", "at": "2025-01-02T03:04:05Z"}),
    );
    assert!(r.identifiers.is_empty());
    assert!(
        r.attributes.is_empty(),
        "caller id names do not describe anyone"
    );
    assert!(!r.is_entity());
    assert_eq!(r.events[0].identifiers[0].key(), "phone:+14155552671");
    assert_eq!(r.events[0].data["seconds"], "0");
    // A withheld number: flagged, attached to nobody.
    let r = ok(
        &m,
        json!({"id": "c2", "from": "Restricted", "at": "2025-01-02T03:04:05Z"}),
    );
    assert!(r.events[0].identifiers.is_empty());
    assert_eq!(r.attributes.flagged[0].original, "Restricted");
    assert!(!r.is_entity());
}

#[test]
fn yaml_manifests_are_accepted() {
    let m = Manifest::parse_str(
        "source: t\nrecord:\n  id: id\nidentifiers:\n  - kind: email\n    value: e\nattributes:\n  name:\n    value: n\n    style: last_first\n",
        config::FileFormat::Yaml,
    )
    .unwrap();
    let m = Mapper::new(&m, &Normalizer::default()).unwrap();
    let r = ok(&m, json!({"id": "1", "e": "A@B.co", "n": "Doe Jane"}));
    assert_eq!(keys(&r), ["email:a@b.co"]);
    assert_eq!(r.attributes.given_name.as_deref(), Some("Jane"));
}

/// A record as a transport with metadata yields it (a Kafka message), mapped both as a parsed
/// object and as the text of one: `_meta.` paths read the metadata either way.
fn map_with_meta(m: &Mapper, v: Value, meta: RecordMeta) -> Result<SourceRecord, MapError> {
    let parsed = RawRecord {
        position: Position("crm.contacts/0@7".into()),
        body: RawBody::Parsed(v.as_object().expect("an object").clone()),
        text: None,
        meta: Some(Box::new(meta.clone())),
    };
    let line = RawRecord {
        body: RawBody::Json(v.to_string()),
        meta: Some(Box::new(meta)),
        ..parsed.clone()
    };
    let a = m.map(&parsed, RUN_VERSION);
    let b = m.map(&line, RUN_VERSION);
    match (&a, b) {
        (Ok(a), Ok(mut b)) => {
            b.raw = a.raw.clone();
            b.raw_text = a.raw_text.clone();
            assert_eq!(a, &b, "mapped from the text of {v}");
        }
        (Err(a), Err(b)) => assert_eq!(a, &b),
        (a, b) => panic!("{v}: parsed {a:?}, from its text {b:?}"),
    }
    a
}

fn kafka_meta() -> RecordMeta {
    RecordMeta {
        fields: json!({
            "key": "c-17",
            "topic": "crm.contacts",
            "partition": 0,
            "offset": 7,
            "timestamp": 1_733_600_000_000i64,
            "headers": {"tenant": "eu", "trace.id": "t-1", "op": "DELETE"}
        })
        .as_object()
        .unwrap()
        .clone(),
        delete: false,
        version: None,
    }
}

#[test]
fn meta_paths_read_what_the_transport_knows() {
    let m = mapper(
        r#"
        source = "t"
        [record]
        id = "_meta.key"
        [[identifiers]]
        kind = "email"
        value = "email"
        [attributes.traits]
        tenant = "_meta.headers.tenant"
        trace = "_meta.headers.trace.id"
        partition = "_meta.partition"
        origin = { template = "{_meta.topic}@{_meta.offset}" }
        received = { field = "_meta.timestamp", format = "unix_ms" }
        "#,
    );
    let r = map_with_meta(&m, json!({"email": "jane@example.com"}), kafka_meta()).unwrap();
    assert_eq!(r.source_id, "c-17");
    assert_eq!(keys(&r), ["email:jane@example.com"]);
    assert_eq!(r.attributes.traits["tenant"], "eu");
    assert_eq!(
        r.attributes.traits["trace"], "t-1",
        "header names may hold dots"
    );
    assert_eq!(
        r.attributes.traits["partition"], 0,
        "numbers keep their type"
    );
    assert_eq!(r.attributes.traits["origin"], "crm.contacts@7");
    assert_eq!(r.attributes.traits["received"], "2024-12-07T19:33:20Z");
    assert_eq!(r.op, Op::Upsert);
    assert_eq!(r.version, RUN_VERSION);

    // A record's own `_meta` field is not what `_meta.` reads.
    let e = map(
        &m,
        json!({"_meta": {"key": "own"}, "email": "jane@example.com"}),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "record.id: missing field `_meta.key`");
    // A message without a key: missing, and quarantined for it.
    let mut keyless = kafka_meta();
    keyless.fields.remove("key");
    let e = map_with_meta(&m, json!({"email": "jane@example.com"}), keyless).unwrap_err();
    assert_eq!(e.to_string(), "record.id: missing field `_meta.key`");
}

#[test]
fn meta_paths_work_for_versions_and_deletes() {
    let m = mapper(
        r#"
        source = "t"
        [record]
        id = "id"
        version = { field = "_meta.offset" }
        delete_when = { field = "_meta.headers.op", equals = "delete" }
        "#,
    );
    let r = map_with_meta(&m, json!({"id": "a"}), kafka_meta()).unwrap();
    assert_eq!(r.version, 7);
    assert_eq!(r.op, Op::Delete);
    let e = map_with_meta(
        &m,
        json!({"id": "a"}),
        RecordMeta {
            fields: serde_json::Map::new(),
            ..kafka_meta()
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "record.version: missing field `_meta.offset`"
    );

    assert_eq!(
        invalid(&format!(
            "{HEAD}[attributes]\ncompany = \"_meta.\"\nfull_name = {{ template = \"{{_meta.}} x\" }}\n"
        )),
        [
            "attributes.full_name: `_meta.` needs a field name (`_meta.key`, `_meta.headers.NAME`...) in template `{_meta.} x`",
            "attributes.company: `_meta.` needs a field name (`_meta.key`, `_meta.headers.NAME`...)",
        ]
    );
}

#[test]
fn the_transport_can_say_delete_and_give_the_version() {
    // A Debezium delete: the `before` row, marked deleted by the transport, with its LSN.
    let m = mapper(
        r#"
        source = "t"
        [record]
        id = "id"
        delete_when = { field = "status", equals = "gone" }
        [[identifiers]]
        kind = "email"
        value = "email"
        "#,
    );
    let deleted = RecordMeta {
        delete: true,
        version: Some(24_023_128),
        ..RecordMeta::default()
    };
    let r = map_with_meta(&m, json!({"id": 1001, "status": "active"}), deleted).unwrap();
    assert_eq!(r.op, Op::Delete, "whatever delete_when says");
    assert_eq!(r.source_id, "1001");
    assert_eq!(r.version, 24_023_128, "the transport's version");

    let upsert = RecordMeta {
        version: Some(24_023_200),
        ..RecordMeta::default()
    };
    let r = map_with_meta(
        &m,
        json!({"id": 1001, "email": "s@example.com"}),
        upsert.clone(),
    )
    .unwrap();
    assert_eq!(r.op, Op::Upsert);
    assert_eq!(r.version, 24_023_200);
    // Without a transport version: the run's.
    let r = map_with_meta(&m, json!({"id": 1001}), RecordMeta::default()).unwrap();
    assert_eq!(r.version, RUN_VERSION);

    // A manifest's version field wins over the transport's.
    let m = mapper("source = \"t\"\n[record]\nid = \"id\"\nversion = { field = \"v\" }\n");
    let r = map_with_meta(&m, json!({"id": 1, "v": 5}), upsert).unwrap();
    assert_eq!(r.version, 5);
}
