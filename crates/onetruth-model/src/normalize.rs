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
    let number =
        phonenumber::parse(Some(region.0), input).map_err(|_| NormalizeError::InvalidPhone)?;
    if !phonenumber::is_valid(&number) {
        return Err(NormalizeError::InvalidPhone);
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

fn normalize_external(raw: &str) -> Result<String, NormalizeError> {
    let (system, id) = raw.split_once(':').ok_or(NormalizeError::InvalidExternal)?;
    let (system, id) = (system.trim().to_ascii_lowercase(), id.trim());
    if system.is_empty() || id.is_empty() {
        return Err(NormalizeError::InvalidExternal);
    }
    Ok(format!("{system}:{id}"))
}
