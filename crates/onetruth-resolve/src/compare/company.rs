//! Company names: compared without legal form, leading article or punctuation, so "Acme Inc."
//! and "ACME, Inc" and "The Acme Company" are one company.

use super::{Period, fold_text, jaro_winkler, levels};

/// Jaro–Winkler similarity at or above which two company names are `similar`.
pub const COMPANY_SIMILAR_JW: f64 = 0.9;

levels! {
    /// How two company names compare.
    pub enum CompanyLevel for "company" {
        /// Equal after [`normalize_company`].
        Exact = "exact",
        /// Jaro–Winkler ≥ [`COMPANY_SIMILAR_JW`] after normalization.
        Similar = "similar",
        /// None of the above.
        Disagree = "disagree",
        /// Either side has no company.
        Missing = "missing",
    }
}

/// Legal forms dropped from the end of a company name (after periods are removed, so "L.L.C."
/// is "llc" and "S.A." is "sa").
const LEGAL_FORMS: &[&str] = &[
    "inc",
    "incorporated",
    "llc",
    "llp",
    "lp",
    "ltd",
    "limited",
    "gmbh",
    "ag",
    "kg",
    "se",
    "sa",
    "sas",
    "sarl",
    "srl",
    "spa",
    "bv",
    "nv",
    "corp",
    "corporation",
    "co",
    "company",
    "plc",
    "pty",
    "pte",
    "oy",
    "ab",
];

/// Normalize a company name: ASCII, lowercase, "&" as "and", punctuation dropped or spaced,
/// a leading "the" and trailing legal forms (Inc, LLC, Ltd, GmbH, SA, Corp, Co, plc...) removed
/// ("The Acme Co., Ltd." → "acme"). A name made only of such words is kept whole rather than
/// emptied.
pub fn normalize_company(name: &str) -> String {
    let folded = fold_text(&name.replace('&', " and "), &[], Period::Joins);
    let words: Vec<&str> = folded.split(' ').filter(|w| !w.is_empty()).collect();
    let mut core: &[&str] = &words;
    if core.len() > 1 && core[0] == "the" {
        core = &core[1..];
    }
    while core.len() > 1 && LEGAL_FORMS.contains(&core[core.len() - 1]) {
        core = &core[..core.len() - 1];
    }
    // "Acme and Co": the "and" that joined a dropped "Co" goes with it.
    while core.len() > 1 && core[core.len() - 1] == "and" {
        core = &core[..core.len() - 1];
    }
    core.join(" ")
}

/// Compare two company names. `None` or blank on either side is `Missing`.
pub fn compare_company(a: Option<&str>, b: Option<&str>) -> CompanyLevel {
    let norm = |s: Option<&str>| s.map(normalize_company).filter(|s| !s.is_empty());
    match (norm(a), norm(b)) {
        (Some(a), Some(b)) => compare_normalized_company(&a, &b),
        _ => CompanyLevel::Missing,
    }
}

/// [`compare_company`] on names already passed through [`normalize_company`] (non-empty).
pub fn compare_normalized_company(a: &str, b: &str) -> CompanyLevel {
    use CompanyLevel::*;
    fn unspaced(s: &str) -> impl Iterator<Item = u8> + '_ {
        s.bytes().filter(|c| *c != b' ')
    }
    if a == b || unspaced(a).eq(unspaced(b)) {
        Exact
    } else if jaro_winkler(a, b) >= COMPANY_SIMILAR_JW {
        Similar
    } else {
        Disagree
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn company_normalization() {
        for (raw, want) in [
            ("Acme Inc.", "acme"),
            ("ACME, Inc", "acme"),
            ("The Acme Company", "acme"),
            ("The Acme Co., Ltd.", "acme"),
            ("Müller GmbH", "muller"),
            ("Smith & Co", "smith"),
            ("Johnson & Johnson", "johnson and johnson"),
            ("Banco Santander S.A.", "banco santander"),
            ("Widgets L.L.C.", "widgets"),
            ("The Company", "company"),
            ("Inc", "inc"),
        ] {
            assert_eq!(normalize_company(raw), want, "{raw}");
        }
    }
}
