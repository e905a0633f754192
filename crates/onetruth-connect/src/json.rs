//! What the mapper reads a record through: a parsed object ([`serde_json::Map`], as CSV rows
//! and parsed bodies arrive) or a JSON text parsed on the spot into [`JsonRef`], which borrows
//! its strings from the text instead of copying each key and value into a tree of its own
//! (parsing a JSONL line that way takes half the instructions).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON value whose strings borrow from the text it was parsed from (unless they held
/// escapes). Objects are member lists: records have a handful of fields, and a scan beats a
/// tree for those.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonRef<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Cow<'a, str>),
    Array(Vec<JsonRef<'a>>),
    Object(Vec<(Cow<'a, str>, JsonRef<'a>)>),
}

impl<'a> JsonRef<'a> {
    /// Parse a JSON text (serde_json's grammar and errors).
    pub fn parse(text: &'a str) -> Result<JsonRef<'a>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let v = AnyValue.deserialize(&mut de)?;
        de.end()?;
        Ok(v)
    }
}

/// A JSON node the mapper can walk: an object's member, an array's element, a scalar's text.
pub(crate) trait Node: Sized {
    /// The member `key` of an object (the last one, if the key repeats, as in
    /// [`serde_json::Map`]).
    fn member(&self, key: &str) -> Option<&Self>;
    /// The elements of an array.
    fn elements(&self) -> Option<&[Self]>;
    /// A scalar as trimmed text; empty strings, null, arrays and objects are absent.
    fn scalar_text(&self) -> Option<String>;
    /// The node as an owned [`Value`] (traits and event data keep their JSON types).
    fn to_value(&self) -> Value;
}

/// The root of a record: an object of [`Node`]s.
pub(crate) trait Object {
    type Node: Node;
    fn member(&self, key: &str) -> Option<&Self::Node>;
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl Node for Value {
    fn member(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }

    fn elements(&self) -> Option<&[Value]> {
        self.as_array().map(Vec::as_slice)
    }

    fn scalar_text(&self) -> Option<String> {
        non_empty(match self {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return None,
        })
    }

    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl Object for Map<String, Value> {
    type Node = Value;
    fn member(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }
}

impl Node for JsonRef<'_> {
    fn member(&self, key: &str) -> Option<&Self> {
        match self {
            JsonRef::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|m| &m.1),
            _ => None,
        }
    }

    fn elements(&self) -> Option<&[Self]> {
        match self {
            JsonRef::Array(a) => Some(a),
            _ => None,
        }
    }

    fn scalar_text(&self) -> Option<String> {
        non_empty(match self {
            JsonRef::String(s) => s.trim().to_string(),
            JsonRef::Number(n) => n.to_string(),
            JsonRef::Bool(b) => b.to_string(),
            _ => return None,
        })
    }

    fn to_value(&self) -> Value {
        match self {
            JsonRef::Null => Value::Null,
            JsonRef::Bool(b) => Value::Bool(*b),
            JsonRef::Number(n) => Value::Number(n.clone()),
            JsonRef::String(s) => Value::String(s.to_string()),
            JsonRef::Array(a) => Value::Array(a.iter().map(Node::to_value).collect()),
            JsonRef::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

impl<'a> Object for JsonRef<'a> {
    type Node = JsonRef<'a>;
    fn member(&self, key: &str) -> Option<&JsonRef<'a>> {
        Node::member(self, key)
    }
}

/// Deserializes any JSON value into a [`JsonRef`], borrowing strings where it can.
struct AnyValue;

impl<'de> DeserializeSeed<'de> for AnyValue {
    type Value = JsonRef<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<JsonRef<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnyValue {
    type Value = JsonRef<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<JsonRef<'de>, E> {
        Ok(JsonRef::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<JsonRef<'de>, E> {
        Ok(JsonRef::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<JsonRef<'de>, E> {
        Ok(JsonRef::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<JsonRef<'de>, E> {
        Ok(JsonRef::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<JsonRef<'de>, E> {
        // serde_json never hands a visitor a non-finite float; were one to come, it is null,
        // as in serde_json::Value.
        Ok(serde_json::Number::from_f64(n).map_or(JsonRef::Null, JsonRef::Number))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<JsonRef<'de>, E> {
        Ok(JsonRef::String(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<JsonRef<'de>, E> {
        Ok(JsonRef::String(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<JsonRef<'de>, E> {
        Ok(JsonRef::String(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonRef<'de>, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(AnyValue)? {
            out.push(v);
        }
        Ok(JsonRef::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonRef<'de>, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(k) = map.next_key_seed(Key)? {
            let v = map.next_value_seed(AnyValue)?;
            out.push((k, v));
        }
        Ok(JsonRef::Object(out))
    }
}

/// An object key, borrowed where it can be.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The borrowed parse reads what serde_json::Value reads, escapes and all.
    #[test]
    fn parses_what_serde_json_parses() {
        for text in [
            r#"{"a":"x","b":1,"c":-2.5,"d":true,"e":null,"f":[1,"y",{"g":"z"}],"h":{"i":"\u00e9\n"}}"#,
            r#"{"k\"ey":"v\\al","n":18446744073709551615,"m":-9223372036854775808}"#,
            r#"  {"a":"1","a":"2"}  "#,
            "[]",
            "\"s\"",
        ] {
            let ours = JsonRef::parse(text).unwrap();
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours.to_value(), theirs, "{text}");
        }
    }

    #[test]
    fn a_repeated_key_reads_as_its_last_value() {
        let v = JsonRef::parse(r#"{"a":"1","a":"2"}"#).unwrap();
        assert_eq!(
            Object::member(&v, "a")
                .and_then(Node::scalar_text)
                .as_deref(),
            Some("2")
        );
    }

    #[test]
    fn bad_text_fails_with_serde_jsons_error() {
        for text in [r#"{"a":}"#, r#"{"a":1} trailing"#, "", r#"{"a":"\x"}"#] {
            let ours = JsonRef::parse(text).unwrap_err().to_string();
            let theirs = serde_json::from_str::<Value>(text).unwrap_err().to_string();
            assert_eq!(ours, theirs, "{text}");
        }
    }

    #[test]
    fn strings_without_escapes_borrow_from_the_text() {
        let v = JsonRef::parse(r#"{"plain":"abc","escaped":"a\"b"}"#).unwrap();
        assert!(matches!(
            Object::member(&v, "plain"),
            Some(JsonRef::String(Cow::Borrowed("abc")))
        ));
        assert!(
            matches!(Object::member(&v, "escaped"), Some(JsonRef::String(Cow::Owned(s))) if s == "a\"b")
        );
    }
}
