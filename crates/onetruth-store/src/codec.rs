//! The stored form of a record's canonical part (`source_records.record`): a compact binary
//! encoding instead of JSON.
//!
//! Serializing JSON was a sixth of the ingest reader's time (every string escaped byte by
//! byte) and JSON made the table's rows 60% larger: at a million records the binary form took
//! about 5% off a first load (`docs/performance.md`). Nothing outside this crate reads the
//! column; `show`, `export` and the API decode it into the model types.
//!
//! Layout (all lengths and counts are LEB128 varints, strings are length-prefixed UTF-8):
//!
//! ```text
//! record     = FORMAT_V1, count, identifier*, attributes, count, event*
//! identifier = tag, [kind name if custom], value, [original unless equal to value]
//!              tag: bits 0-1 kind (email, phone, external, custom), bit 2 linkable,
//!                   bit 3 original equals value
//! attributes = present (a bit per field, in declaration order), the present fields in order;
//!              addresses: count, address*; traits: their JSON text; flagged: count, flagged*
//! address    = present (a bit per field), the present strings
//! flagged    = kind tag, [kind name if custom], original, reason
//! event      = kind, occurred_at, count, identifier*, data (its JSON text, empty if none)
//! ```
//!
//! The encoding is deterministic (equal records encode to equal bytes), which the content hash
//! relies on. Never change it without a migration and a new format byte.

use std::collections::BTreeMap;

use onetruth_model::{Address, Attributes, Event, FlaggedValue, Identifier, IdentifierKind};
use serde::{Deserialize, Serialize};

/// The first byte of every encoded record. JSON rows (schema 7 and before) start with `{`.
const FORMAT_V1: u8 = 0x01;

/// The canonical part of a record as stored in `source_records.record`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredRecord {
    #[serde(default)]
    pub identifiers: Vec<Identifier>,
    #[serde(default)]
    pub attributes: Attributes,
    #[serde(default)]
    pub events: Vec<Event>,
}

impl StoredRecord {
    /// Append the record's stored form to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_V1);
        put_count(out, self.identifiers.len());
        for i in &self.identifiers {
            put_identifier(out, i);
        }
        put_attributes(out, &self.attributes);
        put_count(out, self.events.len());
        for e in &self.events {
            put_str(out, &e.kind);
            put_str(out, &e.occurred_at);
            put_count(out, e.identifiers.len());
            for i in &e.identifiers {
                put_identifier(out, i);
            }
            if e.data.is_empty() {
                put_count(out, 0);
            } else {
                // A map of JSON values with string keys always serializes.
                put_str(out, &serde_json::to_string(&e.data).unwrap_or_default());
            }
        }
    }

    /// The stored form, in a new buffer.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        // Sized for a typical record (150 – 250 bytes), so it is not copied while growing.
        let mut out = Vec::with_capacity(256);
        self.encode(&mut out);
        out
    }

    /// Read a stored form back. The error says what is wrong, never what the record holds.
    pub(crate) fn decode(bytes: &[u8]) -> Result<StoredRecord, String> {
        let mut r = Reader { bytes, at: 0 };
        match r.byte()? {
            FORMAT_V1 => {}
            other => return Err(format!("unknown record format 0x{other:02x}")),
        }
        let n = r.count()?;
        let mut identifiers = Vec::with_capacity(n);
        for _ in 0..n {
            identifiers.push(r.identifier()?);
        }
        let attributes = r.attributes()?;
        let n = r.count()?;
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            let kind = r.string()?;
            let occurred_at = r.string()?;
            let k = r.count()?;
            let mut ids = Vec::with_capacity(k);
            for _ in 0..k {
                ids.push(r.identifier()?);
            }
            let data = r.str()?;
            let data = match data.is_empty() {
                true => serde_json::Map::new(),
                false => serde_json::from_str(data)
                    .map_err(|e| format!("event data is not a JSON object: {e}"))?,
            };
            events.push(Event {
                kind,
                occurred_at,
                identifiers: ids,
                data,
            });
        }
        if r.at != bytes.len() {
            return Err(format!(
                "{} bytes left after the record",
                bytes.len() - r.at
            ));
        }
        Ok(StoredRecord {
            identifiers,
            attributes,
            events,
        })
    }

    /// The stored form of a record stored as JSON (schema 7 and before), for the migration.
    pub(crate) fn from_json(text: &str) -> Result<Vec<u8>, String> {
        let stored: StoredRecord =
            serde_json::from_str(text).map_err(|e| format!("stored record JSON: {e}"))?;
        Ok(stored.to_bytes())
    }
}

const KIND_EMAIL: u8 = 0;
const KIND_PHONE: u8 = 1;
const KIND_EXTERNAL: u8 = 2;
const KIND_CUSTOM: u8 = 3;
const LINKABLE: u8 = 1 << 2;
const ORIGINAL_IS_VALUE: u8 = 1 << 3;

fn put_count(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_count(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// The kind's bits of a tag, plus its name when custom (written by the caller after the tag).
fn kind_tag(kind: &IdentifierKind) -> (u8, Option<&str>) {
    match kind {
        IdentifierKind::Email => (KIND_EMAIL, None),
        IdentifierKind::Phone => (KIND_PHONE, None),
        IdentifierKind::External => (KIND_EXTERNAL, None),
        IdentifierKind::Custom(name) => (KIND_CUSTOM, Some(name)),
    }
}

fn put_identifier(out: &mut Vec<u8>, i: &Identifier) {
    let (mut tag, custom) = kind_tag(&i.kind);
    let same = i.original == i.value;
    if i.linkable {
        tag |= LINKABLE;
    }
    if same {
        tag |= ORIGINAL_IS_VALUE;
    }
    out.push(tag);
    if let Some(name) = custom {
        put_str(out, name);
    }
    put_str(out, &i.value);
    if !same {
        put_str(out, &i.original);
    }
}

/// Write the present ones of `fields` after a byte with a bit per present field.
fn put_optional(out: &mut Vec<u8>, fields: &[&Option<String>], mut present: u8) {
    for (bit, f) in fields.iter().enumerate() {
        if f.is_some() {
            present |= 1 << bit;
        }
    }
    out.push(present);
    for s in fields.iter().copied().flatten() {
        put_str(out, s);
    }
}

fn put_attributes(out: &mut Vec<u8>, a: &Attributes) {
    let fields = [
        &a.given_name,
        &a.family_name,
        &a.full_name,
        &a.birth_date,
        &a.company,
    ];
    let mut rest = 0u8;
    if !a.addresses.is_empty() {
        rest |= 1 << 5;
    }
    if !a.traits.is_empty() {
        rest |= 1 << 6;
    }
    if !a.flagged.is_empty() {
        rest |= 1 << 7;
    }
    put_optional(out, &fields, rest);
    if !a.addresses.is_empty() {
        put_count(out, a.addresses.len());
        for ad in &a.addresses {
            let fields = [
                &ad.line1,
                &ad.line2,
                &ad.city,
                &ad.region,
                &ad.postal_code,
                &ad.country,
            ];
            put_optional(out, &fields, 0);
        }
    }
    if !a.traits.is_empty() {
        // A map of JSON values with string keys always serializes.
        put_str(out, &serde_json::to_string(&a.traits).unwrap_or_default());
    }
    if !a.flagged.is_empty() {
        put_count(out, a.flagged.len());
        for f in &a.flagged {
            let (tag, custom) = kind_tag(&f.kind);
            out.push(tag);
            if let Some(name) = custom {
                put_str(out, name);
            }
            put_str(out, &f.original);
            put_str(out, &f.reason);
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| format!("record ends early, at byte {}", self.at))?;
        self.at += 1;
        Ok(b)
    }

    fn count(&mut self) -> Result<usize, String> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                // A count can never exceed the bytes left: a corrupt one must not make a
                // huge allocation.
                return match usize::try_from(n) {
                    Ok(n) if n <= self.bytes.len() - self.at => Ok(n),
                    _ => Err(format!(
                        "length {n} past the record's end, at byte {}",
                        self.at
                    )),
                };
            }
        }
        Err(format!("length too long, at byte {}", self.at))
    }

    fn str(&mut self) -> Result<&'a str, String> {
        let n = self.count()?;
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        std::str::from_utf8(s).map_err(|_| format!("invalid UTF-8 before byte {}", self.at))
    }

    fn string(&mut self) -> Result<String, String> {
        self.str().map(str::to_owned)
    }

    fn kind(&mut self, tag: u8) -> Result<IdentifierKind, String> {
        Ok(match tag & 0b11 {
            KIND_EMAIL => IdentifierKind::Email,
            KIND_PHONE => IdentifierKind::Phone,
            KIND_EXTERNAL => IdentifierKind::External,
            _ => IdentifierKind::Custom(self.string()?),
        })
    }

    fn identifier(&mut self) -> Result<Identifier, String> {
        let tag = self.byte()?;
        let kind = self.kind(tag)?;
        let value = self.string()?;
        let original = match tag & ORIGINAL_IS_VALUE != 0 {
            true => value.clone(),
            false => self.string()?,
        };
        Ok(Identifier {
            kind,
            value,
            original,
            linkable: tag & LINKABLE != 0,
        })
    }

    /// The present byte and the optional strings it marks, `N` of them.
    fn optional<const N: usize>(&mut self) -> Result<(u8, [Option<String>; N]), String> {
        let present = self.byte()?;
        let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
        for (bit, slot) in out.iter_mut().enumerate() {
            if present & (1 << bit) != 0 {
                *slot = Some(self.string()?);
            }
        }
        Ok((present, out))
    }

    fn attributes(&mut self) -> Result<Attributes, String> {
        let (present, [given_name, family_name, full_name, birth_date, company]) =
            self.optional::<5>()?;
        let mut addresses = Vec::new();
        if present & (1 << 5) != 0 {
            let n = self.count()?;
            addresses.reserve_exact(n);
            for _ in 0..n {
                let (_, [line1, line2, city, region, postal_code, country]) =
                    self.optional::<6>()?;
                addresses.push(Address {
                    line1,
                    line2,
                    city,
                    region,
                    postal_code,
                    country,
                });
            }
        }
        let mut traits = BTreeMap::new();
        if present & (1 << 6) != 0 {
            traits = serde_json::from_str(self.str()?)
                .map_err(|e| format!("traits are not a JSON object: {e}"))?;
        }
        let mut flagged = Vec::new();
        if present & (1 << 7) != 0 {
            let n = self.count()?;
            flagged.reserve_exact(n);
            for _ in 0..n {
                let tag = self.byte()?;
                flagged.push(FlaggedValue {
                    kind: self.kind(tag)?,
                    original: self.string()?,
                    reason: self.string()?,
                });
            }
        }
        Ok(Attributes {
            given_name,
            family_name,
            full_name,
            birth_date,
            company,
            addresses,
            traits,
            flagged,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(kind: IdentifierKind, value: &str, original: &str, linkable: bool) -> Identifier {
        Identifier {
            kind,
            value: value.into(),
            original: original.into(),
            linkable,
        }
    }

    /// Records covering every field, kind and flag, and the empty cases.
    fn samples() -> Vec<StoredRecord> {
        let full = StoredRecord {
            identifiers: vec![
                id(IdentifierKind::Email, "ana@x.org", "ana@x.org", true),
                id(
                    IdentifierKind::Email,
                    "test@test.com",
                    " TEST@test.com",
                    false,
                ),
                id(
                    IdentifierKind::Phone,
                    "+14155550100",
                    "(415) 555-0100",
                    true,
                ),
                id(
                    IdentifierKind::External,
                    "stripe:cus_1",
                    "stripe:cus_1",
                    true,
                ),
                id(IdentifierKind::Custom("loyalty".into()), "L-9", "l-9", true),
            ],
            attributes: Attributes {
                given_name: Some("Zoë".into()),
                family_name: Some("O'Brien \"Jr\"".into()),
                full_name: Some("Zoë O'Brien".into()),
                birth_date: Some("1990-02-03".into()),
                company: Some("Acme\nLtd".into()),
                addresses: vec![
                    Address {
                        line1: Some("1 Main St".into()),
                        city: Some("Boston".into()),
                        postal_code: Some("02116".into()),
                        country: Some("US".into()),
                        ..Address::default()
                    },
                    Address {
                        line2: Some("Flat 2".into()),
                        region: Some("MA".into()),
                        ..Address::default()
                    },
                ],
                traits: BTreeMap::from([
                    ("plan".to_string(), json!("pro")),
                    ("seats".to_string(), json!(12.5)),
                    ("tags".to_string(), json!(["a", {"b": null}])),
                ]),
                flagged: vec![
                    FlaggedValue {
                        kind: IdentifierKind::Phone,
                        original: "call me".into(),
                        reason: "unparseable phone".into(),
                    },
                    FlaggedValue {
                        kind: IdentifierKind::Custom("loyalty".into()),
                        original: "?".into(),
                        reason: "empty".into(),
                    },
                ],
            },
            events: vec![
                Event {
                    kind: "call".into(),
                    occurred_at: "2024-01-02T03:04:05Z".into(),
                    identifiers: vec![id(IdentifierKind::Phone, "+4930123456", "030 123456", true)],
                    data: json!({"duration_s": 61, "agent": "Bo"})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                },
                Event {
                    kind: "ticket".into(),
                    occurred_at: "2024-01-03".into(),
                    identifiers: vec![],
                    data: serde_json::Map::new(),
                },
            ],
        };
        // A name long enough for a two-byte length.
        let long = StoredRecord {
            attributes: Attributes {
                company: Some("x".repeat(300)),
                ..Attributes::default()
            },
            ..StoredRecord::default()
        };
        vec![StoredRecord::default(), full, long]
    }

    #[test]
    fn records_come_back_as_they_went_in() {
        for r in samples() {
            let bytes = r.to_bytes();
            assert_eq!(bytes[0], FORMAT_V1);
            assert_eq!(StoredRecord::decode(&bytes), Ok(r.clone()));
            // Deterministic: the content hash relies on it.
            assert_eq!(r.clone().to_bytes(), bytes);
        }
    }

    #[test]
    fn json_rows_convert_to_the_same_record() {
        for r in samples() {
            let json = serde_json::to_string(&r).expect("serializes");
            let bytes = StoredRecord::from_json(&json).expect("converts");
            assert_eq!(bytes, r.to_bytes());
        }
        assert!(StoredRecord::from_json("{\"identifiers\": 3}").is_err());
    }

    #[test]
    fn the_binary_form_is_smaller_than_json() {
        let r = &samples()[1];
        let json = serde_json::to_string(r).expect("serializes");
        assert!(
            r.to_bytes().len() * 10 < json.len() * 8,
            "{}",
            r.to_bytes().len()
        );
    }

    #[test]
    fn corrupt_bytes_give_an_error_not_a_panic() {
        let good = samples()[1].to_bytes();
        // Every truncation, and every single-byte change, either decodes or says why.
        for n in 0..good.len() {
            let e = StoredRecord::decode(&good[..n]).expect_err("truncated");
            assert!(!e.contains("Zo"), "{e}");
        }
        for i in 0..good.len() {
            for b in [0x00, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] = b;
                let _ = StoredRecord::decode(&bad);
            }
        }
        assert_eq!(
            StoredRecord::decode(b"{\"identifiers\":[]}"),
            Err("unknown record format 0x7b".to_string())
        );
        let mut extra = good.clone();
        extra.push(0);
        assert_eq!(
            StoredRecord::decode(&extra),
            Err("1 bytes left after the record".to_string())
        );
        // A length far past the end does not allocate it.
        assert!(
            StoredRecord::decode(&[FORMAT_V1, 0xff, 0xff, 0xff, 0xff, 0x0f])
                .expect_err("huge count")
                .contains("past the record's end")
        );
    }
}
