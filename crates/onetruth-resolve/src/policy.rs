use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use onetruth_model::{Identifier, IdentifierKind};

/// A blocklist entry: `kind:value` matches one normalized value exactly; `email:local@*` matches
/// a local part at any domain; `email:*@domain` a whole domain; `kind:/regex/` every normalized
/// value the regular expression matches (unanchored: write `^…$` for a whole value).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BlockRule {
    Exact(IdentifierKind, String),
    EmailLocal(String),
    EmailDomain(String),
    Pattern(IdentifierKind, String),
}

/// A blocklist entry that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("blocklist entry `{entry}`: {reason}")]
pub struct PolicyError {
    pub entry: String,
    pub reason: String,
}

/// Placeholder values shipped by default: values people type when a form insists.
pub const DEFAULT_BLOCKLIST: &[&str] = &[
    "email:test@test.com",
    "email:test@example.com",
    "email:example@example.com",
    "email:email@email.com",
    "email:user@example.com",
    "email:none@none.com",
    "email:na@na.com",
    "email:a@a.com",
    "email:x@x.com",
    "email:noemail@*",
    "email:no-email@*",
    "email:no.email@*",
    "email:none@*",
    "email:noreply@*",
    "email:no-reply@*",
    "email:donotreply@*",
    "email:do-not-reply@*",
    "email:unknown@*",
    "email:null@*",
    "email:nobody@*",
    "email:*@noemail.com",
    "email:*@nomail.com",
    "email:*@mailinator.com",
    "email:asdf@asdf.com",
    "email:no@email.com",
    "email:noemail@noemail.com",
    // Directory assistance, the number every form has seen.
    "phone:+12125551212",
    // Keyboard mashes: asdf@…, qwerty@…
    "email:/^(asdf|qwerty|qwertz|azerty)[a-z]*@/",
];

/// FNV-1a: the blocklist is probed three times per email on the reader thread, and SipHash's
/// setup cost more than the probes. The keys are the operator's blocklist, not input, so a
/// keyed hash buys nothing here.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

type FnvSet = HashSet<String, BuildHasherDefault<Fnv>>;

/// Decides which identifiers may link records. Placeholders are stored but never link.
#[derive(Debug, Clone)]
pub struct IdentifierPolicy {
    /// Blocked values by kind (looked up by reference: this runs for every identifier); a
    /// short list, scanned: there are a few kinds.
    exact: Vec<(IdentifierKind, FnvSet)>,
    email_locals: FnvSet,
    email_domains: FnvSet,
    patterns: Vec<(IdentifierKind, regex::Regex)>,
}

impl Default for IdentifierPolicy {
    fn default() -> Self {
        IdentifierPolicy::new(DEFAULT_BLOCKLIST.iter().copied(), true)
            .expect("default blocklist entries are valid")
    }
}

impl IdentifierPolicy {
    /// Build from blocklist entries (`kind:value`, see [`BlockRule`]). With `with_defaults`, the
    /// shipped [`DEFAULT_BLOCKLIST`] is included.
    pub fn new<'a>(
        entries: impl IntoIterator<Item = &'a str>,
        with_defaults: bool,
    ) -> Result<IdentifierPolicy, Vec<PolicyError>> {
        let mut policy = IdentifierPolicy {
            exact: Vec::new(),
            email_locals: FnvSet::default(),
            email_domains: FnvSet::default(),
            patterns: Vec::new(),
        };
        let mut errors = Vec::new();
        let defaults: &[&str] = if with_defaults {
            DEFAULT_BLOCKLIST
        } else {
            &[]
        };
        for entry in defaults.iter().copied().chain(entries) {
            match parse_rule(entry) {
                Ok(BlockRule::Exact(k, v)) => {
                    match policy.exact.iter_mut().find(|(kind, _)| *kind == k) {
                        Some((_, values)) => {
                            values.insert(v);
                        }
                        None => policy.exact.push((k, FnvSet::from_iter([v]))),
                    }
                }
                Ok(BlockRule::EmailLocal(l)) => {
                    policy.email_locals.insert(l);
                }
                Ok(BlockRule::EmailDomain(d)) => {
                    policy.email_domains.insert(d);
                }
                Ok(BlockRule::Pattern(k, p)) => match regex::Regex::new(&p) {
                    Ok(re) => policy.patterns.push((k, re)),
                    Err(e) => errors.push(PolicyError {
                        entry: entry.to_string(),
                        reason: format!("invalid regular expression: {e}"),
                    }),
                },
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(policy)
        } else {
            Err(errors)
        }
    }

    /// Whether a normalized identifier is a placeholder that must never link.
    pub fn is_placeholder(&self, id: &Identifier) -> bool {
        if self
            .exact
            .iter()
            .any(|(k, values)| *k == id.kind && values.contains(id.value.as_str()))
        {
            return true;
        }
        if self
            .patterns
            .iter()
            .any(|(k, re)| *k == id.kind && re.is_match(&id.value))
        {
            return true;
        }
        match id.kind {
            IdentifierKind::Email => {
                let (local, domain) = id.value.split_once('@').unwrap_or((&id.value, ""));
                self.email_locals.contains(local) || self.email_domains.contains(domain)
            }
            IdentifierKind::Phone => is_placeholder_phone(&id.value),
            _ => false,
        }
    }

    /// Mark placeholders unlinkable, in place.
    pub fn screen(&self, identifiers: &mut [Identifier]) {
        for id in identifiers {
            if id.linkable && self.is_placeholder(id) {
                id.linkable = false;
            }
        }
    }
}

/// Numbers that parse but no one owns: one repeated digit, or a run like 1234567 in the
/// subscriber part.
fn is_placeholder_phone(e164: &str) -> bool {
    let digits = e164.trim_start_matches('+');
    let tail = &digits[digits.len().saturating_sub(7)..];
    let first = tail.as_bytes().first().copied();
    tail.len() == 7
        && (tail.bytes().all(|b| Some(b) == first)
            || "01234567890".contains(tail)
            || "98765432109".contains(tail))
}

fn parse_rule(entry: &str) -> Result<BlockRule, PolicyError> {
    let err = |reason: &str| PolicyError {
        entry: entry.to_string(),
        reason: reason.to_string(),
    };
    let (kind, value) = entry
        .split_once(':')
        .ok_or_else(|| err("write it as kind:value, e.g. email:test@test.com"))?;
    let kind = IdentifierKind::parse(kind.trim()).ok_or_else(|| err("unknown identifier kind"))?;
    let value = value.trim();
    if value.is_empty() {
        return Err(err("empty value"));
    }
    if let Some(pattern) = value
        .strip_prefix('/')
        .and_then(|v| v.strip_suffix('/'))
        .filter(|p| !p.is_empty())
    {
        return Ok(BlockRule::Pattern(kind, pattern.to_string()));
    }
    if kind == IdentifierKind::Email {
        let value = value.to_lowercase();
        return match value.split_once('@') {
            Some((local, "*")) if !local.is_empty() && local != "*" => {
                Ok(BlockRule::EmailLocal(local.into()))
            }
            Some(("*", domain)) if !domain.is_empty() && domain != "*" => {
                Ok(BlockRule::EmailDomain(domain.into()))
            }
            Some(_) if !value.contains('*') => Ok(BlockRule::Exact(kind, value)),
            _ => Err(err("use local@domain, local@* or *@domain")),
        };
    }
    Ok(BlockRule::Exact(kind, value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: IdentifierKind, value: &str) -> Identifier {
        Identifier {
            kind,
            value: value.into(),
            original: value.into(),
            linkable: true,
        }
    }

    #[test]
    fn default_placeholders_do_not_link() {
        let p = IdentifierPolicy::default();
        let table = [
            (IdentifierKind::Email, "test@test.com", true),
            (IdentifierKind::Email, "noemail@acme.com", true),
            (IdentifierKind::Email, "someone@noemail.com", true),
            (IdentifierKind::Email, "jane@acme.com", false),
            (IdentifierKind::Phone, "+14155550000", false),
            (IdentifierKind::Phone, "+14150000000", true),
            (IdentifierKind::Phone, "+15551234567", true),
            (IdentifierKind::Phone, "+14152671234", false),
            (IdentifierKind::External, "crm:1", false),
        ];
        for (kind, value, want) in table {
            assert_eq!(
                p.is_placeholder(&id(kind.clone(), value)),
                want,
                "{kind}:{value}"
            );
        }
    }

    #[test]
    fn configured_entries_extend_or_replace_defaults() {
        let p =
            IdentifierPolicy::new(["external:crm:unknown", "email:*@corp.example"], false).unwrap();
        assert!(p.is_placeholder(&id(IdentifierKind::External, "crm:unknown")));
        assert!(p.is_placeholder(&id(IdentifierKind::Email, "x@corp.example")));
        assert!(
            !p.is_placeholder(&id(IdentifierKind::Email, "test@test.com")),
            "defaults off"
        );
        let errs = IdentifierPolicy::new(["nokind", "email:*@*", "Bad Kind:x", "phone:/(/"], true)
            .unwrap_err();
        assert_eq!(errs.len(), 4);
        assert!(errs[3].reason.contains("regular expression"), "{errs:?}");
        assert!(errs[0].to_string().contains("`nokind`"));
    }

    #[test]
    fn regex_entries_match_normalized_values() {
        let p =
            IdentifierPolicy::new(["phone:/^\\+1800/", "external:/^crm:test-/"], false).unwrap();
        assert!(p.is_placeholder(&id(IdentifierKind::Phone, "+18005550100")));
        assert!(!p.is_placeholder(&id(IdentifierKind::Phone, "+14155550100")));
        assert!(p.is_placeholder(&id(IdentifierKind::External, "crm:test-7")));
        let d = IdentifierPolicy::default();
        assert!(d.is_placeholder(&id(IdentifierKind::Email, "asdfgh@gmail.com")));
        assert!(d.is_placeholder(&id(IdentifierKind::Phone, "+12125551212")));
        assert!(!d.is_placeholder(&id(IdentifierKind::Email, "asher@gmail.com")));
    }

    #[test]
    fn screen_marks_only_placeholders() {
        let p = IdentifierPolicy::default();
        let mut ids = vec![
            id(IdentifierKind::Email, "test@test.com"),
            id(IdentifierKind::Email, "a@b.com"),
        ];
        p.screen(&mut ids);
        assert!(!ids[0].linkable);
        assert!(ids[1].linkable);
    }
}
