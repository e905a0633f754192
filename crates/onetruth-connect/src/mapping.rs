//! The mapping engine: a validated [`Manifest`] applied to raw records.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use onetruth_model::{
    Address, Attributes, Event, Identifier, IdentifierKind, Normalizer, Op, PhoneRegion,
    SourceRecord,
};
use serde_json::{Map, Value};

use crate::json::{JsonRef, Node, Object};
use crate::manifest::*;
use crate::{RawBody, RawRecord, RecordMeta};

/// Why a raw record could not be mapped. Shown in quarantine; never contains the raw values of
/// identifiers, only field names and the rule that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MapError(pub String);

/// The canonical record a raw record maps to.
pub type Mapped = SourceRecord;

/// How a timestamp or date field is parsed.
#[derive(Debug, Clone)]
enum TimeFormat {
    Rfc3339,
    Unix,
    UnixMs,
    Pattern(String),
}

impl TimeFormat {
    fn parse(spec: Option<&str>) -> Result<TimeFormat, String> {
        Ok(match spec {
            None | Some("rfc3339") => TimeFormat::Rfc3339,
            Some("unix") => TimeFormat::Unix,
            Some("unix_ms") => TimeFormat::UnixMs,
            Some(p) => {
                // Reject format strings chrono cannot use, at load time rather than per record.
                let probe = chrono::format::StrftimeItems::new(p);
                if probe
                    .clone()
                    .any(|i| matches!(i, chrono::format::Item::Error))
                {
                    return Err(format!("invalid date format `{p}`"));
                }
                TimeFormat::Pattern(p.to_string())
            }
        })
    }

    fn timestamp(&self, s: &str) -> Option<DateTime<Utc>> {
        match self {
            TimeFormat::Rfc3339 => DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                        .ok()
                        .map(|n| n.and_utc())
                }),
            TimeFormat::Unix => s
                .parse::<i64>()
                .ok()
                .and_then(|n| Utc.timestamp_opt(n, 0).single()),
            TimeFormat::UnixMs => s
                .parse::<i64>()
                .ok()
                .and_then(|n| Utc.timestamp_millis_opt(n).single()),
            TimeFormat::Pattern(p) => DateTime::parse_from_str(s, p)
                .map(|d| d.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    NaiveDateTime::parse_from_str(s, p)
                        .ok()
                        .map(|n| n.and_utc())
                })
                .or_else(|| {
                    NaiveDate::parse_from_str(s, p)
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .map(|n| n.and_utc())
                }),
        }
    }

    fn date(&self, s: &str) -> Option<NaiveDate> {
        match self {
            TimeFormat::Rfc3339 => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .or_else(|| self.timestamp(s).map(|t| t.date_naive())),
            TimeFormat::Pattern(p) => NaiveDate::parse_from_str(s, p)
                .ok()
                .or_else(|| self.timestamp(s).map(|t| t.date_naive())),
            _ => self.timestamp(s).map(|t| t.date_naive()),
        }
    }
}

/// Paths starting with this read what the transport knows about a record
/// ([`RecordMeta::fields`]: a Kafka message's key, topic, partition, offset, timestamp and
/// headers), not the record itself.
const META_PREFIX: &str = "_meta.";

/// A field path, split once.
#[derive(Debug, Clone)]
struct FieldPath {
    /// As written (`contact.email`, `_meta.key`), for messages.
    written: String,
    /// Whether it reads the transport's metadata (`_meta.` stripped from `key` and
    /// `segments`).
    meta: bool,
    /// Tried as one key first (CSV headers and Kafka header names may contain dots).
    key: String,
    segments: Vec<String>,
}

impl FieldPath {
    fn new(written: &str) -> FieldPath {
        let (meta, key) = match written.strip_prefix(META_PREFIX) {
            Some(rest) => (true, rest),
            None => (false, written),
        };
        FieldPath {
            written: written.to_string(),
            meta,
            key: key.to_string(),
            segments: key.split('.').map(str::to_string).collect(),
        }
    }

    /// Why the path cannot be read, if it cannot.
    fn problem(&self) -> Option<&'static str> {
        if self.written.trim().is_empty() {
            Some("empty field path")
        } else if self.meta && self.key.trim().is_empty() {
            Some("`_meta.` needs a field name (`_meta.key`, `_meta.headers.NAME`...)")
        } else {
            None
        }
    }
}

/// A validated field spec.
#[derive(Debug, Clone)]
enum FieldSource {
    Path(FieldPath),
    Template(Vec<TemplatePart>),
    Const(String),
}

#[derive(Debug, Clone)]
enum TemplatePart {
    Text(String),
    Path(FieldPath),
}

#[derive(Debug, Clone)]
struct Field {
    value: FieldSource,
    default: Option<String>,
    format: Option<TimeFormat>,
    /// The name used in error messages (`attributes.birth_date`).
    name: String,
}

struct Compiled {
    id: Field,
    version: Option<(FieldPath, VersionKind)>,
    delete_when: Option<(FieldPath, String)>,
    identifiers: Vec<CompiledIdentifier>,
    given: Option<Field>,
    family: Option<Field>,
    full: Option<Field>,
    name: Option<(Field, NameStyle)>,
    birth_date: Option<Field>,
    company: Option<Field>,
    addresses: Vec<[Option<Field>; 6]>,
    traits: Vec<(String, Field)>,
    event: Option<CompiledEvent>,
}

enum VersionKind {
    Integer,
    Time(TimeFormat),
}

struct CompiledIdentifier {
    kind: IdentifierKind,
    value: Field,
    system: Option<String>,
    region: Option<PhoneRegion>,
    split: Option<String>,
}

struct CompiledEvent {
    kind: String,
    occurred_at: Field,
    data: Vec<(String, Field)>,
    describes_customer: bool,
}

/// A manifest validated against a [`Normalizer`], ready to map records.
pub struct Mapper {
    source: String,
    normalizer: Normalizer,
    compiled: Compiled,
}

fn compile_field(name: &str, spec: &FieldSpec, errors: &mut Vec<String>) -> Option<Field> {
    let set = [
        spec.field.is_some(),
        spec.template.is_some(),
        spec.constant.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        errors.push(format!(
            "{name}: give exactly one of `field`, `template`, `const`"
        ));
        return None;
    }
    let value = if let Some(f) = &spec.field {
        let path = FieldPath::new(f);
        if let Some(why) = path.problem() {
            errors.push(format!("{name}: {why}"));
            return None;
        }
        FieldSource::Path(path)
    } else if let Some(t) = &spec.template {
        match parse_template(t) {
            Ok(parts) => FieldSource::Template(parts),
            Err(e) => {
                errors.push(format!("{name}: {e}"));
                return None;
            }
        }
    } else {
        FieldSource::Const(spec.constant.clone().unwrap_or_default())
    };
    let format = match TimeFormat::parse(spec.format.as_deref()) {
        Ok(f) => spec.format.as_ref().map(|_| f),
        Err(e) => {
            errors.push(format!("{name}: {e}"));
            None
        }
    };
    Some(Field {
        value,
        default: spec.default.clone(),
        format,
        name: name.to_string(),
    })
}

fn parse_template(t: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(TemplatePart::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in template `{t}`"))?;
        let path = after[..close].trim();
        if path.is_empty() {
            return Err(format!("empty placeholder in template `{t}`"));
        }
        let path = FieldPath::new(path);
        if let Some(why) = path.problem() {
            return Err(format!("{why} in template `{t}`"));
        }
        parts.push(TemplatePart::Path(path));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Text(rest.to_string()));
    }
    Ok(parts)
}

impl Mapper {
    /// Validate a manifest; every problem is reported at once.
    pub fn new(manifest: &Manifest, normalizer: &Normalizer) -> Result<Mapper, Vec<String>> {
        let mut errors = Vec::new();
        let m = manifest;
        if m.source.is_empty()
            || !m
                .source
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            errors.push(format!(
                "source: `{}` must be lowercase letters, digits, `_` or `-`",
                m.source
            ));
        }
        let mut normalizer = normalizer.clone();
        if let Some(r) = &m.default_region {
            match r.parse::<PhoneRegion>() {
                Ok(region) => {
                    normalizer = normalizer.with_region(region);
                }
                Err(e) => errors.push(format!("default_region: {e}")),
            }
        }
        let id = compile_field("record.id", &m.record.id, &mut errors);
        let version = m.record.version.as_ref().and_then(|v| {
            let kind = match v.format.as_deref() {
                None | Some("integer") => VersionKind::Integer,
                other => match TimeFormat::parse(other) {
                    Ok(f) => VersionKind::Time(f),
                    Err(e) => {
                        errors.push(format!("record.version: {e}"));
                        return None;
                    }
                },
            };
            let path = FieldPath::new(&v.field);
            if let Some(why) = path.problem() {
                errors.push(format!("record.version: {why}"));
                return None;
            }
            Some((path, kind))
        });
        let delete_when = m.record.delete_when.as_ref().and_then(|d| {
            let path = FieldPath::new(&d.field);
            if let Some(why) = path.problem() {
                errors.push(format!("record.delete_when: {why}"));
                return None;
            }
            Some((path, d.equals.to_lowercase()))
        });

        let mut identifiers = Vec::new();
        for (i, spec) in m.identifiers.iter().enumerate() {
            let name = format!("identifiers[{i}]");
            let Some(kind) = IdentifierKind::parse(&spec.kind) else {
                errors.push(format!("{name}.kind: invalid kind `{}`", spec.kind));
                continue;
            };
            if !normalizer.is_declared(&kind) {
                errors.push(format!(
                    "{name}.kind: custom kind `{kind}` is not declared in config (identifiers.custom_kinds)"
                ));
            }
            if spec.system.is_some() != (kind == IdentifierKind::External) {
                errors.push(format!(
                    "{name}.system: required for kind `external` and only allowed there"
                ));
            }
            let region = match (&spec.region, &kind) {
                (None, _) => None,
                (Some(r), IdentifierKind::Phone) => match r.parse::<PhoneRegion>() {
                    Ok(r) => Some(r),
                    Err(e) => {
                        errors.push(format!("{name}.region: {e}"));
                        None
                    }
                },
                (Some(_), _) => {
                    errors.push(format!("{name}.region: only allowed for kind `phone`"));
                    None
                }
            };
            if let Some(value) = compile_field(&format!("{name}.value"), &spec.value, &mut errors) {
                identifiers.push(CompiledIdentifier {
                    kind,
                    value,
                    system: spec.system.clone(),
                    region,
                    split: spec.split.clone(),
                });
            }
        }

        let a = &m.attributes;
        let opt = |n: &str, f: &Option<FieldSpec>, errors: &mut Vec<String>| {
            f.as_ref()
                .and_then(|f| compile_field(&format!("attributes.{n}"), f, errors))
        };
        let given = opt("given_name", &a.given_name, &mut errors);
        let family = opt("family_name", &a.family_name, &mut errors);
        let full = opt("full_name", &a.full_name, &mut errors);
        let name = a.name.as_ref().and_then(|n| {
            compile_field("attributes.name.value", &n.value, &mut errors).map(|f| (f, n.style))
        });
        let birth_date = opt("birth_date", &a.birth_date, &mut errors);
        let company = opt("company", &a.company, &mut errors);
        let addresses = a
            .addresses
            .iter()
            .enumerate()
            .map(|(i, ad)| {
                let p = |n: &str, f: &Option<FieldSpec>, errors: &mut Vec<String>| {
                    f.as_ref().and_then(|f| {
                        compile_field(&format!("attributes.addresses[{i}].{n}"), f, errors)
                    })
                };
                [
                    p("line1", &ad.line1, &mut errors),
                    p("line2", &ad.line2, &mut errors),
                    p("city", &ad.city, &mut errors),
                    p("region", &ad.region, &mut errors),
                    p("postal_code", &ad.postal_code, &mut errors),
                    p("country", &ad.country, &mut errors),
                ]
            })
            .collect();
        let traits = a
            .traits
            .iter()
            .filter_map(|(k, f)| {
                compile_field(&format!("attributes.traits.{k}"), f, &mut errors)
                    .map(|f| (k.clone(), f))
            })
            .collect();
        let event = m.event.as_ref().and_then(|e| {
            if e.kind.trim().is_empty() {
                errors.push("event.kind: must not be empty".into());
            }
            let occurred_at = compile_field("event.occurred_at", &e.occurred_at, &mut errors)?;
            let data = e
                .data
                .iter()
                .filter_map(|(k, f)| {
                    compile_field(&format!("event.data.{k}"), f, &mut errors)
                        .map(|f| (k.clone(), f))
                })
                .collect();
            Some(CompiledEvent {
                kind: e.kind.clone(),
                occurred_at,
                data,
                describes_customer: e.describes_customer,
            })
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Mapper {
            source: m.source.clone(),
            normalizer,
            compiled: Compiled {
                // Present: compile_field only returns None after pushing an error.
                id: id.expect("record.id compiled when there are no errors"),
                version,
                delete_when,
                identifiers,
                given,
                family,
                full,
                name,
                birth_date,
                company,
                addresses,
                traits,
                event,
            },
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Map one raw record. `run_version` is the version used when the manifest names no
    /// version field (the time the run started, so a later run supersedes an earlier one).
    pub fn map(&self, raw: &RawRecord, run_version: i64) -> Result<Mapped, MapError> {
        match &raw.body {
            RawBody::Parsed(obj) => {
                let mut record = self.map_object(obj, raw.meta.as_deref(), run_version)?;
                record.raw = Value::Object(obj.clone());
                record.raw_text = raw.text.clone();
                Ok(record)
            }
            RawBody::Json(text) => {
                let mut record = self.map_text(text, raw.meta.as_deref(), run_version)?;
                record.raw_text = Some(text.clone());
                Ok(record)
            }
            RawBody::Malformed { reason, .. } => Err(MapError(reason.clone())),
        }
    }

    /// Like [`Mapper::map`], moving the payload into `raw` instead of copying it; on failure
    /// the raw record is handed back for quarantine (boxed: failures are rare, and the
    /// success path should not move a large `Result`).
    pub fn map_owned(
        &self,
        raw: RawRecord,
        run_version: i64,
    ) -> Result<Mapped, Box<(MapError, RawRecord)>> {
        let mapped = match &raw.body {
            RawBody::Parsed(obj) => self.map_object(obj, raw.meta.as_deref(), run_version),
            RawBody::Json(text) => self.map_text(text, raw.meta.as_deref(), run_version),
            RawBody::Malformed { reason, .. } => Err(MapError(reason.clone())),
        };
        match mapped {
            Ok(mut record) => {
                match raw.body {
                    RawBody::Parsed(obj) => {
                        record.raw = Value::Object(obj);
                        record.raw_text = raw.text;
                    }
                    // The text is the payload, kept as delivered.
                    RawBody::Json(text) => record.raw_text = Some(text),
                    RawBody::Malformed { .. } => {}
                }
                Ok(record)
            }
            Err(e) => Err(Box::new((e, raw))),
        }
    }

    /// Parse a JSON object's text (borrowing its strings) and map it.
    fn map_text(
        &self,
        text: &str,
        meta: Option<&RecordMeta>,
        run_version: i64,
    ) -> Result<Mapped, MapError> {
        match JsonRef::parse(text) {
            Ok(obj @ JsonRef::Object(_)) => self.map_object(&obj, meta, run_version),
            Ok(_) => Err(MapError("json line is not an object".into())),
            Err(e) => Err(MapError(format!("invalid json: {e}"))),
        }
    }

    /// Map a record's object; `meta` is what the transport knows about it (`_meta.` paths,
    /// a delete, a version).
    fn map_object<O: Object>(
        &self,
        obj: &O,
        meta: Option<&RecordMeta>,
        run_version: i64,
    ) -> Result<Mapped, MapError> {
        let c = &self.compiled;
        let rec = Rec {
            obj,
            meta: meta.map(|m| &m.fields),
        };
        let obj = &rec;
        let source_id = text(obj, &c.id)?
            .ok_or_else(|| MapError(format!("record.id: missing {}", describe(&c.id))))?;
        let version = match &c.version {
            None => meta.and_then(|m| m.version).unwrap_or(run_version),
            Some((path, kind)) => {
                let name = &path.written;
                let v = lookup(obj, path)
                    .and_then(|g| g.scalar_text())
                    .ok_or_else(|| MapError(format!("record.version: missing field `{name}`")))?;
                match kind {
                    VersionKind::Integer => v.parse::<i64>().map_err(|_| {
                        MapError(format!("record.version: field `{name}` is not an integer"))
                    })?,
                    VersionKind::Time(f) => f
                        .timestamp(&v)
                        .map(|t| t.timestamp_micros())
                        .ok_or_else(|| {
                            MapError(format!(
                                "record.version: field `{name}` is not a valid timestamp"
                            ))
                        })?,
                }
            }
        };
        let op = match &c.delete_when {
            // The transport says so (a Debezium delete).
            _ if meta.is_some_and(|m| m.delete) => Op::Delete,
            Some((path, equals)) => {
                let hit = lookup(obj, path)
                    .and_then(|g| g.scalar_text())
                    .is_some_and(|v| v.to_lowercase() == *equals);
                if hit { Op::Delete } else { Op::Upsert }
            }
            None => Op::Upsert,
        };

        let mut attributes = Attributes::default();
        let mut identifiers = Vec::with_capacity(c.identifiers.len());
        for spec in &c.identifiers {
            for v in values(obj, &spec.value, spec.split.as_deref())? {
                let v = match &spec.system {
                    Some(system) => format!("{system}:{v}"),
                    None => v,
                };
                match self
                    .normalizer
                    .normalize_or_flag(&spec.kind, &v, spec.region)
                {
                    Ok(Some(id)) => {
                        if !identifiers
                            .iter()
                            .any(|i: &Identifier| i.kind == id.kind && i.value == id.value)
                        {
                            identifiers.push(id);
                        }
                    }
                    Ok(None) => {}
                    Err(flag) => attributes.flagged.push(flag),
                }
            }
        }

        attributes.given_name = opt_text(obj, &c.given)?;
        attributes.family_name = opt_text(obj, &c.family)?;
        attributes.full_name = opt_text(obj, &c.full)?;
        if let Some((field, style)) = &c.name
            && let Some(full) = text(obj, field)?
        {
            let (given, family) = split_name(&full, *style);
            if attributes.given_name.is_none() {
                attributes.given_name = given;
            }
            if attributes.family_name.is_none() {
                attributes.family_name = family;
            }
            if attributes.full_name.is_none() {
                attributes.full_name =
                    Some(match (&attributes.given_name, &attributes.family_name) {
                        (Some(g), Some(f)) => [g.as_str(), " ", f.as_str()].concat(),
                        _ => full,
                    });
            }
        }
        if attributes.full_name.is_none()
            && let (Some(g), Some(f)) = (&attributes.given_name, &attributes.family_name)
        {
            // One exact allocation; format! goes through fmt and grows its buffer.
            attributes.full_name = Some([g.as_str(), " ", f.as_str()].concat());
        }
        if let Some(f) = &c.birth_date
            && let Some(v) = text(obj, f)?
        {
            let fmt = f.format.clone().unwrap_or(TimeFormat::Rfc3339);
            let d = fmt.date(&v).ok_or_else(|| {
                MapError(format!("{}: not a valid date in {}", f.name, describe(f)))
            })?;
            attributes.birth_date = Some(d.format("%Y-%m-%d").to_string());
        }
        attributes.company = opt_text(obj, &c.company)?;
        for parts in &c.addresses {
            let get = |i: usize| opt_text(obj, &parts[i]);
            let address = Address {
                line1: get(0)?,
                line2: get(1)?,
                city: get(2)?,
                region: get(3)?,
                postal_code: get(4)?,
                country: get(5)?,
            };
            if !address.is_empty() {
                attributes.addresses.push(address);
            }
        }
        for (name, f) in &c.traits {
            if let Some(v) = typed(obj, f)? {
                attributes.traits.insert(name.clone(), v);
            }
        }

        let mut events = Vec::new();
        if let Some(e) = &c.event {
            let at = text(obj, &e.occurred_at)?.ok_or_else(|| {
                MapError(format!(
                    "event.occurred_at: missing {}",
                    describe(&e.occurred_at)
                ))
            })?;
            let fmt = e.occurred_at.format.clone().unwrap_or(TimeFormat::Rfc3339);
            let at = fmt.timestamp(&at).ok_or_else(|| {
                MapError(format!(
                    "event.occurred_at: not a valid timestamp in {}",
                    describe(&e.occurred_at)
                ))
            })?;
            let mut data = Map::new();
            for (name, f) in &e.data {
                if let Some(v) = typed(obj, f)? {
                    data.insert(name.clone(), v);
                }
            }
            let event_identifiers = if e.describes_customer {
                Vec::new()
            } else {
                std::mem::take(&mut identifiers)
            };
            events.push(Event {
                kind: e.kind.clone(),
                occurred_at: at.to_rfc3339_opts(SecondsFormat::Secs, true),
                identifiers: event_identifiers,
                data,
            });
            if !e.describes_customer {
                attributes = Attributes {
                    flagged: attributes.flagged,
                    ..Default::default()
                };
            }
        }

        Ok(SourceRecord {
            source: self.source.clone(),
            source_id,
            version,
            op,
            identifiers,
            attributes,
            events,
            raw: Value::Null,
            raw_text: None,
        })
    }
}

fn describe(f: &Field) -> String {
    match &f.value {
        FieldSource::Path(p) => format!("field `{}`", p.written),
        FieldSource::Template(_) => "template".to_string(),
        FieldSource::Const(_) => "constant".to_string(),
    }
}

/// A record as the mapper reads it: its object, and what the transport knows about it.
struct Rec<'a, O> {
    obj: &'a O,
    meta: Option<&'a Map<String, Value>>,
}

/// Look a path up: in the transport's metadata for a `_meta.` path, else in the record; the
/// whole dotted string as one key first (CSV headers may contain dots), then segment by segment
/// through objects and arrays.
fn lookup<'a, O: Object>(rec: &Rec<'a, O>, path: &FieldPath) -> Option<Got<'a, O::Node>> {
    if path.meta {
        return meta_lookup(rec.meta?, path).map(Got::Meta);
    }
    let obj = rec.obj;
    if !path.key.is_empty()
        && let Some(v) = obj.member(&path.key)
    {
        return Some(Got::Node(v));
    }
    let (first, rest) = path.segments.split_first()?;
    let mut cur = obj.member(first)?;
    for seg in rest {
        cur = match cur.member(seg) {
            Some(m) => m,
            None => cur.elements()?.get(seg.parse::<usize>().ok()?)?,
        };
    }
    Some(Got::Node(cur))
}

/// A `_meta.` path in the transport's metadata. At every level the rest of the path is tried
/// as one key first: header names may contain dots (`_meta.headers.trace.id`).
fn meta_lookup<'a>(fields: &'a Map<String, Value>, path: &FieldPath) -> Option<&'a Value> {
    if let Some(v) = fields.get(&path.key) {
        return Some(v);
    }
    let (first, rest) = path.segments.split_first()?;
    let mut cur = fields.get(first)?;
    for (i, seg) in rest.iter().enumerate() {
        if let Value::Object(o) = cur
            && i + 1 < rest.len()
            && let Some(v) = o.get(&rest[i..].join("."))
        {
            return Some(v);
        }
        cur = match cur {
            Value::Object(o) => o.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// What a field reads: a node of the record, a value of the transport's metadata, or text the
/// manifest made (a constant, a template).
enum Got<'a, N> {
    Node(&'a N),
    Meta(&'a Value),
    Text(String),
}

impl<N: Node> Got<'_, N> {
    /// As trimmed text; empty and null are absent.
    fn scalar_text(&self) -> Option<String> {
        match self {
            Got::Node(n) => n.scalar_text(),
            Got::Meta(v) => v.scalar_text(),
            Got::Text(t) => Some(t.trim().to_string()).filter(|t| !t.is_empty()),
        }
    }
}

fn raw_value<'a, O: Object>(
    obj: &Rec<'a, O>,
    f: &Field,
) -> Result<Option<Got<'a, O::Node>>, MapError> {
    Ok(match &f.value {
        FieldSource::Path(path) => lookup(obj, path),
        FieldSource::Const(c) => Some(Got::Text(c.clone())),
        FieldSource::Template(parts) => {
            let mut out = String::new();
            // A template with placeholders but no value for any of them is absent (not its
            // literal text: `{a}-{b}` must not make every such record's id `-`).
            let mut filled = !parts.iter().any(|p| matches!(p, TemplatePart::Path(..)));
            for p in parts {
                match p {
                    TemplatePart::Text(t) => out.push_str(t),
                    TemplatePart::Path(path) => {
                        if let Some(v) = lookup(obj, path).and_then(|g| g.scalar_text()) {
                            out.push_str(&v);
                            filled = true;
                        }
                    }
                }
            }
            let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
            (filled && !collapsed.is_empty()).then_some(Got::Text(collapsed))
        }
    })
}

fn text<O: Object>(obj: &Rec<'_, O>, f: &Field) -> Result<Option<String>, MapError> {
    let v = raw_value(obj, f)?.and_then(|v| v.scalar_text());
    Ok(v.or_else(|| f.default.clone()))
}

fn opt_text<O: Object>(obj: &Rec<'_, O>, f: &Option<Field>) -> Result<Option<String>, MapError> {
    match f {
        Some(f) => text(obj, f),
        None => Ok(None),
    }
}

/// A value for traits and event data: numbers and booleans keep their JSON type; strings are
/// trimmed; a `format` turns the value into an ISO timestamp.
fn typed<O: Object>(obj: &Rec<'_, O>, f: &Field) -> Result<Option<Value>, MapError> {
    let Some(v) = raw_value(obj, f)? else {
        return Ok(f.default.clone().map(Value::String));
    };
    if let Some(fmt) = &f.format {
        let Some(s) = v.scalar_text() else {
            return Ok(None);
        };
        let t = fmt.timestamp(&s).ok_or_else(|| {
            MapError(format!(
                "{}: not a valid timestamp in {}",
                f.name,
                describe(f)
            ))
        })?;
        return Ok(Some(Value::String(
            t.to_rfc3339_opts(SecondsFormat::Secs, true),
        )));
    }
    let v = match v {
        Got::Node(n) => n.to_value(),
        Got::Meta(v) => v.clone(),
        Got::Text(t) => Value::String(t),
    };
    Ok(match v {
        Value::String(s) if s.trim().is_empty() => f.default.clone().map(Value::String),
        Value::String(s) => Some(Value::String(s.trim().to_string())),
        Value::Null => f.default.clone().map(Value::String),
        other => Some(other),
    })
}

/// All values of an identifier field: arrays are split, and strings on `split`.
fn values<O: Object>(
    obj: &Rec<'_, O>,
    f: &Field,
    split: Option<&str>,
) -> Result<Vec<String>, MapError> {
    let Some(v) = raw_value(obj, f)? else {
        return Ok(f.default.clone().into_iter().collect());
    };
    let items: Vec<String> = match &v {
        Got::Node(n) => match n.elements() {
            Some(a) => a.iter().filter_map(Node::scalar_text).collect(),
            None => n.scalar_text().into_iter().collect(),
        },
        Got::Meta(v) => match v.elements() {
            Some(a) => a.iter().filter_map(Node::scalar_text).collect(),
            None => v.scalar_text().into_iter().collect(),
        },
        Got::Text(_) => v.scalar_text().into_iter().collect(),
    };
    let items: Vec<String> = match split {
        Some(sep) => items
            .iter()
            .flat_map(|s| s.split(sep))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => items,
    };
    // Empty counts as missing, as for every other field.
    Ok(if items.is_empty() {
        f.default.clone().into_iter().collect()
    } else {
        items
    })
}

/// Split a full name into (given, family).
pub(crate) fn split_name(full: &str, style: NameStyle) -> (Option<String>, Option<String>) {
    let clean = |s: &str| {
        let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        (!s.is_empty()).then_some(s)
    };
    let last_first = match style {
        NameStyle::LastFirst => true,
        NameStyle::FirstLast => false,
        NameStyle::Auto => full.contains(','),
    };
    if last_first {
        match full.split_once(',') {
            Some((last, first)) => (clean(first), clean(last)),
            None => match full.trim().rsplit_once(' ') {
                // "Smith Jane" written without the comma.
                Some((last, first)) => (clean(first), clean(last)),
                None => (None, clean(full)),
            },
        }
    } else {
        match full.trim().rsplit_once(' ') {
            Some((first, last)) => (clean(first), clean(last)),
            None => (clean(full), None),
        }
    }
}
