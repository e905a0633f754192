//! Field comparators for probabilistic matching: each compares one field of two records and
//! returns a comparison *level*, which the Fellegi–Sunter scorer turns into a weight through the
//! level's m- and u-probabilities.
//!
//! Every field has its own level enum, ordered from the strongest agreement to disagreement, with
//! `Missing` last: a side without a value is *missing*, never disagreement, so it carries no
//! weight either way. Levels serialize as stable snake_case names (they are keys in the stored
//! parameters and appear in explanations), and each enum lists its levels in `ALL`.
//!
//! Comparators take values as records hold them (names as typed, emails and phones already
//! normalized by `onetruth-model`) and normalize what they need themselves, so the scorer can pass
//! attributes straight through. Everything is symmetric — `compare(a, b) == compare(b, a)` — and
//! pure: no IO, no clock, no randomness.
//!
//! | field | levels |
//! |---|---|
//! | given name | exact, swapped, nickname, partial, initial, close, similar, disagree, missing |
//! | family name | exact, swapped, partial, initial, close, similar, disagree, missing |
//! | birth date | exact, typo, day_month_swapped, same_year, disagree, missing |
//! | address | exact, same_house_number_postal_code, same_postal_code, same_city, disagree, missing |
//! | email | exact, same_mailbox, same_local_part, close_local_part, disagree, missing |
//! | phone | exact, same_last_7, disagree, missing |
//! | company | exact, similar, disagree, missing |

use std::fmt;
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

mod address;
mod company;
mod date;
mod email;
mod name;
mod nicknames;
mod phone;

pub use address::{
    AddressLevel, PreparedAddress, compare_address, compare_addresses, compare_prepared_address,
    house_number, normalize_street, postal_key,
};
pub use company::{
    COMPANY_SIMILAR_JW, CompanyLevel, compare_company, compare_normalized_company,
    normalize_company,
};
pub use date::{BirthDateLevel, birth_date_digits, compare_birth_date, compare_birth_date_digits};
pub use email::{
    EmailLevel, PreparedEmail, canonical_mailbox, compare_email, compare_emails,
    compare_prepared_email,
};
pub(crate) use name::family_name_key_of_normalized;
pub use name::{
    FamilyNameLevel, GivenNameLevel, NAME_CLOSE_JW, NAME_SIMILAR_JW, NameLevels, NameSpellings,
    PersonName, compare_family_name, compare_given_name, compare_names, compare_prepared_names,
    family_name_key, given_names_disagree, names_swapped, normalize_name, split_full_name,
};
pub use nicknames::{are_nicknames, nickname_groups};
pub use phone::{PhoneLevel, compare_phone, compare_phone_digits, compare_phones, phone_digits};

/// What every field's level enum offers, so the scorer can hold weights and parameters for any
/// field generically.
pub trait Level:
    Copy + Eq + Hash + Ord + fmt::Debug + fmt::Display + Serialize + DeserializeOwned + 'static
{
    /// The field's stable name in parameters and explanations, e.g. `given_name`.
    const FIELD: &'static str;
    /// The level for "one side has no value".
    const MISSING: Self;
    /// Every level, strongest agreement first, `Missing` last.
    fn all() -> &'static [Self];
    /// The level's stable snake_case name, identical to its serialized form.
    fn name(self) -> &'static str;
    /// True for the level that carries no evidence because a value is absent.
    fn is_missing(self) -> bool {
        self == Self::MISSING
    }
}

/// Declares a level enum with the derives, `ALL`, `as_str`, `Display` and [`Level`] impls. One
/// string literal per variant feeds both serde and `as_str`, so the stored name and the
/// displayed name cannot drift apart.
macro_rules! levels {
    (
        $(#[$meta:meta])*
        pub enum $name:ident for $field:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $s:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, schemars::JsonSchema,
        )]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $s)] $variant, )+
        }

        impl $name {
            /// Every level, strongest agreement first, `Missing` last.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The level's stable snake_case name, identical to its serialized form.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::compare::Level for $name {
            const FIELD: &'static str = $field;
            const MISSING: Self = $name::Missing;
            fn all() -> &'static [Self] {
                Self::ALL
            }
            fn name(self) -> &'static str {
                self.as_str()
            }
        }
    };
}
pub(crate) use levels;

/// The best (lowest-ordered) level over every pair drawn from two lists of values, `missing`
/// when either list is empty. Records hold several emails, phones and addresses; one agreeing
/// pair is the evidence, the others are other contact points, not disagreement.
pub(crate) fn best_pair<A, B, L: Ord + Copy>(
    a: &[A],
    b: &[B],
    missing: L,
    compare: impl Fn(&A, &B) -> L,
) -> L {
    a.iter()
        .flat_map(|x| b.iter().map(|y| compare(x, y)))
        .min()
        .unwrap_or(missing)
}

/// Jaro–Winkler with the arguments in a fixed order: the greedy match count of Jaro can depend on
/// which string is scanned first, and comparators must be symmetric.
pub(crate) fn jaro_winkler(a: &str, b: &str) -> f64 {
    if a <= b {
        strsim::jaro_winkler(a, b)
    } else {
        strsim::jaro_winkler(b, a)
    }
}

/// How [`fold_text`] treats a period.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Period {
    /// "J.P." becomes "j p": in names a period ends an initial.
    Splits,
    /// "N.W." becomes "nw", "L.L.C." becomes "llc": in addresses and company names a period marks
    /// an abbreviation.
    Joins,
}

/// Transliterate to ASCII, lowercase, drop apostrophes, treat periods as `period` says, turn
/// every other character that is neither alphanumeric nor in `keep` into a space, and collapse
/// whitespace. Apostrophes vanish so that "O'Brien" and "OBrien" agree.
pub(crate) fn fold_text(s: &str, keep: &[char], period: Period) -> String {
    // Most input is ASCII already, which transliterates to itself: no copy for it. (Below
    // 0x7F, as deunicode's own pass-through: it transliterates DEL.)
    let ascii: std::borrow::Cow<str> = if s.bytes().all(|b| b < 0x7F) {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(deunicode::deunicode(s))
    };
    let mut out = String::with_capacity(ascii.len());
    let mut pending_space = false;
    for c in ascii.chars() {
        if c.is_ascii_alphanumeric() || keep.contains(&c) {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c.to_ascii_lowercase());
        } else if c == '\'' || c == '`' || (c == '.' && period == Period::Joins) {
            // Joined, not split: see the doc comment.
        } else {
            pending_space = true;
        }
    }
    out
}

/// The parts joined, without the formatting machinery (`format!` costs several times more on
/// the per-record paths that build keys).
pub(crate) fn concat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_level<L: Level>() {
        let all = L::all();
        assert!(
            all.windows(2).all(|w| w[0] < w[1]),
            "{} ALL is sorted",
            L::FIELD
        );
        assert_eq!(
            *all.last().unwrap(),
            L::MISSING,
            "{} Missing is last",
            L::FIELD
        );
        for &level in all {
            let json = serde_json::to_string(&level).unwrap();
            assert_eq!(json, format!("\"{}\"", level.name()));
            assert_eq!(level.to_string(), level.name());
            let back: L = serde_json::from_str(&json).unwrap();
            assert_eq!(back, level);
            let name = level.name();
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name} is snake_case"
            );
        }
    }

    #[test]
    fn levels_are_sorted_named_and_round_trip() {
        check_level::<GivenNameLevel>();
        check_level::<FamilyNameLevel>();
        check_level::<BirthDateLevel>();
        check_level::<AddressLevel>();
        check_level::<EmailLevel>();
        check_level::<PhoneLevel>();
        check_level::<CompanyLevel>();
    }

    #[test]
    fn fold_text_transliterates_and_collapses() {
        let s = Period::Splits;
        assert_eq!(
            fold_text("  Müller-Lüdenscheidt ", &[], s),
            "muller ludenscheidt"
        );
        assert_eq!(fold_text("O'Brien", &[], s), "obrien");
        assert_eq!(fold_text("J.R.R.  Tolkien", &[], s), "j r r tolkien");
        assert_eq!(
            fold_text("J.R.R.  Tolkien", &[], Period::Joins),
            "jrr tolkien"
        );
        assert_eq!(fold_text("Łukasz", &[], s), "lukasz");
        assert_eq!(fold_text("#4", &['#'], s), "#4");
    }

    #[test]
    fn best_pair_prefers_agreement_and_reports_missing() {
        let a = [1i32, 5];
        let b = [5, 9];
        assert_eq!(best_pair(&a, &b, 99, |x, y| (x - y).abs()), 0);
        assert_eq!(best_pair(&a, &[] as &[i32], 99, |x, y| (x - y).abs()), 99);
    }
}
