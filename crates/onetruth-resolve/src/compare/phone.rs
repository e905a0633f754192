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
    use PhoneLevel::*;
    let digits = |s: Option<&str>| {
        s.map(|s| s.bytes().filter(u8::is_ascii_digit).collect::<Vec<u8>>())
            .filter(|d| !d.is_empty())
    };
    let (Some(a), Some(b)) = (digits(a), digits(b)) else {
        return Missing;
    };
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
