//! Fixture tests for the Fellegi–Sunter scorer with the shipped default parameters: each case is
//! a pair of small records and the band it must land in. Every pair is scored both ways round
//! (the score must be identical) and its contributions must sum to the total.

use std::collections::BTreeMap;

use onetruth_model::{Address, Attributes, Identifier, IdentifierKind};
use onetruth_resolve::RecordView;
use onetruth_resolve::score::*;

/// A record builder: `rec("crm", "1").name("John", "Smith").email("j@x.com")`.
#[derive(Clone)]
struct Rec(RecordView);

fn rec(source: &str, id: &str) -> Rec {
    Rec(RecordView {
        source: source.to_string(),
        source_id: id.to_string(),
        version: 1,
        identifiers: Vec::new(),
        attributes: Attributes::default(),
    })
}

impl Rec {
    fn name(mut self, given: &str, family: &str) -> Self {
        self.0.attributes.given_name = Some(given.to_string());
        self.0.attributes.family_name = Some(family.to_string());
        self
    }
    fn born(mut self, date: &str) -> Self {
        self.0.attributes.birth_date = Some(date.to_string());
        self
    }
    fn id(mut self, kind: IdentifierKind, value: &str, linkable: bool) -> Self {
        self.0.identifiers.push(Identifier {
            kind,
            value: value.to_string(),
            original: value.to_string(),
            linkable,
        });
        self
    }
    fn email(self, value: &str) -> Self {
        self.id(IdentifierKind::Email, value, true)
    }
    fn phone(self, value: &str) -> Self {
        self.id(IdentifierKind::Phone, value, true)
    }
    fn address(mut self, line1: &str, postal_code: &str, city: &str) -> Self {
        self.0.attributes.addresses.push(Address {
            line1: Some(line1.to_string()),
            postal_code: Some(postal_code.to_string()),
            city: Some(city.to_string()),
            ..Address::default()
        });
        self
    }
}

/// Score a pair both ways, check symmetry and that the explanation adds up, return one score.
fn score_pair_with(a: &Rec, b: &Rec, tf: &dyn TermFrequency) -> MatchScore {
    let params = MatchParameters::default();
    let ab = score(&compare_records(&a.0, &b.0), &params, tf);
    let ba = score(&compare_records(&b.0, &a.0), &params, tf);
    assert_eq!(ab, ba, "score is symmetric");
    let sum: f64 = ab.contributions.iter().map(|c| c.weight).sum();
    assert_eq!(sum, ab.total_weight, "contributions sum to the total");
    ab
}

fn score_pair(a: &Rec, b: &Rec) -> MatchScore {
    score_pair_with(a, b, &NoTermFrequency)
}

fn contribution<'a>(s: &'a MatchScore, field: &str) -> &'a Contribution {
    s.contributions
        .iter()
        .find(|c| c.field == field)
        .unwrap_or_else(|| panic!("no contribution for {field}"))
}

#[test]
fn same_email_name_and_birth_date_link() {
    let a = rec("crm", "1")
        .name("John", "Smith")
        .born("1980-04-12")
        .email("john.smith@example.com");
    let b = rec("billing", "9")
        .name("JOHN", "smith")
        .born("1980-04-12")
        .email("john.smith@example.com");
    let s = score_pair(&a, &b);
    assert_eq!(s.band, Band::Link, "{s:#?}");
    assert!(s.probability > 0.999_999);
}

#[test]
fn shared_household_email_with_different_person_is_not_a_link() {
    // Identifiers are evidence, not law: a couple sharing one mailbox.
    let a = rec("crm", "1")
        .name("John", "Smith")
        .born("1980-04-12")
        .email("smiths@example.com");
    let b = rec("crm", "2")
        .name("Mary", "Smith")
        .born("1983-11-02")
        .email("smiths@example.com");
    let s = score_pair(&a, &b);
    assert_ne!(s.band, Band::Link, "{s:#?}");
    assert_eq!(contribution(&s, "email").level, "exact");
    assert!(contribution(&s, "given_name").weight < 0.0);
    assert!(contribution(&s, "birth_date").weight < 0.0);
}

#[test]
fn same_name_only_is_no_link() {
    let a = rec("crm", "1").name("John", "Smith");
    let b = rec("helpdesk", "7").name("John", "Smith");
    assert_eq!(score_pair(&a, &b).band, Band::NoLink);
}

#[test]
fn nickname_same_phone_and_birth_date_link() {
    let a = rec("crm", "1")
        .name("William", "Johnson")
        .born("1975-02-28")
        .phone("+14155550123");
    let b = rec("phone", "c-3")
        .name("Bill", "Johnson")
        .born("1975-02-28")
        .phone("+14155550123");
    let s = score_pair(&a, &b);
    assert_eq!(contribution(&s, "given_name").level, "nickname");
    assert_eq!(s.band, Band::Link, "{s:#?}");
}

#[test]
fn swapped_names_with_same_email_link() {
    let a = rec("crm", "1")
        .name("Wei", "Zhang")
        .email("wei.zhang@example.com");
    let b = rec("billing", "2")
        .name("Zhang", "Wei")
        .email("wei.zhang@example.com");
    let s = score_pair(&a, &b);
    assert_eq!(contribution(&s, "given_name").level, "swapped");
    assert_eq!(contribution(&s, "family_name").level, "swapped");
    assert_eq!(s.band, Band::Link, "{s:#?}");
}

#[test]
fn rare_family_name_agreement_weighs_more_than_smith() {
    let tf: BTreeMap<String, f64> = [
        ("smith".to_string(), 0.01),
        ("oyelaran".to_string(), 0.000_002),
    ]
    .into();
    let smith = score_pair_with(
        &rec("a", "1").name("John", "Smith"),
        &rec("b", "1").name("John", "Smith"),
        &tf,
    );
    let rare = score_pair_with(
        &rec("a", "2").name("John", "Oyelaran"),
        &rec("b", "2").name("John", "Oyelaran"),
        &tf,
    );
    let (cs, cr) = (
        contribution(&smith, "family_name"),
        contribution(&rare, "family_name"),
    );
    assert!(cr.weight > cs.weight, "{cr:?} vs {cs:?}");
    assert!(
        cs.tf_adjustment < 0.0,
        "a common name is marked down: {cs:?}"
    );
    assert!(cr.tf_adjustment > 0.0, "a rare name is marked up: {cr:?}");
    // The floor caps the rare name's u: log2(0.9 / 1e-4), not log2(0.9 / 2e-6).
    let params = MatchParameters::default();
    let capped = (0.9 / params.term_frequency_u_floor).log2();
    assert!((cr.weight - capped).abs() < 1e-9, "{cr:?}");
    // A name the table does not know keeps the level's own weight.
    let unknown = score_pair_with(
        &rec("a", "3").name("John", "Brown"),
        &rec("b", "3").name("John", "Brown"),
        &tf,
    );
    assert_eq!(contribution(&unknown, "family_name").tf_adjustment, 0.0);
}

#[test]
fn missing_fields_contribute_zero() {
    let a = rec("crm", "1").email("a@example.com");
    let b = rec("billing", "2")
        .name("Ann", "Lee")
        .born("1990-01-05")
        .email("a@example.com");
    let s = score_pair(&a, &b);
    for field in [
        "given_name",
        "family_name",
        "birth_date",
        "address",
        "phone",
        "company",
    ] {
        let c = contribution(&s, field);
        assert_eq!(c.level, "missing", "{c:?}");
        assert_eq!(c.weight, 0.0, "{c:?}");
    }
    let prior = contribution(&s, PRIOR);
    let email = contribution(&s, "email");
    assert_eq!(s.total_weight, prior.weight + email.weight);
    // One verified email and nothing against it is enough to link.
    assert_eq!(s.band, Band::Link);
}

#[test]
fn placeholder_identifiers_are_not_compared() {
    let a = rec("crm", "1")
        .name("John", "Smith")
        .id(IdentifierKind::Email, "test@test.com", false);
    let b = rec("crm", "2")
        .name("Jane", "Doe")
        .id(IdentifierKind::Email, "test@test.com", false);
    let s = score_pair(&a, &b);
    assert_eq!(contribution(&s, "email").level, "missing");
    assert_eq!(s.band, Band::NoLink);
}

#[test]
fn contributions_are_in_a_fixed_order_and_sum_to_total() {
    let a = rec("crm", "1")
        .name("Jon", "Smyth")
        .born("1980-04-12")
        .email("jon@example.com")
        .phone("+14155550123")
        .address("12 Main Street", "94110", "San Francisco");
    let b = rec("billing", "2")
        .name("John", "Smith")
        .born("1980-12-04")
        .email("jon@example.org")
        .phone("+14155550199")
        .address("12 Main St", "94110", "San Francisco");
    let s = score_pair(&a, &b);
    let fields: Vec<&str> = s.contributions.iter().map(|c| c.field.as_str()).collect();
    let mut want = vec![PRIOR];
    want.extend(FIELDS);
    assert_eq!(fields, want);
    let expected = 1.0 / (1.0 + (-s.total_weight).exp2());
    assert_eq!(s.probability, expected);
}

#[test]
fn score_serializes_as_data() {
    let a = rec("crm", "1").name("John", "Smith");
    let s = score_pair(&a, &a);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["band"], "no_link");
    assert_eq!(json["contributions"][0]["field"], "prior");
    assert_eq!(json["contributions"][1]["level"], "exact");
    let cmp = compare_records(&a.0, &a.0);
    let back: Comparison = serde_json::from_value(serde_json::to_value(&cmp).unwrap()).unwrap();
    assert_eq!(back, cmp);
}

#[test]
fn defaults_validate_and_are_distributions() {
    let params = MatchParameters::default();
    assert_eq!(params.validate(), Ok(()));
    for (field, levels) in &params.fields {
        let m: f64 = levels.values().map(|p| p.m).sum();
        let u: f64 = levels.values().map(|p| p.u).sum();
        assert!((m - 1.0).abs() < 1e-3, "{field} m sums to {m}");
        assert!((u - 1.0).abs() < 1e-3, "{field} u sums to {u}");
        for (level, p) in levels {
            let w = p.weight();
            if level == "exact" {
                assert!(w > 0.0, "{field}.exact weighs {w}");
            }
            if level == "disagree" {
                assert!(w < 0.0, "{field}.disagree weighs {w}");
            }
        }
    }
}

#[test]
fn validation_reports_every_problem() {
    let mut p = MatchParameters::default();
    p.version = 99;
    p.prior_match_probability = 1.0;
    p.possible_threshold = p.link_threshold + 1.0;
    p.fields.get_mut("email").unwrap().remove("exact");
    p.fields
        .get_mut("phone")
        .unwrap()
        .get_mut("exact")
        .unwrap()
        .u = 0.0;
    p.fields
        .get_mut("company")
        .unwrap()
        .insert("missing".to_string(), LevelProbabilities { m: 0.1, u: 0.1 });
    p.fields.insert("shoe_size".to_string(), BTreeMap::new());
    p.fields.remove("address");
    let errors = p.validate().unwrap_err();
    let joined = errors.join("\n");
    for needle in [
        "version 99",
        "prior_match_probability",
        "possible_threshold",
        "`email.exact` is missing",
        "`phone.exact.u`",
        "`company.missing`",
        "unknown field `shoe_size`",
        "field `address` is missing",
    ] {
        assert!(joined.contains(needle), "no `{needle}` in:\n{joined}");
    }
    assert_eq!(errors.len(), 8, "{joined}");
}

#[test]
fn parameters_round_trip_through_json() {
    let params = MatchParameters::default();
    let json = serde_json::to_string_pretty(&params).unwrap();
    let back: MatchParameters = serde_json::from_str(&json).unwrap();
    assert_eq!(back, params);
    assert_eq!(serde_json::to_string_pretty(&back).unwrap(), json);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["version"], PARAMETERS_VERSION);
    assert_eq!(value["fields"]["email"]["exact"]["u"], 1e-6);
    // Unknown keys are refused, so a misspelt threshold is not silently ignored.
    let bad = json.replacen("\"link_threshold\"", "\"link_treshold\"", 1);
    assert!(serde_json::from_str::<MatchParameters>(&bad).is_err());
}
