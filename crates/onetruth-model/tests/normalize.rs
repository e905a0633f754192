//! Normalization tables: what the same email / phone means.

use onetruth_model::{IdentifierKind, NormalizeError, Normalizer, PhoneRegion};

fn normalizer(region: &str) -> Normalizer {
    Normalizer::new(region.parse().unwrap(), ["loyalty_card".to_string()])
}

#[test]
fn emails() {
    let n = normalizer("US");
    let table = [
        ("jane.doe@example.com", Some("jane.doe@example.com")),
        ("  Jane.Doe@Example.COM ", Some("jane.doe@example.com")),
        ("JANE@EXAMPLE.CO.UK\t", Some("jane@example.co.uk")),
        ("mailto:bob@example.org", Some("bob@example.org")),
        ("bob+tag@example.org", Some("bob+tag@example.org")),
        ("no-at-sign.example.com", None),
        ("two@@example.com", None),
        ("a@b@example.com", None),
        ("jane@localhost", None),
        ("@example.com", None),
        ("jane@example..com", None),
        ("jane doe@example.com", None),
    ];
    for (raw, want) in table {
        let got = n.normalize(&IdentifierKind::Email, raw, None).ok();
        assert_eq!(
            got.as_ref().map(|i| i.value.as_str()),
            want,
            "email {raw:?}"
        );
        if let Some(id) = got {
            assert_eq!(id.original, raw, "original kept for {raw:?}");
        }
    }
}

#[test]
fn phones_in_many_countries_and_formats() {
    let table = [
        // (default region, raw, E.164)
        ("US", "(415) 555-2671", Some("+14155552671")),
        ("US", "415.555.2671", Some("+14155552671")),
        ("US", "415-555-2671", Some("+14155552671")),
        ("US", "+1 415 555 2671", Some("+14155552671")),
        ("US", "1-415-555-2671", Some("+14155552671")),
        ("US", "001 415 555 2671", Some("+14155552671")),
        ("GB", "020 7946 0018", Some("+442079460018")),
        ("GB", "+44 (0)20 7946 0018", Some("+442079460018")),
        ("US", "+44 20 7946 0018", Some("+442079460018")),
        ("GB", "07911 123456", Some("+447911123456")),
        ("DE", "030 901820", Some("+4930901820")),
        ("DE", "+49 30 901820", Some("+4930901820")),
        ("FR", "01 42 68 53 00", Some("+33142685300")),
        ("FR", "0033 1 42 68 53 00", Some("+33142685300")),
        ("IN", "098765 43210", Some("+919876543210")),
        ("AU", "(02) 9374 4000", Some("+61293744000")),
        ("BR", "(11) 91234-5678", Some("+5511912345678")),
        ("JP", "03-1234-5678", Some("+81312345678")),
        ("US", "not a phone", None),
        ("US", "12", None),
        ("US", "555-0000000000", None),
    ];
    for (region, raw, want) in table {
        let n = normalizer(region);
        let got = n.normalize(&IdentifierKind::Phone, raw, None);
        assert_eq!(
            got.as_ref().ok().map(|i| i.value.as_str()),
            want,
            "phone {raw:?} in {region}: {got:?}"
        );
    }
}

#[test]
fn per_field_region_overrides_default() {
    let n = normalizer("US");
    let gb: PhoneRegion = "gb".parse().unwrap();
    let id = n
        .normalize(&IdentifierKind::Phone, "020 7946 0018", Some(gb))
        .unwrap();
    assert_eq!(id.value, "+442079460018");
    assert!("XX".parse::<PhoneRegion>().is_err());
}

#[test]
fn external_and_custom_kinds() {
    let n = normalizer("US");
    let ext = n
        .normalize(&IdentifierKind::External, " Salesforce : 003AbC ", None)
        .unwrap();
    assert_eq!(
        ext.value, "salesforce:003AbC",
        "system lowercased, id case kept"
    );
    assert_eq!(
        n.normalize(&IdentifierKind::External, "nosystem", None),
        Err(NormalizeError::InvalidExternal)
    );
    let card = IdentifierKind::Custom("loyalty_card".into());
    assert_eq!(
        n.normalize(&card, "  LC  123 ", None).unwrap().value,
        "LC 123"
    );
    let undeclared = IdentifierKind::Custom("passport".into());
    assert_eq!(
        n.normalize(&undeclared, "X1", None),
        Err(NormalizeError::UndeclaredKind("passport".into()))
    );
}

#[test]
fn unparseable_phone_is_flagged_not_linked() {
    let n = normalizer("US");
    let flagged = n
        .normalize_or_flag(&IdentifierKind::Phone, "call me maybe", None)
        .unwrap_err();
    assert_eq!(flagged.original, "call me maybe");
    assert_eq!(flagged.reason, "not a valid phone number");
    assert_eq!(
        n.normalize_or_flag(&IdentifierKind::Phone, "   ", None),
        Ok(None)
    );
}
