use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One record from one source system, after mapping: the unit the store applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceRecord {
    /// Name of the source system, e.g. `crm`, `billing`.
    pub source: String,
    /// The record's id inside its source system; `(source, source_id)` is unique.
    pub source_id: String,
    /// Orderable version: a record whose version is older than or equal to the stored one is a no-op.
    pub version: i64,
    /// Whether this record is upserted or deleted.
    #[serde(default)]
    pub op: Op,
    /// Typed identifiers, normalized; only linkable ones join customers.
    #[serde(default)]
    pub identifiers: Vec<Identifier>,
    /// Descriptive attributes: names, birth date, addresses, company, traits.
    #[serde(default)]
    pub attributes: Attributes,
    /// Timestamped interactions carried by this record (calls, invoices, tickets).
    #[serde(default)]
    pub events: Vec<Event>,
    /// The raw source payload, kept verbatim so nothing is lost by mapping (null when
    /// `raw_text` holds it).
    #[serde(default)]
    pub raw: serde_json::Value,
    /// The payload as the JSON text the transport delivered, when it had one (a JSONL line):
    /// stored exactly as it came; the mapper read it without building `raw`. In memory only.
    #[serde(skip)]
    #[schemars(skip)]
    pub raw_text: Option<String>,
}

impl SourceRecord {
    /// Identifiers that may join this record to a customer.
    pub fn linkable_identifiers(&self) -> impl Iterator<Item = &Identifier> {
        self.identifiers.iter().filter(|i| i.linkable)
    }

    /// A record is an entity (part of a customer) when it says anything about who someone is.
    /// A record that only carries events (a call log line) attaches to customers without
    /// becoming one.
    pub fn is_entity(&self) -> bool {
        !self.identifiers.is_empty() || !self.attributes.is_empty()
    }
}

/// Upsert or delete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    #[default]
    Upsert,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Upsert => "upsert",
            Op::Delete => "delete",
        }
    }
}

/// The kind of an identifier. Custom kinds are declared in config (e.g. `loyalty_card`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentifierKind {
    /// An email address, trimmed and lowercased.
    Email,
    /// A phone number in E.164.
    Phone,
    /// An id in another system, written `system:id`.
    External,
    /// A kind declared in config.
    Custom(String),
}

impl IdentifierKind {
    pub fn as_str(&self) -> &str {
        match self {
            IdentifierKind::Email => "email",
            IdentifierKind::Phone => "phone",
            IdentifierKind::External => "external",
            IdentifierKind::Custom(s) => s,
        }
    }

    /// Parse a kind name. Built-in names map to built-in kinds; any other non-empty name made of
    /// lowercase letters, digits and `_` is a custom kind (whether it is *declared* is checked
    /// by the normalizer).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(IdentifierKind::Email),
            "phone" => Some(IdentifierKind::Phone),
            "external" => Some(IdentifierKind::External),
            _ if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
            {
                Some(IdentifierKind::Custom(s.to_string()))
            }
            _ => None,
        }
    }
}

impl fmt::Display for IdentifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for IdentifierKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for IdentifierKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        IdentifierKind::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid identifier kind `{s}`: use email, phone, external or a lowercase custom name"
            ))
        })
    }
}

impl JsonSchema for IdentifierKind {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IdentifierKind".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "email, phone, external, or a custom kind declared in config",
            "type": "string",
            "pattern": "^[a-z0-9_]+$"
        })
    }
}

/// A typed, normalized identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Identifier {
    /// Which kind of identifier this is.
    pub kind: IdentifierKind,
    /// The normalized value (lowercased email, E.164 phone, `system:id`).
    pub value: String,
    /// The value as the source wrote it.
    pub original: String,
    /// False for placeholders (`test@test.com`, `0000000000`): stored, never used to link.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub linkable: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Identifier {
    /// `kind:value`, the form used on the CLI and in lookups.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind, self.value)
    }
}

/// Descriptive attributes of a person. All optional: sources know different things.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    /// Given (first) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Family (last) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// Full name as displayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    /// Birth date, ISO 8601 `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// Company or organisation name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// Postal addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    /// Anything else worth keeping (plan, tier, language...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub traits: BTreeMap<String, serde_json::Value>,
    /// Values that looked like identifiers but could not be normalized (an unparseable phone):
    /// kept for people to read, never used to link.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flagged: Vec<FlaggedValue>,
}

impl Attributes {
    pub fn is_empty(&self) -> bool {
        self.given_name.is_none()
            && self.family_name.is_none()
            && self.full_name.is_none()
            && self.birth_date.is_none()
            && self.company.is_none()
            && self.addresses.is_empty()
            && self.traits.is_empty()
    }
}

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl Address {
    pub fn is_empty(&self) -> bool {
        self == &Address::default()
    }
}

/// A value kept but flagged as unusable for linking, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlaggedValue {
    /// The identifier kind the value was meant to be.
    pub kind: IdentifierKind,
    /// The value as the source wrote it.
    pub original: String,
    /// Why it cannot be used.
    pub reason: String,
}

/// A timestamped interaction (call, invoice, ticket...) that attaches to a customer through its
/// identifiers, or through the record that carries it, without being an identity itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// What happened: `call`, `invoice`, `ticket`...
    pub kind: String,
    /// When it happened, RFC 3339 in UTC.
    pub occurred_at: String,
    /// Identifiers naming who it concerns (e.g. the caller's phone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<Identifier>,
    /// Event details (amount, duration, subject...).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// A customer's stable id. Displayed as `cus_<n>`; ids are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerId(pub i64);

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cus_{}", self.0)
    }
}

impl FromStr for CustomerId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("cus_").unwrap_or(s);
        digits
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(CustomerId)
            .ok_or_else(|| format!("invalid customer id `{s}`: expected cus_<number>"))
    }
}

impl Serialize for CustomerId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CustomerId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Generate the JSON Schema for [`SourceRecord`].
pub fn source_record_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(SourceRecord)).expect("schema serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_id_round_trips() {
        let id: CustomerId = "cus_42".parse().unwrap();
        assert_eq!(id, CustomerId(42));
        assert_eq!(id.to_string(), "cus_42");
        assert_eq!("42".parse::<CustomerId>().unwrap(), CustomerId(42));
        assert!("cus_x".parse::<CustomerId>().is_err());
        assert!("cus_0".parse::<CustomerId>().is_err());
    }

    #[test]
    fn identifier_kinds_parse() {
        assert_eq!(IdentifierKind::parse("email"), Some(IdentifierKind::Email));
        assert_eq!(
            IdentifierKind::parse("loyalty_card"),
            Some(IdentifierKind::Custom("loyalty_card".into()))
        );
        assert_eq!(IdentifierKind::parse("Bad Kind"), None);
        assert_eq!(IdentifierKind::parse(""), None);
    }
}
