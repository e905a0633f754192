//! Fixture tables for the field comparators: each row is (left, right, expected level). Every
//! row is also checked the other way round (comparators are symmetric), and every table must
//! exercise every level its field has, so a new level cannot go untested.

use std::collections::BTreeSet;
use std::fmt::Debug;

use onetruth_model::{Address, Attributes};
use onetruth_resolve::compare::*;

/// Check each row both ways round and that the table covers `expected_levels`.
fn check<T: Debug, L: Level>(
    rows: &[(T, T, L)],
    expected_levels: &[L],
    compare: impl Fn(&T, &T) -> L,
) {
    let mut failures = Vec::new();
    for (a, b, want) in rows {
        let got = compare(a, b);
        let back = compare(b, a);
        if got != *want || back != *want {
            failures.push(format!(
                "{a:?} vs {b:?}: want {want}, got {got} (reversed: {back})"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        L::FIELD,
        failures.join("\n")
    );
    let seen: BTreeSet<L> = rows.iter().map(|r| r.2).collect();
    let missing: Vec<&L> = expected_levels
        .iter()
        .filter(|l| !seen.contains(l))
        .collect();
    assert!(missing.is_empty(), "{}: no row for {missing:?}", L::FIELD);
}

#[test]
fn given_names() {
    use GivenNameLevel::*;
    let rows: &[(Option<&str>, Option<&str>, GivenNameLevel)] = &[
        (Some("John"), Some("john"), Exact),
        (Some("José"), Some("Jose"), Exact),
        (Some("Łukasz"), Some("Lukasz"), Exact),
        (Some("  Mary   Ann "), Some("mary ann"), Exact),
        (Some("Mary Ann"), Some("Maryann"), Exact),
        (Some("Mary-Ann"), Some("Mary Ann"), Exact),
        // A dropped middle initial is not a difference.
        (Some("John P."), Some("John"), Exact),
        (Some("Jürgen"), Some("Juergen"), Exact),
        (Some("Jürgen"), Some("Jurgen"), Exact),
        (Some("Bill"), Some("William"), Nickname),
        (Some("Bill"), Some("Will"), Nickname),
        (Some("Liz"), Some("Elizabeth"), Nickname),
        (Some("Peggy"), Some("Margaret"), Nickname),
        (Some("Bob"), Some("Robert"), Nickname),
        (Some("Sasha"), Some("Alexander"), Nickname),
        (Some("Sam"), Some("Samantha"), Nickname),
        (Some("Bill Henry"), Some("William"), Nickname),
        (Some("Steven"), Some("Stephen"), Nickname),
        (Some("Mary"), Some("Mary Ann"), Partial),
        (Some("Anne Marie"), Some("Marie"), Partial),
        (Some("J."), Some("John"), Initial),
        (Some("J"), Some("Jane"), Initial),
        (Some("J. P."), Some("John Paul"), Initial),
        // Two equal initials are weak evidence: `initial`, never `exact`.
        (Some("J"), Some("J."), Initial),
        (Some("J."), Some("Robert"), Disagree),
        // Jon is short for Jonathan, John a name of its own: a spelling match, not a nickname.
        (Some("Jon"), Some("John"), Close),
        (Some("Jonathon"), Some("Jonathan"), Close),
        // Spelling variants the table lists are nicknames too.
        (Some("Kristina"), Some("Kristine"), Nickname),
        (Some("Sarah"), Some("Sara"), Nickname),
        (Some("Steven"), Some("Stevan"), Close),
        (Some("Geraldine"), Some("Geraldina"), Close),
        (Some("Alexander"), Some("Alexandra"), Close),
        // Jonathan and John are different names (jw 0.80).
        (Some("Jonathan"), Some("John"), Disagree),
        (Some("Jon"), Some("Jonathan"), Nickname),
        (Some("Mohammed"), Some("Muhammad"), Similar),
        (Some("John"), Some("Mary"), Disagree),
        (Some("William"), Some("Robert"), Disagree),
        // Jaro–Winkler's limit: different names with a similar spelling (jw 0.89).
        (Some("Anna"), Some("Hannah"), Similar),
        (Some("Karl"), Some("Carl"), Disagree),
        (Some("John"), None, Missing),
        (None, None, Missing),
        (Some("  "), Some("John"), Missing),
        (Some("--"), Some("John"), Missing),
    ];
    let levels: Vec<_> = GivenNameLevel::ALL
        .iter()
        .copied()
        .filter(|l| *l != Swapped)
        .collect();
    check(rows, &levels, |a, b| compare_given_name(*a, *b));
}

#[test]
fn family_names() {
    use FamilyNameLevel::*;
    let rows: &[(Option<&str>, Option<&str>, FamilyNameLevel)] = &[
        (Some("Smith"), Some("SMITH"), Exact),
        (Some("Müller"), Some("Mueller"), Exact),
        (Some("Müller"), Some("Muller"), Exact),
        (Some("Mu\u{308}ller"), Some("Mueller"), Exact),
        (Some("Jørgensen"), Some("Joergensen"), Exact),
        (Some("O'Brien"), Some("OBrien"), Exact),
        (Some("De Luca"), Some("DeLuca"), Exact),
        (Some("Smith-Jones"), Some("Smith Jones"), Exact),
        (Some("García"), Some("Garcia"), Exact),
        (Some("Garcia Lopez"), Some("Garcia"), Partial),
        (Some("van Beethoven"), Some("Beethoven"), Partial),
        (Some("Smith-Jones"), Some("Jones"), Partial),
        (Some("S."), Some("Smith"), Initial),
        (Some("S"), Some("Jones"), Disagree),
        // Without an umlaut on either side to say so, ue/u is a spelling difference.
        // jw 0.9175, just under `close`.
        (Some("Mueller"), Some("Muller"), Similar),
        (Some("Smith"), Some("Smyth"), Similar),
        (Some("Meyer"), Some("Meier"), Similar),
        (Some("Schmidt"), Some("Schmitt"), Close),
        (Some("Garcia"), Some("Garsia"), Close),
        (Some("Johnson"), Some("Jonson"), Close),
        (Some("Thompson"), Some("Thomson"), Close),
        (Some("Martin"), Some("Martinez"), Close),
        (Some("Peterson"), Some("Petersen"), Close),
        (Some("Hansen"), Some("Hanson"), Close),
        (Some("Kowalski"), Some("Kowalsky"), Close),
        (Some("Robertson"), Some("Robinson"), Similar),
        (Some("Dixon"), Some("Dickson"), Disagree),
        (Some("Smith"), Some("Schmidt"), Disagree),
        (Some("Smith"), Some("Jones"), Disagree),
        (Some("Lee"), Some("Li"), Disagree),
        (Some("Smith"), None, Missing),
        (None, Some(""), Missing),
    ];
    let levels: Vec<_> = FamilyNameLevel::ALL
        .iter()
        .copied()
        .filter(|l| *l != Swapped)
        .collect();
    check(rows, &levels, |a, b| compare_family_name(*a, *b));
}

/// `(given, family, full)` as a record's attributes carry them.
type NameAttrs = (
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

fn person(n: &NameAttrs) -> PersonName {
    PersonName::from_attributes(&Attributes {
        given_name: n.0.map(Into::into),
        family_name: n.1.map(Into::into),
        full_name: n.2.map(Into::into),
        ..Attributes::default()
    })
}

#[test]
fn full_names_split() {
    for (full, given, family) in [
        ("John Smith", Some("John"), Some("Smith")),
        ("Smith, John", Some("John"), Some("Smith")),
        ("Smith , John A.", Some("John A."), Some("Smith")),
        ("Dr. John Smith Jr.", Some("John"), Some("Smith")),
        ("John Smith, Jr.", Some("John"), Some("Smith")),
        ("Mary Ann Smith", Some("Mary Ann"), Some("Smith")),
        ("Maria de la Cruz", Some("Maria"), Some("de la Cruz")),
        (
            "Ludwig van Beethoven",
            Some("Ludwig"),
            Some("van Beethoven"),
        ),
        ("Madonna", Some("Madonna"), None),
        ("Mr. Bean", Some("Bean"), None),
        ("   ", None, None),
    ] {
        assert_eq!(
            split_full_name(full),
            PersonName::new(given, family),
            "{full:?}"
        );
    }
}

#[test]
fn person_names_prefer_parts_and_fill_from_full_name() {
    let n = person(&(Some("Bill"), None, Some("William Smith")));
    assert_eq!(n, PersonName::new(Some("Bill"), Some("Smith")));
    let n = person(&(Some(" "), Some("Jones"), Some("Smith, John")));
    assert_eq!(n, PersonName::new(Some("John"), Some("Jones")));
    assert_eq!(person(&(None, None, None)), PersonName::default());
}

#[test]
fn names() {
    use FamilyNameLevel as F;
    use GivenNameLevel as G;
    let rows: &[(NameAttrs, NameAttrs, NameLevels)] = &[
        (
            (Some("John"), Some("Smith"), None),
            (None, None, Some("Smith, John")),
            lv(G::Exact, F::Exact),
        ),
        (
            (None, None, Some("Bill Smith")),
            (None, None, Some("William Smith")),
            lv(G::Nickname, F::Exact),
        ),
        (
            (Some("José"), Some("Müller"), None),
            (Some("Jose"), Some("Mueller"), None),
            lv(G::Exact, F::Exact),
        ),
        (
            (Some("John"), Some("Smith"), None),
            (Some("Smith"), Some("John"), None),
            lv(G::Swapped, F::Swapped),
        ),
        // A family-first full name without a comma splits swapped, and is recognized as such.
        (
            (None, None, Some("Wang Wei")),
            (Some("Wei"), Some("Wang"), None),
            lv(G::Swapped, F::Swapped),
        ),
        (
            (None, None, Some("Bill Smith")),
            (Some("Smith"), Some("William"), None),
            lv(G::Swapped, F::Swapped),
        ),
        // The same given and family name is not a swap.
        (
            (Some("Lee"), Some("Lee"), None),
            (Some("Lee"), Some("Lee"), None),
            lv(G::Exact, F::Exact),
        ),
        // Only one side swapped: "John Smith" vs "Smith Jones" is not.
        (
            (Some("John"), Some("Smith"), None),
            (Some("Smith"), Some("Jones"), None),
            lv(G::Disagree, F::Disagree),
        ),
        (
            (Some("J."), Some("Smith"), None),
            (None, None, Some("John Smith")),
            lv(G::Initial, F::Exact),
        ),
        (
            (Some("Jon"), Some("Smyth"), None),
            (Some("John"), Some("Smith"), None),
            lv(G::Close, F::Similar),
        ),
        (
            (Some("John"), None, None),
            (Some("John"), Some("Smith"), None),
            lv(G::Exact, F::Missing),
        ),
        (
            (None, None, None),
            (Some("John"), Some("Smith"), None),
            lv(G::Missing, F::Missing),
        ),
    ];
    let mut failures = Vec::new();
    for (a, b, want) in rows {
        let (pa, pb) = (person(a), person(b));
        let (got, back) = (compare_names(&pa, &pb), compare_names(&pb, &pa));
        let swapped = want.given == G::Swapped;
        if got != *want || back != *want || names_swapped(&pa, &pb) != swapped {
            failures.push(format!(
                "{a:?} vs {b:?}: want {want:?}, got {got:?} / {back:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn lv(given: GivenNameLevel, family: FamilyNameLevel) -> NameLevels {
    NameLevels { given, family }
}

#[test]
fn family_name_keys() {
    for (a, b) in [
        ("Müller", "Mueller"),
        ("Müller", "Muller"),
        ("Smith", "Smyth"),
        ("De Luca", "DeLuca"),
        ("Mc Donald", "McDonald"),
        ("O'Brien", "OBrien"),
        ("Meyer", "Meier"),
    ] {
        assert_eq!(family_name_key(a), family_name_key(b), "{a} / {b}");
        assert_eq!(family_name_key(a).len(), 4);
    }
    assert_ne!(family_name_key("Smith"), family_name_key("Jones"));
    // Soundex's known gap: the silent p codes ("T512" / "T525").
    assert_ne!(family_name_key("Thompson"), family_name_key("Thomson"));
    assert_eq!(family_name_key("Müller"), "M460");
}

#[test]
fn normalized_names() {
    assert_eq!(
        normalize_name("  José  O'Brien-Smith "),
        "jose obrien smith"
    );
    assert_eq!(normalize_name("Łukasz"), "lukasz");
    assert_eq!(normalize_name("Müller"), "muller");
    assert_eq!(normalize_name("ßtraße"), "sstrasse");
    assert_eq!(normalize_name("J.P."), "j p");
}

#[test]
fn birth_dates() {
    use BirthDateLevel::*;
    let rows: &[(Option<&str>, Option<&str>, BirthDateLevel)] = &[
        (Some("1984-03-07"), Some("1984-03-07"), Exact),
        (Some(" 1984-03-07"), Some("1984-03-07 "), Exact),
        (Some("1984-03-07"), Some("1984-03-08"), Typo),
        (Some("1984-03-07"), Some("1984-08-07"), Typo),
        (Some("1984-03-07"), Some("1954-03-07"), Typo),
        (Some("1984-03-07"), Some("1984-03-17"), Typo),
        (Some("1984-03-07"), Some("1984-07-03"), DayMonthSwapped),
        (Some("1984-12-11"), Some("1984-11-12"), DayMonthSwapped),
        (Some("1984-01-10"), Some("1984-10-01"), DayMonthSwapped),
        (Some("1984-03-07"), Some("1984-11-23"), SameYear),
        // Two digits transposed is not a one-digit typo.
        (Some("1984-03-07"), Some("1948-03-07"), Disagree),
        (Some("1984-03-07"), Some("1990-05-01"), Disagree),
        (Some("1984-03-07"), Some("1985-03-08"), Disagree),
        (Some("1984-03-07"), None, Missing),
        (Some("1984-03-07"), Some(""), Missing),
        (Some("1984-03-07"), Some("03/07/1984"), Missing),
        (Some("1984-13-07"), Some("1984-13-07"), Missing),
        (None, None, Missing),
    ];
    check(rows, BirthDateLevel::ALL, |a, b| compare_birth_date(*a, *b));
}

fn addr(line1: &str, postal: &str, city: &str) -> Address {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Address {
        line1: opt(line1),
        postal_code: opt(postal),
        city: opt(city),
        ..Address::default()
    }
}

#[test]
fn addresses() {
    use AddressLevel::*;
    let with_country = |mut a: Address, c: &str| {
        a.country = Some(c.into());
        a
    };
    let with_line2 = |mut a: Address, l: &str| {
        a.line2 = Some(l.into());
        a
    };
    let rows: &[(Address, Address, AddressLevel)] = &[
        (
            addr("123 Main Street", "94105", "San Francisco"),
            addr("123 main st.", "94105", "SF"),
            Exact,
        ),
        (
            addr("123 Main St, Apt. 4", "94105", ""),
            addr("123 Main Street #4", "94105-1234", ""),
            Exact,
        ),
        (
            with_line2(addr("123 Main St", "94105", ""), "Suite 4"),
            addr("123 Main St Ste 4", "94105", ""),
            Exact,
        ),
        (
            addr("42 North Avenue", "", "St. Louis"),
            addr("42 N Ave", "", "Saint Louis"),
            Exact,
        ),
        (
            addr("Hauptstraße 5", "10115", "Berlin"),
            addr("Hauptstr. 5", "10115", "Berlin"),
            Exact,
        ),
        (
            addr("10 Downing Street", "SW1A 2AA", "London"),
            addr("10 downing st", "sw1a2aa", ""),
            Exact,
        ),
        (
            addr("123 Main St", "94105", ""),
            addr("123 Main St Apt 4", "94105", ""),
            SameHouseNumberPostalCode,
        ),
        (
            addr("123 Main St", "94105", ""),
            addr("123 Mian Street", "94105", ""),
            SameHouseNumberPostalCode,
        ),
        (
            addr("123 Main St", "94105", ""),
            addr("99 Oak Ave", "94105", ""),
            SamePostalCode,
        ),
        (
            addr("", "94105", ""),
            addr("123 Main St", "94105", "San Francisco"),
            SamePostalCode,
        ),
        (
            addr("123 Main St", "94105", "San Francisco"),
            addr("5 Pine St", "94110", "san francisco"),
            SameCity,
        ),
        // Same street line, different postal code in the same city: moved? typo? Only the city.
        (
            addr("123 Main St", "94105", "San Francisco"),
            addr("123 Main St", "94110", "San Francisco"),
            SameCity,
        ),
        (
            addr("123 Main St", "94105", "San Francisco"),
            addr("123 Main St", "10001", "New York"),
            Disagree,
        ),
        (
            addr("123 Main St", "", ""),
            addr("99 Oak Ave", "", ""),
            Disagree,
        ),
        (
            with_country(addr("1 Main St", "10115", ""), "US"),
            with_country(addr("1 Main St", "10115", ""), "DE"),
            Disagree,
        ),
        (
            with_country(addr("1 Main St", "10115", ""), "USA"),
            with_country(addr("1 Main St", "10115", ""), "us"),
            Exact,
        ),
        // The same street line with no place on either side could be in any town.
        (
            addr("123 Main St", "", ""),
            addr("123 Main Street", "", ""),
            Missing,
        ),
        (
            addr("123 Main St", "", ""),
            addr("", "94105", "San Francisco"),
            Missing,
        ),
        (
            addr("123 Main St", "94105", ""),
            Address::default(),
            Missing,
        ),
        (Address::default(), Address::default(), Missing),
    ];
    check(rows, AddressLevel::ALL, compare_address);
}

#[test]
fn address_lists_take_the_best_pair() {
    let home = addr("123 Main St", "94105", "San Francisco");
    let old = addr("9 Elm St", "02139", "Cambridge");
    let work = addr("1 Market St", "94105", "San Francisco");
    assert_eq!(
        compare_addresses(&[old.clone(), home.clone()], std::slice::from_ref(&home)),
        AddressLevel::Exact
    );
    assert_eq!(compare_addresses(&[old], &[work]), AddressLevel::Disagree);
    assert_eq!(compare_addresses(&[], &[home]), AddressLevel::Missing);
    assert_eq!(
        postal_key(&addr("", "sw1a 1aa", "")).as_deref(),
        Some("SW1A1AA")
    );
    assert_eq!(
        normalize_street("123 Main Street"),
        normalize_street("123 main st.")
    );
}

#[test]
fn emails() {
    use EmailLevel::*;
    let rows: &[(Option<&str>, Option<&str>, EmailLevel)] = &[
        (Some("john@gmail.com"), Some("john@gmail.com"), Exact),
        (Some("John@Gmail.com "), Some("john@gmail.com"), Exact),
        (
            Some("j.o.h.n@gmail.com"),
            Some("john@gmail.com"),
            SameMailbox,
        ),
        (
            Some("john.smith@googlemail.com"),
            Some("johnsmith@gmail.com"),
            SameMailbox,
        ),
        (
            Some("john+shop@example.com"),
            Some("john@example.com"),
            SameMailbox,
        ),
        (
            Some("john+a@example.com"),
            Some("john+b@example.com"),
            SameMailbox,
        ),
        (
            Some("john+shop@gmail.com"),
            Some("jo.hn@gmail.com"),
            SameMailbox,
        ),
        (
            Some("john@gmail.com"),
            Some("john@yahoo.com"),
            SameLocalPart,
        ),
        (
            Some("j.o.h.n@gmail.com"),
            Some("john@yahoo.com"),
            SameLocalPart,
        ),
        (
            Some("john.smith+x@acme.com"),
            Some("john.smith@gmail.com"),
            SameLocalPart,
        ),
        // Dots matter outside Gmail: one edit.
        (
            Some("john.smith@yahoo.com"),
            Some("johnsmith@yahoo.com"),
            CloseLocalPart,
        ),
        (
            Some("jsmith@gmail.com"),
            Some("jsmiht@yahoo.com"),
            CloseLocalPart,
        ),
        (
            Some("jsmith@gmail.com"),
            Some("jsmyth@gmail.com"),
            CloseLocalPart,
        ),
        (
            Some("johnsmith@example.com"),
            Some("jonsmyth@example.com"),
            CloseLocalPart,
        ),
        (
            Some("johnsmith@example.com"),
            Some("jonsmith1@example.com"),
            CloseLocalPart,
        ),
        // Short local parts: one edit is another handle.
        (Some("ann@example.com"), Some("anna@example.com"), Disagree),
        (Some("bob@example.com"), Some("rob@example.com"), Disagree),
        // Under 8 characters only one edit is allowed.
        (
            Some("jsmith@example.com"),
            Some("jsmyht@example.com"),
            Disagree,
        ),
        (
            Some("john.smith@yahoo.com"),
            Some("johnsmith@gmail.com"),
            SameLocalPart,
        ),
        (Some("john@gmail.com"), Some("mary@gmail.com"), Disagree),
        (Some("john@gmail.com"), None, Missing),
        (Some(" "), Some("john@gmail.com"), Missing),
        (None, None, Missing),
    ];
    check(rows, EmailLevel::ALL, |a, b| compare_email(*a, *b));
    assert_eq!(
        compare_emails(
            &["old@example.com", "j.o.h.n@gmail.com"],
            &["john@gmail.com"]
        ),
        SameMailbox
    );
    assert_eq!(
        compare_emails::<&str, &str>(&[], &["john@gmail.com"]),
        Missing
    );
    assert_eq!(
        canonical_mailbox("J.O.H.N+shop@googlemail.com"),
        "john@gmail.com"
    );
}

#[test]
fn phones() {
    use PhoneLevel::*;
    let rows: &[(Option<&str>, Option<&str>, PhoneLevel)] = &[
        (Some("+14155552671"), Some("+14155552671"), Exact),
        (Some("+442079460958"), Some("+442079460958"), Exact),
        (Some("+14155552671"), Some("+12125552671"), SameLast7),
        (Some("+14155552671"), Some("+444155552671"), SameLast7),
        (Some("+4930123456789"), Some("+4989123456789"), SameLast7),
        (Some("+14155552671"), Some("+14155552672"), Disagree),
        (Some("+14155552671"), Some("+442079460958"), Disagree),
        (Some("+3312345"), Some("+4412345"), Disagree),
        (Some("+14155552671"), None, Missing),
        (Some(""), Some("+14155552671"), Missing),
        (None, None, Missing),
    ];
    check(rows, PhoneLevel::ALL, |a, b| compare_phone(*a, *b));
    assert_eq!(
        compare_phones(&["+14155550000", "+14155552671"], &["+12125552671"]),
        SameLast7
    );
    assert_eq!(compare_phones(&["+14155552671"], &[] as &[String]), Missing);
}

#[test]
fn companies() {
    use CompanyLevel::*;
    let rows: &[(Option<&str>, Option<&str>, CompanyLevel)] = &[
        (Some("Acme Inc."), Some("ACME, Inc"), Exact),
        (Some("Acme"), Some("Acme Corporation"), Exact),
        (Some("The Acme Company"), Some("acme"), Exact),
        (Some("Acme Co., Ltd."), Some("Acme LLC"), Exact),
        (Some("Müller GmbH"), Some("Muller"), Exact),
        (
            Some("Société Générale S.A."),
            Some("Societe Generale"),
            Exact,
        ),
        (Some("Smith & Sons"), Some("Smith and Sons Ltd"), Exact),
        (Some("Face Book"), Some("Facebook Inc"), Exact),
        (Some("Acme Industries"), Some("Acme Industry"), Similar),
        (Some("Microsoft"), Some("Microsfot"), Similar),
        (
            Some("Globex Corporation"),
            Some("Globex Corp International"),
            Disagree,
        ),
        (Some("Acme"), Some("Initech"), Disagree),
        (Some("Acme Inc"), None, Missing),
        (Some("  "), Some("Acme"), Missing),
        (None, None, Missing),
    ];
    check(rows, CompanyLevel::ALL, |a, b| compare_company(*a, *b));
}

#[test]
fn levels_serialize_as_snake_case() {
    assert_eq!(
        serde_json::to_string(&GivenNameLevel::ALL).unwrap(),
        r#"["exact","swapped","nickname","partial","initial","close","similar","disagree","missing"]"#
    );
    assert_eq!(
        serde_json::to_string(&AddressLevel::SameHouseNumberPostalCode).unwrap(),
        r#""same_house_number_postal_code""#
    );
    assert_eq!(
        BirthDateLevel::DayMonthSwapped.to_string(),
        "day_month_swapped"
    );
    assert_eq!(PhoneLevel::SameLast7.as_str(), "same_last_7");
    assert_eq!(<EmailLevel as Level>::FIELD, "email");
    assert!(CompanyLevel::Missing.is_missing());
    // Levels are map keys in stored parameters.
    let weights: std::collections::BTreeMap<EmailLevel, f64> =
        [(EmailLevel::Exact, 9.5), (EmailLevel::Missing, 0.0)].into();
    let json = serde_json::to_string(&weights).unwrap();
    assert_eq!(json, r#"{"exact":9.5,"missing":0.0}"#);
    assert_eq!(
        serde_json::from_str::<std::collections::BTreeMap<EmailLevel, f64>>(&json).unwrap(),
        weights
    );
}
