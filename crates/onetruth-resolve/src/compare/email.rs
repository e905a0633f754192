//! Email addresses, as normalized by `onetruth-model` (trimmed, lowercased). Beyond exact
//! equality the levels capture the same mailbox written differently (provider rules), the same
//! person's handle at another provider, and typos in the local part.

use super::{best_pair, levels};

levels! {
    /// How two email addresses compare.
    pub enum EmailLevel for "email" {
        /// The same address.
        Exact = "exact",
        /// Different addresses that deliver to the same mailbox ([`canonical_mailbox`]):
        /// "j.o.h.n@gmail.com" / "john@gmail.com", "john+shop@example.com" / "john@example.com".
        SameMailbox = "same_mailbox",
        /// The same local part (after provider rules, dots ignored) at another domain:
        /// "john@gmail.com" / "john@yahoo.com", "j.smith@gmail.com" / "jsmith@acme.com".
        SameLocalPart = "same_local_part",
        /// Local parts (after provider rules) within a small edit distance, at any domain: at
        /// most 1 edit, or 2 when both are 8 characters or longer; never for local parts shorter
        /// than 4 characters, where one edit turns one short handle into another. Edits are
        /// Levenshtein's plus the swap of two neighbouring characters (optimal string alignment).
        CloseLocalPart = "close_local_part",
        /// None of the above.
        Disagree = "disagree",
        /// Either side has no email.
        Missing = "missing",
    }
}

/// Domains that are another name for the same provider.
const DOMAIN_ALIASES: &[(&str, &str)] = &[("googlemail.com", "gmail.com")];
/// Providers that ignore dots in the local part.
const DOTLESS_DOMAINS: &[&str] = &["gmail.com"];

/// The address a mail actually reaches: lowercase; `googlemail.com` read as `gmail.com`; a
/// `+tag` subaddress dropped at every domain (RFC 5233 subaddressing, honoured by Gmail,
/// Outlook, iCloud, Fastmail, Proton and most corporate servers); dots dropped in Gmail local
/// parts. "J.O.H.N+shop@googlemail.com" → "john@gmail.com". Input without `@` comes back trimmed
/// and lowercased.
pub fn canonical_mailbox(email: &str) -> String {
    let email = lowercase(email.trim());
    let Some((local, domain)) = email.rsplit_once('@') else {
        return email.into_owned();
    };
    let domain = DOMAIN_ALIASES
        .iter()
        .find(|(alias, _)| *alias == domain)
        .map_or(domain, |(_, canonical)| canonical);
    // A local part that *starts* with `+` has no base to fall back to: keep it whole.
    let local = match local.split_once('+') {
        Some((base, _)) if !base.is_empty() => base,
        _ => local,
    };
    if DOTLESS_DOMAINS.contains(&domain) {
        let mut out = String::with_capacity(local.len() + 1 + domain.len());
        out.extend(local.chars().filter(|c| *c != '.'));
        out.push('@');
        out.push_str(domain);
        out
    } else {
        super::concat(&[local, "@", domain])
    }
}

/// `s` lowercased, without a copy when it has no uppercase letters (normalized emails never
/// do, and this runs for every email of every record).
fn lowercase(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
        std::borrow::Cow::Owned(s.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Whether [`canonical_mailbox`] may change `address` (trimmed and lowercase): an aliased
/// domain, a `+tag` after a non-empty base, or dots in a mailbox of a dotless domain.
fn canonical_differs(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    DOMAIN_ALIASES.iter().any(|(alias, _)| *alias == domain)
        || local
            .split_once('+')
            .is_some_and(|(base, _)| !base.is_empty())
        || (DOTLESS_DOMAINS.contains(&domain) && local.contains('.'))
}

/// An email prepared once for many comparisons ([`compare_prepared_email`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedEmail {
    address: Box<str>,
    /// The canonical mailbox when it differs from `address` (most addresses are canonical
    /// already; at a million records the copy matters).
    canonical: Option<Box<str>>,
    /// The position of the canonical mailbox's `@` (`None` without one).
    at: Option<u32>,
}

impl PreparedEmail {
    /// `None` for a blank value.
    pub fn new(email: &str) -> Option<PreparedEmail> {
        let address = lowercase(email.trim()).into_owned();
        if address.is_empty() {
            return None;
        }
        // Most addresses are canonical already: find out without building the canonical copy.
        let canonical = canonical_differs(&address)
            .then(|| canonical_mailbox(&address))
            .filter(|c| *c != address);
        let at = canonical
            .as_deref()
            .unwrap_or(&address)
            .rfind('@')
            .and_then(|i| u32::try_from(i).ok());
        Some(PreparedEmail {
            canonical: canonical.map(Into::into),
            address: address.into(),
            at,
        })
    }

    /// The address as compared (trimmed, lowercase).
    pub fn address(&self) -> &str {
        &self.address
    }

    fn canonical(&self) -> &str {
        self.canonical.as_deref().unwrap_or(&self.address)
    }

    fn parts(&self) -> Option<(&str, &str)> {
        let i = self.at? as usize;
        let c = self.canonical();
        Some((&c[..i], &c[i + 1..]))
    }
}

/// Compare two email addresses. `None` or blank on either side is `Missing`.
pub fn compare_email(a: Option<&str>, b: Option<&str>) -> EmailLevel {
    match (
        a.and_then(PreparedEmail::new),
        b.and_then(PreparedEmail::new),
    ) {
        (Some(a), Some(b)) => compare_prepared_email(&a, &b),
        _ => EmailLevel::Missing,
    }
}

/// [`compare_email`] on prepared emails.
pub fn compare_prepared_email(a: &PreparedEmail, b: &PreparedEmail) -> EmailLevel {
    use EmailLevel::*;
    if a.address == b.address {
        return Exact;
    }
    if a.canonical() == b.canonical() {
        return SameMailbox;
    }
    let (Some((la, da)), Some((lb, db))) = (a.parts(), b.parts()) else {
        return Disagree;
    };
    // Across domains the dots are compared away too: Gmail has already dropped them on its
    // side, so "john.smith@gmail.com" reads "johnsmith" and must still meet "john.smith@acme.com".
    // On one domain a dot is a real difference and is left to the edit distance.
    if da != db
        && la
            .bytes()
            .filter(|b| *b != b'.')
            .eq(lb.bytes().filter(|b| *b != b'.'))
    {
        return SameLocalPart;
    }

    let shorter = la.chars().count().min(lb.chars().count());
    let allowed = if shorter >= 8 { 2 } else { 1 };
    // Optimal string alignment: Levenshtein that also counts a swap of two neighbouring
    // characters ("jsmiht") as one edit, the most common typing slip.
    // The distance is at least the length difference: skip the quadratic part when that
    // already rules it out (most pairs of unrelated addresses).
    let longer = la.chars().count().max(lb.chars().count());
    if shorter >= 4 && longer - shorter <= allowed && strsim::osa_distance(la, lb) <= allowed {
        return CloseLocalPart;
    }
    Disagree
}

/// The best level over every pair of the two records' emails; `Missing` when either has none.
pub fn compare_emails<A: AsRef<str>, B: AsRef<str>>(a: &[A], b: &[B]) -> EmailLevel {
    best_pair(a, b, EmailLevel::Missing, |x, y| {
        compare_email(Some(x.as_ref()), Some(y.as_ref()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preparing_skips_the_canonical_copy_only_when_it_would_not_differ() {
        for raw in [
            "john@gmail.com",
            "j.o.hn@gmail.com",
            "john+news@gmail.com",
            "+news@gmail.com",
            "john@googlemail.com",
            "j.ohn+x@googlemail.com",
            "j.ohn@example.com",
            "john+tag@example.com",
            "JOHN@Example.COM",
            "no-at-sign",
            "a@b@gmail.com",
        ] {
            let p = PreparedEmail::new(raw).unwrap();
            assert_eq!(p.canonical(), canonical_mailbox(raw), "{raw}");
            assert_eq!(
                p.parts(),
                canonical_mailbox(raw)
                    .rsplit_once('@')
                    .map(|(l, d)| (l.to_string(), d.to_string()))
                    .as_ref()
                    .map(|(l, d)| (l.as_str(), d.as_str())),
                "{raw}"
            );
        }
    }

    #[test]
    fn canonical_mailboxes() {
        for (raw, want) in [
            ("john@gmail.com", "john@gmail.com"),
            ("j.o.h.n@gmail.com", "john@gmail.com"),
            ("J.O.H.N+shop@googlemail.com", "john@gmail.com"),
            ("john.smith+news@example.com", "john.smith@example.com"),
            ("john.smith@yahoo.com", "john.smith@yahoo.com"),
            ("+tag@example.com", "+tag@example.com"),
            ("not-an-email", "not-an-email"),
        ] {
            assert_eq!(canonical_mailbox(raw), want, "{raw}");
        }
    }
}
