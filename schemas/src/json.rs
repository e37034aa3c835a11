//! A JSON tree that borrows its strings from the bytes it was read from, so that
//! validating a record does not copy it: the transform validates every event it
//! reads, and building a `serde_json::Value` per event was most of that cost.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// One JSON value. Object fields keep their input order, and a repeated name is
/// kept too (validation reports it; a `Value` would silently keep the last).
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Reads one JSON document; the tree borrows every string without escapes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        // One UTF-8 check of the whole text: read from bytes, serde_json checks every
        // string on its own, which cost a tenth of reading an event.
        let text = std::str::from_utf8(bytes).map_err(|_| de::Error::custom("not UTF-8"))?;
        serde_json::from_str(text)
    }

    /// The value of field `name` of an object (the first, if repeated).
    pub fn get(&self, name: &str) -> Option<&Json<'a>> {
        self.as_object()?
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    pub fn as_object(&self) -> Option<&[(Cow<'a, str>, Json<'a>)]> {
        match self {
            Json::Object(fields) => Some(fields),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<&Number> {
        match self {
            Json::Number(n) => Some(n),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        self.as_number()?.as_f64()
    }

    pub fn as_i64(&self) -> Option<i64> {
        self.as_number()?.as_i64()
    }

    /// An integer, also when written as an integral float (`7.0`: JSON Schema
    /// counts it as an integer).
    pub fn as_integer(&self) -> Option<i64> {
        self.as_i64().or_else(|| {
            self.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        })
    }

    /// A tree that owns its strings (for values kept beyond their input).
    pub fn into_owned(self) -> Json<'static> {
        match self {
            Json::Null => Json::Null,
            Json::Bool(b) => Json::Bool(b),
            Json::Number(n) => Json::Number(n),
            Json::String(s) => Json::String(Cow::Owned(s.into_owned())),
            Json::Array(items) => Json::Array(items.into_iter().map(Json::into_owned).collect()),
            Json::Object(fields) => Json::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect(),
            ),
        }
    }
}

impl<'a> From<&'a Value> for Json<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(Cow::Borrowed(s)),
            Value::Array(items) => Json::Array(items.iter().map(Json::from).collect()),
            Value::Object(fields) => Json::Object(
                fields
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Json::from(v)))
                    .collect(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        Json::deserialize(d)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Json<'de>, E> {
        // serde_json never hands over NaN or an infinity
        Ok(Number::from_f64(n).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s.to_string())))
    }

    fn visit_string<E>(self, s: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        while let Some(Key(key)) = map.next_key()? {
            fields.push((key, map.next_value()?));
        }
        Ok(Json::Object(fields))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_str(JsonVisitor)? {
            Json::String(s) => Ok(Key(s)),
            _ => Err(de::Error::custom("an object key must be a string")),
        }
    }
}

/// Typed reading of a tree (after validating it: the bytes are read only once).
/// An integral float (`7.0`, an integer to JSON Schema) is read as an integer.
impl<'de> de::Deserializer<'de> for &Json<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Json::Null => visitor.visit_unit(),
            Json::Bool(b) => visitor.visit_bool(*b),
            Json::Number(n) => match self.as_integer() {
                Some(i) if n.is_f64() => visitor.visit_i64(i),
                _ => n.deserialize_any(visitor),
            },
            Json::String(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            Json::String(Cow::Owned(s)) => visitor.visit_str(s),
            Json::Array(items) => {
                let mut seq = SeqDeserializer::new(items.iter());
                let read = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(read)
            }
            Json::Object(fields) => {
                let mut map = MapDeserializer::new(fields.iter().map(|(k, v)| (k.as_ref(), v)));
                let read = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(read)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Json::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self {
            Json::String(s) => visitor.visit_enum(s.as_ref().into_deserializer()),
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf unit unit_struct newtype_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, serde_json::Error> for &Json<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_plain_strings_and_owns_escaped_ones() {
        let bytes = br#"{"a": "plain", "b\u0041": "tab\there", "n": [1, -2, 2.5, null, true]}"#;
        let json = Json::parse(bytes).expect("valid JSON");
        assert!(matches!(
            json.get("a"),
            Some(Json::String(Cow::Borrowed("plain")))
        ));
        assert!(matches!(json.get("bA"), Some(Json::String(Cow::Owned(s))) if s == "tab\there"));
        let n = json.get("n").and_then(Json::as_array).expect("array");
        assert_eq!(n[0].as_i64(), Some(1));
        assert_eq!(n[1].as_i64(), Some(-2));
        assert_eq!(n[2].as_f64(), Some(2.5));
        assert_eq!(n[3], Json::Null);
        assert_eq!(n[4], Json::Bool(true));
    }

    #[test]
    fn reads_integral_floats_as_integers_only() {
        let json = Json::parse(b"[7.0, 7.5, 3, -2.0]").expect("valid JSON");
        let items = json.as_array().expect("array");
        assert_eq!(u32::deserialize(&items[0]).ok(), Some(7));
        assert!(u32::deserialize(&items[1]).is_err());
        assert_eq!(i8::deserialize(&items[3]).ok(), Some(-2));
        assert_eq!(
            Vec::<f64>::deserialize(&json).ok(),
            Some(vec![7.0, 7.5, 3.0, -2.0])
        );
        assert!(Vec::<u8>::deserialize(&json).is_err());
    }

    #[test]
    fn keeps_repeated_fields_in_input_order() {
        let json = Json::parse(br#"{"z": 1, "a": 2, "z": 3}"#).expect("valid JSON");
        let names: Vec<&str> = json
            .as_object()
            .expect("object")
            .iter()
            .map(|(k, _)| k.as_ref())
            .collect();
        assert_eq!(names, ["z", "a", "z"]);
        assert_eq!(json.get("z").and_then(Json::as_i64), Some(1));
    }

    #[test]
    fn equals_the_tree_of_the_same_value() {
        // (keys in order: a `Value` may sort them)
        let text = r#"{"big": 18446744073709551615, "f": 1e300, "x": [1, {"y": "é"}]}"#;
        let value: Value = serde_json::from_str(text).expect("valid JSON");
        assert_eq!(
            Json::parse(text.as_bytes()).expect("valid JSON"),
            Json::from(&value)
        );
    }
}
