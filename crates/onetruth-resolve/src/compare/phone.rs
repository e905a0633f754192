//! Phone numbers, as E.164 strings normalized by `onetruth-model` ("+14155552671").

use super::{best_pair, levels};

levels! {
    /// How two phone numbers compare.
    pub enum PhoneLevel for "phone" {
        /// The same number.
        Exact = "exact",
        /// Different numbers ending in the same 7 digits: the subscriber number with another
        /// area or country code, a common slip when a number is typed without its prefix and the
        /// wrong default region is applied.
        SameLast7 = "same_last_7",
        /// None of the above.
        Disagree = "disagree",
        /// Either side has no phone number.
        Missing = "missing",
    }
}

/// Compare two phone numbers by their digits. `None` or blank (no digits) on either side is
/// `Missing`.
pub fn compare_phone(a: Option<&str>, b: Option<&str>) -> PhoneLevel {
    match (a.and_then(phone_digits), b.and_then(phone_digits)) {
        (Some(a), Some(b)) => compare_phone_digits(&a, &b),
        _ => PhoneLevel::Missing,
    }
}

/// The digits of a phone number, the prepared form for [`compare_phone_digits`]; `None` when
/// it has none.
pub fn phone_digits(s: &str) -> Option<Vec<u8>> {
    let d: Vec<u8> = s.bytes().filter(u8::is_ascii_digit).collect();
    (!d.is_empty()).then_some(d)
}

/// [`compare_phone`] on prepared digits.
pub fn compare_phone_digits(a: &[u8], b: &[u8]) -> PhoneLevel {
    use PhoneLevel::*;
    if a == b {
        Exact
    } else if a.len() >= 7 && b.len() >= 7 && a[a.len() - 7..] == b[b.len() - 7..] {
        SameLast7
    } else {
        Disagree
    }
}

/// The best level over every pair of the two records' phones; `Missing` when either has none.
pub fn compare_phones<A: AsRef<str>, B: AsRef<str>>(a: &[A], b: &[B]) -> PhoneLevel {
    best_pair(a, b, PhoneLevel::Missing, |x, y| {
        compare_phone(Some(x.as_ref()), Some(y.as_ref()))
    })
}
