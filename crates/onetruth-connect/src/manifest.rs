//! The connector manifest: which source system, which fields are the record id and version, and
//! how source fields map onto canonical identifiers, attributes and events.
//!
//! Parsed with the `config` crate (TOML documented, YAML accepted), unknown keys rejected, then
//! validated into a [`Mapper`](crate::Mapper) that reports every problem at once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A connector manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Name of the source system (`crm`, `billing`...); becomes `source` on every record.
    /// Lowercase letters, digits, `_` and `-`.
    pub source: String,
    /// Human description of the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Default region for phone numbers without a country code (ISO 3166 alpha-2); overrides
    /// the store-wide default for this source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_region: Option<String>,
    /// How records are read: `type` picks the transport (`file` when absent), the other keys
    /// are its settings, checked against the transport's own params when the manifest loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub transport: Option<serde_json::Value>,
    /// Record id, version and deletion.
    pub record: RecordSpec,
    /// Which values are identifiers, of which kind.
    #[serde(default)]
    pub identifiers: Vec<IdentifierSpec>,
    /// Descriptive attributes.
    #[serde(default)]
    pub attributes: AttributesSpec,
    /// Makes every record also (or only) an event: a call, an invoice, a ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventSpec>,
}

/// Record id, version and deletion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    /// The record's id in the source system (required, non-empty).
    pub id: FieldSpec,
    /// The record's version, used to ignore stale or repeated updates. Without it, every run of
    /// a connector counts as a newer version and unchanged content is detected by comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<VersionSpec>,
    /// Marks a record as deleted when the field equals the given value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_when: Option<DeleteWhen>,
}

/// How the version is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionSpec {
    /// Path of the version field.
    pub field: String,
    /// `integer` (default), or a timestamp: `rfc3339`, `unix` (seconds), `unix_ms`, or a
    /// chrono format string such as `%Y-%m-%d %H:%M:%S` (read as UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// Deletion marker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteWhen {
    /// Path of the field to test.
    pub field: String,
    /// The record is a delete when the field's text equals this (case-insensitive).
    pub equals: String,
}

/// One identifier mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifierSpec {
    /// `email`, `phone`, `external`, or a custom kind declared in the store config.
    pub kind: String,
    /// Where the value comes from.
    pub value: FieldSpec,
    /// For `external`: the system the id belongs to; the identifier becomes `system:value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// For `phone`: region for numbers without a country code, overriding `default_region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Split one field into several values on this separator (e.g. `";"`). JSON arrays are
    /// always split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
}

/// Attribute mappings. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributesSpec {
    /// Given (first) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<FieldSpec>,
    /// Family (last) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<FieldSpec>,
    /// Full name as displayed; defaults to given + family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<FieldSpec>,
    /// A single name field split into given and family names (fills only what is not mapped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<NameSpec>,
    /// Birth date; give `format` unless it is already `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<FieldSpec>,
    /// Company or organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<FieldSpec>,
    /// Postal addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<AddressSpec>,
    /// Free traits: trait name to value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub traits: BTreeMap<String, FieldSpec>,
}

/// A full-name field and how to split it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NameSpec {
    /// Where the full name comes from.
    pub value: FieldSpec,
    /// `auto` (default: "Last, First" when there is a comma, else "First Last"),
    /// `last_first` or `first_last`.
    #[serde(default)]
    pub style: NameStyle,
}

/// How a full name is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NameStyle {
    #[default]
    Auto,
    LastFirst,
    FirstLast,
}

/// An address mapping; each part optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line1: Option<FieldSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<FieldSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<FieldSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<FieldSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<FieldSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<FieldSpec>,
}

/// Makes records events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// Event kind: `call`, `invoice`, `ticket`...
    pub kind: String,
    /// When it happened; give `format` (see `record.version.format`) unless it is RFC 3339.
    pub occurred_at: FieldSpec,
    /// Event details: name to value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, FieldSpec>,
    /// When false, the record only carries the event (a call log line): its identifiers name
    /// who the event concerns and it does not describe a customer itself. Default true.
    #[serde(default = "yes")]
    pub describes_customer: bool,
}

fn yes() -> bool {
    true
}

/// Where a value comes from: a path (`"Email"`, `"contact.emails.0"`) as shorthand, or a table
/// with exactly one of `field`, `template`, `const`, plus optional `format` and `default`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FieldSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, rename = "const", skip_serializing_if = "Option::is_none")]
    pub constant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

impl FieldSpec {
    pub fn path(p: &str) -> Self {
        FieldSpec {
            field: Some(p.to_string()),
            ..Default::default()
        }
    }
}

/// The table form of a [`FieldSpec`].
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FieldSpecTable {
    /// Path into the record: keys separated by `.`, array indexes as numbers.
    #[serde(default)]
    field: Option<String>,
    /// Text with `{path}` placeholders, e.g. `"{first} {last}"`; whitespace is collapsed.
    #[serde(default)]
    template: Option<String>,
    /// A constant value.
    #[serde(default, rename = "const")]
    constant: Option<String>,
    /// Input date/time format for dates and timestamps (chrono syntax, or `rfc3339`, `unix`,
    /// `unix_ms`).
    #[serde(default)]
    format: Option<String>,
    /// Value used when the source value is missing or empty.
    #[serde(default)]
    default: Option<String>,
}

impl JsonSchema for FieldSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FieldSpec".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let table = generator.subschema_for::<FieldSpecTable>();
        schemars::json_schema!({
            "description": "Where a value comes from: a field path as shorthand, or a table with exactly one of `field`, `template`, `const`, plus optional `format` and `default`.",
            "anyOf": [
                { "type": "string", "description": "Path into the record: keys separated by `.`, array indexes as numbers." },
                table
            ]
        })
    }
}

// A string is shorthand for `{ field = "..." }`; a table is read strictly so an unknown key is
// reported by name (an untagged enum would only say "did not match any variant").
impl<'de> Deserialize<'de> for FieldSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FieldSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field path or a table with field, template or const")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<FieldSpec, E> {
                Ok(FieldSpec::path(s))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<FieldSpec, A::Error> {
                let t =
                    FieldSpecTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(FieldSpec {
                    field: t.field,
                    template: t.template,
                    constant: t.constant,
                    format: t.format,
                    default: t.default,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A manifest that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest {path}: {message}")]
    Parse { path: String, message: String },
    #[error("manifest {path}: {}", .errors.join("; "))]
    Invalid { path: String, errors: Vec<String> },
}

impl Manifest {
    /// Load a manifest file (TOML, or YAML by extension). Unknown keys are errors naming the key.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let display = path.display().to_string();
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => config::FileFormat::Yaml,
            _ => config::FileFormat::Toml,
        };
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError::Parse {
            path: display.clone(),
            message: e.to_string(),
        })?;
        Self::parse_str(&text, format).map_err(|message| ManifestError::Parse {
            path: display,
            message,
        })
    }

    /// Parse manifest text in the given format.
    pub fn parse_str(text: &str, format: config::FileFormat) -> Result<Manifest, String> {
        config::Config::builder()
            .add_source(config::File::from_str(text, format))
            .build()
            .and_then(|c| c.try_deserialize::<Manifest>())
            .map_err(|e| e.to_string())
    }
}

/// Generate the JSON Schema for manifests, with the `transport` table of every transport in
/// `registry`.
pub fn manifest_schema(registry: &crate::Registry) -> serde_json::Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let transport = registry.transport_schema(&mut generator);
    let mut root = generator.into_root_schema_for::<Manifest>();
    if let Some(props) = root
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    {
        props.insert("transport".into(), transport.to_value());
    }
    root.to_value()
}
