//! Birth dates, as ISO `YYYY-MM-DD` strings. The levels model how dates go wrong when typed:
//! one wrong digit, day and month read in the other order (US vs European forms), or only the
//! year right.

use super::levels;

levels! {
    /// How two birth dates compare.
    pub enum BirthDateLevel for "birth_date" {
        /// The same date.
        Exact = "exact",
        /// Exactly one digit differs ("1984-03-07" / "1984-03-08", "1984-03-07" / "1954-03-07").
        Typo = "typo",
        /// Same year, day and month exchanged ("1984-03-07" / "1984-07-03").
        DayMonthSwapped = "day_month_swapped",
        /// Same year, and none of the above.
        SameYear = "same_year",
        /// Different year, and none of the above.
        Disagree = "disagree",
        /// Either side has no date, or one that is not a `YYYY-MM-DD` date (nothing to compare).
        Missing = "missing",
    }
}

/// A date's digits, `YYYYMMDD`, when `s` is a plausible `YYYY-MM-DD` date (month 1–12, day 1–31).
fn parse(s: &str) -> Option<[u8; 8]> {
    let b = s.trim().as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let mut digits = [0u8; 8];
    for (out, &c) in digits
        .iter_mut()
        .zip(b[..4].iter().chain(&b[5..7]).chain(&b[8..]))
    {
        if !c.is_ascii_digit() {
            return None;
        }
        *out = c - b'0';
    }
    let month = digits[4] * 10 + digits[5];
    let day = digits[6] * 10 + digits[7];
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some(digits)
}

/// Compare two birth dates. `None`, blank or unparseable on either side is `Missing`: a value
/// that is not a date says nothing either way.
pub fn compare_birth_date(a: Option<&str>, b: Option<&str>) -> BirthDateLevel {
    match (a.and_then(parse), b.and_then(parse)) {
        (Some(a), Some(b)) => compare_birth_date_digits(&a, &b),
        _ => BirthDateLevel::Missing,
    }
}

/// The eight digits of an ISO date (`YYYY-MM-DD`), the prepared form for
/// [`compare_birth_date_digits`]; `None` when it is not a plausible date.
pub fn birth_date_digits(s: &str) -> Option<[u8; 8]> {
    parse(s)
}

/// [`compare_birth_date`] on prepared digits.
pub fn compare_birth_date_digits(a: &[u8; 8], b: &[u8; 8]) -> BirthDateLevel {
    use BirthDateLevel::*;
    if a == b {
        return Exact;
    }
    let differing = a.iter().zip(b).filter(|(x, y)| x != y).count();
    if differing == 1 {
        return Typo;
    }
    let same_year = a[..4] == b[..4];
    // A swap that lands on the same date is exact, handled above; month ↔ day must both hold.
    if same_year && a[4..6] == b[6..8] && a[6..8] == b[4..6] {
        return DayMonthSwapped;
    }
    if same_year { SameYear } else { Disagree }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_iso_dates() {
        assert_eq!(parse("1984-03-07"), Some([1, 9, 8, 4, 0, 3, 0, 7]));
        assert_eq!(parse(" 1984-03-07 "), Some([1, 9, 8, 4, 0, 3, 0, 7]));
        for bad in [
            "",
            "1984",
            "1984-3-7",
            "07/03/1984",
            "1984-13-01",
            "1984-00-10",
            "1984-01-32",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
