//! Identifier normalization: the one place that decides what "the same email" or "the same phone"
//! means. Used at ingest and at lookup so a value typed either way finds the same customer.

use std::collections::BTreeSet;
use std::str::FromStr;

use crate::{FlaggedValue, Identifier, IdentifierKind};

/// A default region for phone numbers written without a country code (ISO 3166 alpha-2, e.g. `US`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneRegion(phonenumber::country::Id);

impl FromStr for PhoneRegion {
    type Err = NormalizeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        phonenumber::country::Id::from_str(&s.trim().to_ascii_uppercase())
            .map(PhoneRegion)
            .map_err(|_| NormalizeError::UnknownRegion(s.to_string()))
    }
}

impl Default for PhoneRegion {
    fn default() -> Self {
        PhoneRegion(phonenumber::country::Id::US)
    }
}

/// Why a value could not be normalized into an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("empty value")]
    Empty,
    #[error("not an email address")]
    InvalidEmail,
    #[error("not a valid phone number")]
    InvalidPhone,
    #[error("external id needs a system and an id")]
    InvalidExternal,
    #[error("unknown phone region `{0}`: use an ISO 3166 alpha-2 code such as US or GB")]
    UnknownRegion(String),
    #[error("identifier kind `{0}` is not declared in config")]
    UndeclaredKind(String),
}

/// Normalizes raw values into [`Identifier`]s.
#[derive(Debug, Clone, Default)]
pub struct Normalizer {
    default_region: PhoneRegion,
    custom_kinds: BTreeSet<String>,
}

impl Normalizer {
    pub fn new(
        default_region: PhoneRegion,
        custom_kinds: impl IntoIterator<Item = String>,
    ) -> Self {
        Normalizer {
            default_region,
            custom_kinds: custom_kinds.into_iter().collect(),
        }
    }

    /// The same normalizer with another default phone region.
    pub fn with_region(&self, region: PhoneRegion) -> Self {
        Normalizer {
            default_region: region,
            custom_kinds: self.custom_kinds.clone(),
        }
    }

    pub fn default_region(&self) -> PhoneRegion {
        self.default_region
    }

    pub fn is_declared(&self, kind: &IdentifierKind) -> bool {
        match kind {
            IdentifierKind::Custom(name) => self.custom_kinds.contains(name),
            _ => true,
        }
    }

    /// Normalize one value of `kind`. For phones, `region` overrides the default region.
    pub fn normalize(
        &self,
        kind: &IdentifierKind,
        raw: &str,
        region: Option<PhoneRegion>,
    ) -> Result<Identifier, NormalizeError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(NormalizeError::Empty);
        }
        let value = match kind {
            IdentifierKind::Email => normalize_email(trimmed)?,
            IdentifierKind::Phone => {
                normalize_phone(trimmed, region.unwrap_or(self.default_region))?
            }
            IdentifierKind::External => normalize_external(trimmed)?,
            IdentifierKind::Custom(name) => {
                if !self.custom_kinds.contains(name) {
                    return Err(NormalizeError::UndeclaredKind(name.clone()));
                }
                trimmed.split_whitespace().collect::<Vec<_>>().join(" ")
            }
        };
        Ok(Identifier {
            kind: kind.clone(),
            value,
            original: raw.to_string(),
            linkable: true,
        })
    }

    /// Normalize, turning a failure into a [`FlaggedValue`] the record keeps as an attribute.
    /// Empty values yield `Ok(None)`: nothing to keep.
    pub fn normalize_or_flag(
        &self,
        kind: &IdentifierKind,
        raw: &str,
        region: Option<PhoneRegion>,
    ) -> Result<Option<Identifier>, FlaggedValue> {
        match self.normalize(kind, raw, region) {
            Ok(id) => Ok(Some(id)),
            Err(NormalizeError::Empty) => Ok(None),
            Err(e) => Err(FlaggedValue {
                kind: kind.clone(),
                original: raw.to_string(),
                reason: e.to_string(),
            }),
        }
    }
}

/// Trim and lowercase; reject anything without exactly one `@` and a dotted domain.
pub fn normalize_email(raw: &str) -> Result<String, NormalizeError> {
    let s = raw.trim().trim_start_matches("mailto:").to_lowercase();
    let (local, domain) = s.split_once('@').ok_or(NormalizeError::InvalidEmail)?;
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty()
        || domain.contains('@')
        || !domain_ok
        || s.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(NormalizeError::InvalidEmail);
    }
    Ok(s)
}

fn normalize_phone(raw: &str, region: PhoneRegion) -> Result<String, NormalizeError> {
    // `00` is the international prefix in most of the world; phonenumber only knows it when the
    // region's own prefix is 00, so rewrite it to `+` first.
    let candidate;
    let input = match raw.strip_prefix("00") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit() && c != '0') => {
            candidate = format!("+{rest}");
            candidate.as_str()
        }
        _ => raw,
    };
    let (code, national) = match nanp_national(input, region) {
        Some(national) => (1, national),
        None => {
            let number = phonenumber::parse(Some(region.0), input)
                .map_err(|_| NormalizeError::InvalidPhone)?;
            (number.code().value(), number.national().to_string())
        }
    };
    if !validity::is_valid(code, &national) {
        return Err(NormalizeError::InvalidPhone);
    }
    // E.164 is exactly this; the crate's formatter would also pick a national format first.
    Ok(format!("+{code}{national}"))
}

/// The national number of a plainly written North American number, without the general
/// parser: ten digits (area code first, so not 0 or 1), after a `+1`, or, in a NANP default
/// region, alone or after a `1` trunk prefix, separated only by spaces, `-`, `.` and
/// parentheses. That is what most phone fields in North American data hold, and
/// `phonenumber::parse` costs several microseconds a number. Anything else (letters,
/// extensions, other lengths or countries) returns `None` and takes the general parser; a
/// table test checks both give the same number on every shape taken here.
fn nanp_national(input: &str, region: PhoneRegion) -> Option<String> {
    let (plus, rest) = match input.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let mut digits = [0u8; 11];
    let mut n = 0;
    for b in rest.bytes() {
        match b {
            b'0'..=b'9' => {
                *digits.get_mut(n)? = b;
                n += 1;
            }
            b' ' | b'-' | b'.' | b'(' | b')' => {}
            _ => return None,
        }
    }
    let national = match (plus, n, digits[0]) {
        (true, 11, b'1') => &digits[1..11],
        (false, 10, _) => &digits[..10],
        (false, 11, b'1') => &digits[1..11],
        _ => return None,
    };
    if !(b'2'..=b'9').contains(&national[0]) {
        return None;
    }
    if !plus {
        let code = phonenumber::metadata::DATABASE
            .by_id(region.0.as_ref())
            .map(|m| m.country_code());
        if code != Some(1) {
            return None;
        }
    }
    // Only ASCII digits were copied in.
    std::str::from_utf8(national).ok().map(str::to_string)
}

/// `phonenumber::is_valid`, with the crate's metadata but our own compiled regexes.
///
/// The crate routes every regex use through one global LRU cache keyed by the pattern text:
/// a mutex plus a SipHash of patterns over a kilobyte long, several times per number, which
/// made validation most of the cost of mapping a record. The rules here mirror the crate's
/// `is_valid_with` exactly (region selection by leading digits, then "the general pattern and
/// at least one typed pattern match at the start, with a possible length"); a table test checks
/// both agree.
mod validity {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};

    use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
    use regex::Regex;

    struct Pattern {
        re: Regex,
        possible_length: Vec<u16>,
    }

    impl Pattern {
        fn new(d: &Descriptor) -> Option<Pattern> {
            let re = regex::RegexBuilder::new(&format!("^(?:{})", d.national_number().as_str()))
                .ignore_whitespace(true)
                .build()
                .ok()?;
            Some(Pattern {
                re,
                possible_length: d.possible_length().to_vec(),
            })
        }

        fn is_match(&self, national: &str) -> bool {
            (self.possible_length.is_empty()
                || self.possible_length.contains(&(national.len() as u16)))
                && self.re.is_match(national)
        }
    }

    struct Region {
        leading_digits: Option<Regex>,
        general: Option<Pattern>,
        typed: Vec<Pattern>,
    }

    impl Region {
        fn new(meta: &Metadata) -> Region {
            let d = meta.descriptors();
            // Validity asks whether any type matches, so the order does not change the answer;
            // the common types first spare most numbers eight regex searches.
            let typed = [
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.voip(),
                d.personal_number(),
                d.pager(),
                d.uan(),
                d.voicemail(),
            ]
            .into_iter()
            .flatten()
            .filter_map(Pattern::new)
            .collect();
            Region {
                leading_digits: meta.leading_digits().and_then(|l| {
                    regex::RegexBuilder::new(&format!("^(?:{})", l.as_str()))
                        .ignore_whitespace(true)
                        .build()
                        .ok()
                }),
                general: Pattern::new(d.general()),
                typed,
            }
        }

        fn has_type(&self, national: &str) -> bool {
            self.general.as_ref().is_some_and(|g| g.is_match(national))
                && self.typed.iter().any(|p| p.is_match(national))
        }
    }

    /// A region's patterns, compiled on first use: a calling code can span many regions (25
    /// for +1), and a number usually stops at the first; compiling them all made the first
    /// phone number of a run wait about 0.1 s.
    struct LazyRegion {
        meta: &'static Metadata,
        compiled: OnceLock<Region>,
    }

    impl LazyRegion {
        fn get(&self) -> &Region {
            self.compiled.get_or_init(|| Region::new(self.meta))
        }
    }

    type ByCode = Mutex<HashMap<u16, Arc<Vec<LazyRegion>>>>;

    fn regions(code: u16) -> Arc<Vec<LazyRegion>> {
        static CACHE: OnceLock<ByCode> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        // A poisoned lock only means another thread panicked while compiling; the map is
        // still consistent (entries are inserted whole), so keep using it.
        let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(code)
            .or_insert_with(|| {
                let metas: Vec<&Metadata> = match DATABASE.region(&code) {
                    Some(ids) if !(ids.len() == 1 && ids[0] == "001") => {
                        ids.iter().filter_map(|id| DATABASE.by_id(*id)).collect()
                    }
                    _ => DATABASE
                        .by_code(&code)
                        .and_then(|m| m.into_iter().next())
                        .into_iter()
                        .collect(),
                };
                Arc::new(
                    metas
                        .into_iter()
                        .map(|meta| LazyRegion {
                            meta,
                            compiled: OnceLock::new(),
                        })
                        .collect(),
                )
            })
            .clone()
    }

    /// Whether the national significant number (leading zeros included) is valid under
    /// country calling code `code`.
    pub(super) fn is_valid(code: u16, national: &str) -> bool {
        let regions = regions(code);
        if regions.len() == 1 {
            return regions[0].get().has_type(national);
        }
        // Several regions share the code (NANP): the first whose leading digits match, or
        // without leading digits the first with a matching type, decides.
        for region in regions.iter().map(LazyRegion::get) {
            match &region.leading_digits {
                Some(l) => {
                    if l.is_match(national) {
                        return region.has_type(national);
                    }
                }
                None => {
                    if region.has_type(national) {
                        return true;
                    }
                }
            }
        }
        false
    }
}

fn normalize_external(raw: &str) -> Result<String, NormalizeError> {
    let (system, id) = raw.split_once(':').ok_or(NormalizeError::InvalidExternal)?;
    let (system, id) = (system.trim().to_ascii_lowercase(), id.trim());
    if system.is_empty() || id.is_empty() {
        return Err(NormalizeError::InvalidExternal);
    }
    Ok(format!("{system}:{id}"))
}

#[cfg(test)]
mod tests {
    use super::{PhoneRegion, nanp_national, validity};
    use std::str::FromStr;

    /// The NANP shortcut must give the general parser's national number on every input it
    /// takes, and take the common shapes.
    #[test]
    fn nanp_shortcut_agrees_with_the_phonenumber_crate() {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let regions = ["US", "CA", "JM", "GB", "DE", "FR", "IN"];
        let (mut taken, mut compared) = (0, 0);
        for _ in 0..4_000 {
            let len = 9 + (next() % 4) as usize;
            let d: String = (0..len)
                .map(|_| char::from(b'0' + (next() % 10) as u8))
                .collect();
            let shapes = [
                d.clone(),
                format!("+{d}"),
                format!("+1{d}"),
                format!("1{d}"),
                format!("+1 {d}"),
                format!("1-{d}"),
            ];
            let mut shaped: Vec<String> = shapes.to_vec();
            if d.len() >= 10 {
                let (a, rest) = d.split_at(3);
                let (b, c) = rest.split_at(3);
                shaped.extend([
                    format!("({a}) {b}-{c}"),
                    format!("{a}.{b}.{c}"),
                    format!("{a}-{b}-{c}"),
                    format!("+1 {a} {b} {c}"),
                    format!("+1 ({a}) {b}-{c}"),
                    format!("1 ({a}) {b}.{c}"),
                    format!("{a}-{b}-{c} x12"),
                    format!("{a}/{b}/{c}"),
                ]);
            }
            let region = regions[(next() % regions.len() as u64) as usize];
            let r = PhoneRegion::from_str(region).unwrap();
            for text in &shaped {
                let Some(fast) = nanp_national(text, r) else {
                    continue;
                };
                taken += 1;
                let slow = phonenumber::parse(Some(r.0), text).expect("the crate parses it");
                let slow_valid =
                    validity::is_valid(slow.code().value(), &slow.national().to_string());
                let fast_valid = validity::is_valid(1, &fast);
                assert_eq!(fast_valid, slow_valid, "{text} in {region}");
                if slow_valid {
                    compared += 1;
                    assert_eq!(
                        (1, fast.clone()),
                        (slow.code().value(), slow.national().to_string()),
                        "{text} in {region}"
                    );
                }
            }
        }
        assert!(
            taken > 4_000 && compared > 1_500,
            "taken {taken}, compared {compared}"
        );
    }

    /// Our validator must agree with `phonenumber::is_valid` on every number, valid or not.
    #[test]
    fn fast_validity_agrees_with_the_phonenumber_crate() {
        let codes = [
            1u16, 7, 20, 27, 33, 34, 39, 44, 49, 52, 55, 61, 62, 65, 81, 82, 86, 91, 234, 353, 358,
            380, 852, 971, 979, 800, 882,
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            // splitmix64: deterministic, so a failure reproduces.
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let (mut checked, mut valid) = (0, 0);
        for _ in 0..5_000 {
            let code = codes[(next() % codes.len() as u64) as usize];
            let len = 6 + (next() % 7) as usize;
            let digits: String = (0..len)
                .map(|_| char::from(b'0' + (next() % 10) as u8))
                .collect();
            let text = format!("+{code}{digits}");
            let Ok(number) = phonenumber::parse(None, &text) else {
                continue;
            };
            let want = phonenumber::is_valid(&number);
            let national = number.national().to_string();
            assert_eq!(
                validity::is_valid(number.code().value(), &national),
                want,
                "{text}"
            );
            if want {
                let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
                assert_eq!(e164, format!("+{}{national}", number.code().value()));
            }
            checked += 1;
            valid += usize::from(want);
        }
        assert!(
            checked > 3_500 && valid > 250,
            "checked {checked}, valid {valid}"
        );
    }
}
