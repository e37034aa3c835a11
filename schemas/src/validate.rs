//! A validator for the subset of JSON Schema (draft 2020-12) that techmon's schema
//! files use. Each schema is checked once, when the registry is built, so a schema
//! can never carry a keyword that would silently go unenforced.
//!
//! Error reasons never repeat the offending value: records carry personal data,
//! and reasons end up in HTTP answers and logs.

use std::borrow::Cow;

use serde_json::Value;

use crate::json::Json;

mod checked;
pub(crate) use checked::Checked;

/// One problem with one field of a record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON Pointer to the field (`/payload/school_brin6`, `/payload/worlds/2`).
    pub field: String,
    /// What is wrong, without the value itself.
    pub reason: String,
    /// Which kind of problem, for counting refusals and naming dead letters.
    #[serde(skip)]
    pub problem: Problem,
}

/// The kinds of problem a record can have, from the whole record down to one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Problem {
    /// The record is not one JSON object.
    NotAnEvent,
    /// `event_type` is missing or names no kind.
    UnknownKind,
    /// `schema_version` is missing, no number, or no version of the kind.
    UnknownVersion,
    /// A field of a known kind and version is wrong.
    #[default]
    Field,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::of(Problem::Field, field, reason)
    }

    pub fn of(problem: Problem, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
            problem,
        }
    }
}

/// Keywords the validator enforces, and annotations it accepts and ignores.
const ENFORCED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "const",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
];
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "title",
    "description",
    "examples",
    "default",
];

/// String formats techmon knows. Anything else in a schema is a schema error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Uuid,
    Date,
    DateTime,
    Brin6,
    Postcode,
    Email,
    SchoolYear,
}

impl Format {
    const ALL: [(&'static str, Format); 7] = [
        ("uuid", Format::Uuid),
        ("date", Format::Date),
        ("date-time", Format::DateTime),
        ("brin6", Format::Brin6),
        ("postcode", Format::Postcode),
        ("email", Format::Email),
        ("school-year", Format::SchoolYear),
    ];

    fn named(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("", |(n, _)| n)
    }

    /// On failure, a description of what was expected.
    fn check(self, s: &str) -> Result<(), &'static str> {
        let (ok, expected) = match self {
            Format::Uuid => (
                uuid::Uuid::try_parse(s).is_ok(),
                "a UUID such as 0b6f8c1e-3f0a-4c55-9b1e-2a7d6c9e4f10",
            ),
            Format::Date => (is_date(s), "a date as YYYY-MM-DD"),
            Format::DateTime => (
                crate::time::is_rfc3339(s),
                "an RFC 3339 time such as 2024-10-03T09:30:00+02:00",
            ),
            Format::Brin6 => (
                is_brin6(s),
                "a BRIN6 code: four characters of BRIN (2 digits, 2 letters) and a two-digit vestiging, such as 12AB00",
            ),
            Format::Postcode => (is_postcode(s), "a Dutch postcode such as 7411 AB or 7411AB"),
            Format::Email => (is_email(s), "an e-mail address"),
            Format::SchoolYear => (
                crate::codes::SchoolYear::parse(s).is_some(),
                "a school year such as 2024/25",
            ),
        };
        if ok { Ok(()) } else { Err(expected) }
    }
}

/// The most properties one object schema may have (a record's fields are checked
/// off in a 128-bit set).
const MAX_PROPERTIES: usize = 128;

/// Checks that a schema uses only supported keywords and formats.
pub fn check_schema(schema: &Value, path: &str) -> Result<(), String> {
    let Some(obj) = schema.as_object() else {
        return Err(format!("{path}: a schema must be an object"));
    };
    for (key, value) in obj {
        if ANNOTATIONS.contains(&key.as_str()) {
            continue;
        }
        if !ENFORCED.contains(&key.as_str()) {
            return Err(format!("{path}: unsupported keyword `{key}`"));
        }
        match key.as_str() {
            "properties" => {
                let props = value
                    .as_object()
                    .ok_or(format!("{path}: properties must be an object"))?;
                if props.len() > MAX_PROPERTIES {
                    return Err(format!(
                        "{path}: more than {MAX_PROPERTIES} properties in one object"
                    ));
                }
                for (name, sub) in props {
                    check_schema(sub, &format!("{path}/properties/{name}"))?;
                }
            }
            "items" => check_schema(value, &format!("{path}/items"))?,
            "additionalProperties" if value != &Value::Bool(false) => {
                return Err(format!("{path}: additionalProperties must be false"));
            }
            "format" => {
                let f = value.as_str().unwrap_or_default();
                if Format::named(f).is_none() {
                    return Err(format!("{path}: unknown format `{f}`"));
                }
            }
            "required" => {
                let props = obj.get("properties").and_then(Value::as_object);
                for name in value.as_array().into_iter().flatten() {
                    let name = name.as_str().unwrap_or_default();
                    if !props.is_some_and(|p| p.contains_key(name)) {
                        return Err(format!(
                            "{path}: required `{name}` is not among the properties"
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Validates `instance` against `schema`, returning every problem found. Compiles
/// the schema first; to validate many records, compile once with [`Schema::compile`].
pub fn validate(schema: &Value, instance: &Value) -> Vec<FieldError> {
    match Schema::compile(schema) {
        Ok(schema) => schema.validate(&Json::from(instance)),
        Err(reason) => vec![FieldError::of(
            Problem::NotAnEvent,
            "/",
            format!("invalid schema: {reason}"),
        )],
    }
}

/// A checked schema in a form that validates without looking keywords up: records
/// are validated on the ingest hot path.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// Bits of [`TYPES`]; none for any type.
    types: u8,
    /// The types as listed in messages.
    types_text: String,
    constant: Option<Json<'static>>,
    /// The constant as written in messages.
    constant_text: String,
    options: Option<Vec<Json<'static>>>,
    /// The allowed values as listed in messages.
    options_text: String,
    format: Option<Format>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    properties: Vec<(String, Schema)>,
    /// Positions in `properties`, plus one, at the [`name_hash`] of their name,
    /// the next free place on a collision (0: free). At most a quarter are taken,
    /// so a lookup stops soon. Every field of every event is looked up.
    slots: Vec<u8>,
    /// Positions in `properties`.
    required: Vec<usize>,
    closed: bool,
    items: Option<Box<Schema>>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    unique_items: bool,
}

/// JSON Schema's types; a type's bit in [`Schema::types`] is `1 << position`.
const TYPES: [&str; 7] = [
    "null", "boolean", "integer", "number", "string", "array", "object",
];

/// The bits of the types `value` matches: an integer is also a number, and 7.0 is
/// an integer in JSON Schema.
fn type_bits(value: &Json) -> u8 {
    match value {
        Json::Null => 1,
        Json::Bool(_) => 1 << 1,
        Json::Number(_) if value.as_integer().is_some() => (1 << 2) | (1 << 3),
        Json::Number(_) => 1 << 3,
        Json::String(_) => 1 << 4,
        Json::Array(_) => 1 << 5,
        Json::Object(_) => 1 << 6,
    }
}

impl Schema {
    /// Checks (see [`check_schema`]) and compiles a schema.
    pub fn compile(schema: &Value) -> Result<Self, String> {
        check_schema(schema, "")?;
        Ok(Self::compile_checked(schema))
    }

    fn compile_checked(schema: &Value) -> Self {
        let get = |k: &str| schema.get(k);
        let named: Vec<&str> = match get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        // Positions in TYPES.
        let known: Vec<usize> = named
            .into_iter()
            .filter_map(|t| TYPES.iter().position(|known| *known == t))
            .collect();
        let owned = |v: &Value| Json::from(v).into_owned();
        let options = get("enum").and_then(Value::as_array);
        let options_text = options
            .map(|o| {
                o.iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let properties: Vec<(String, Schema)> = get("properties")
            .and_then(Value::as_object)
            .map(|p| {
                p.iter()
                    .map(|(k, v)| (k.clone(), Self::compile_checked(v)))
                    .collect()
            })
            .unwrap_or_default();
        let slots = slots(&properties);
        let required = get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|name| properties.iter().position(|(p, _)| p == name))
            .collect();
        Self {
            types: known.iter().fold(0, |bits, t| bits | (1 << t)),
            types_text: known
                .iter()
                .map(|t| TYPES[*t])
                .collect::<Vec<_>>()
                .join(" or "),
            constant: get("const").map(owned),
            constant_text: get("const").map(Value::to_string).unwrap_or_default(),
            options: options.map(|o| o.iter().map(owned).collect()),
            options_text,
            format: get("format")
                .and_then(Value::as_str)
                .and_then(Format::named),
            minimum: get("minimum").and_then(Value::as_f64),
            maximum: get("maximum").and_then(Value::as_f64),
            min_length: get("minLength").and_then(Value::as_u64),
            max_length: get("maxLength").and_then(Value::as_u64),
            properties,
            slots,
            required,
            closed: get("additionalProperties") == Some(&Value::Bool(false)),
            items: get("items").map(|i| Box::new(Self::compile_checked(i))),
            min_items: get("minItems").and_then(Value::as_u64),
            max_items: get("maxItems").and_then(Value::as_u64),
            unique_items: get("uniqueItems") == Some(&Value::Bool(true)),
        }
    }

    /// Validates `instance`, returning every problem found.
    pub fn validate(&self, instance: &Json) -> Vec<FieldError> {
        let mut errors = Vec::new();
        self.validate_at(instance, &mut Vec::new(), &mut errors);
        errors
    }

    /// Whether a value that is not an array or object matches (by the checks that
    /// list its problems, so the two never disagree).
    fn accepts_scalar(&self, value: &Json) -> bool {
        let mut errors = Vec::new();
        self.validate_at(value, &mut Vec::new(), &mut errors);
        errors.is_empty()
    }

    fn property(&self, name: &str) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut slot = name_hash(name) & mask;
        loop {
            let position = usize::from(self.slots[slot]).checked_sub(1)?;
            if self.properties[position].0 == name {
                return Some(position);
            }
            slot = (slot + 1) & mask;
        }
    }

    fn validate_at<'j>(
        &self,
        instance: &'j Json,
        path: &mut Vec<Segment<'j>>,
        errors: &mut Vec<FieldError>,
    ) {
        let mut fail = |reason: String| errors.push(FieldError::new(pointer(path), reason));
        if self.types != 0 && self.types & type_bits(instance) == 0 {
            fail(format!(
                "expected {}, found {}",
                self.types_text,
                type_name(instance)
            ));
            return;
        }
        if let Some(c) = &self.constant
            && !json_equal(c, instance)
        {
            fail(format!("must be {}", self.constant_text));
        }
        if let Some(options) = &self.options
            && !options.iter().any(|o| json_equal(o, instance))
        {
            fail(format!(
                "not one of the allowed values: {}",
                self.options_text
            ));
        }
        match instance {
            Json::Object(fields) => self.validate_object(fields, path, errors),
            Json::Array(items) => self.validate_array(items, path, errors),
            Json::String(s) => self.validate_string(s, path, errors),
            Json::Number(n) => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if let Some(min) = self.minimum.filter(|min| f.is_nan() || f < *min) {
                    fail(format!("must be at least {min}"));
                }
                if let Some(max) = self.maximum.filter(|max| f.is_nan() || f > *max) {
                    fail(format!("must be at most {max}"));
                }
            }
            _ => {}
        }
    }

    fn validate_object<'j>(
        &self,
        fields: &'j [(Cow<str>, Json)],
        path: &mut Vec<Segment<'j>>,
        errors: &mut Vec<FieldError>,
    ) {
        // Missing required fields are reported first, once the fields are known.
        let first_field_error = errors.len();
        let mut present = 0u128;
        for (i, (name, value)) in fields.iter().enumerate() {
            let at = || pointer_to(path, Segment::Name(name));
            let property = self.property(name);
            let repeated = match property {
                Some(p) => present & (1 << p) != 0,
                None => fields[..i].iter().any(|(k, _)| k == name),
            };
            if repeated {
                // Readers disagree on which copy counts: refuse the ambiguity.
                errors.push(FieldError::new(at(), "field appears more than once"));
                continue;
            }
            match property {
                Some(p) => {
                    present |= 1 << p;
                    path.push(Segment::Name(name));
                    self.properties[p].1.validate_at(value, path, errors);
                    path.pop();
                }
                None if self.closed => errors.push(FieldError::new(at(), "unknown field")),
                None => {}
            }
        }
        let missing = self
            .required
            .iter()
            .filter(|p| present & (1 << **p) == 0)
            .map(|p| {
                FieldError::new(
                    pointer_to(path, Segment::Name(&self.properties[*p].0)),
                    "required field is missing",
                )
            });
        errors.splice(first_field_error..first_field_error, missing);
    }

    fn validate_array<'j>(
        &self,
        items: &'j [Json],
        path: &mut Vec<Segment<'j>>,
        errors: &mut Vec<FieldError>,
    ) {
        let count = items.len() as u64;
        if let Some(min) = self.min_items.filter(|min| count < *min) {
            errors.push(FieldError::new(
                pointer(path),
                format!("must have at least {min} items"),
            ));
        }
        if let Some(max) = self.max_items.filter(|max| count > *max) {
            errors.push(FieldError::new(
                pointer(path),
                format!("must have at most {max} items"),
            ));
        }
        if self.unique_items
            && let Some((i, _)) = items
                .iter()
                .enumerate()
                .find(|(i, v)| items[..*i].iter().any(|w| json_equal(w, v)))
        {
            errors.push(FieldError::new(
                pointer_to(path, Segment::Index(i)),
                "repeats an earlier item",
            ));
        }
        if let Some(item_schema) = &self.items {
            for (i, item) in items.iter().enumerate() {
                path.push(Segment::Index(i));
                item_schema.validate_at(item, path, errors);
                path.pop();
            }
        }
    }

    fn validate_string(&self, s: &str, path: &[Segment], errors: &mut Vec<FieldError>) {
        if self.min_length.is_some() || self.max_length.is_some() {
            let chars = s.chars().count() as u64;
            if let Some(min) = self.min_length.filter(|min| chars < *min) {
                errors.push(FieldError::new(
                    pointer(path),
                    format!("must be at least {min} characters"),
                ));
            }
            if let Some(max) = self.max_length.filter(|max| chars > *max) {
                errors.push(FieldError::new(
                    pointer(path),
                    format!("must be at most {max} characters"),
                ));
            }
        }
        if let Some(format) = self.format
            && let Err(expected) = format.check(s)
        {
            errors.push(FieldError::new(
                pointer(path),
                format!("not a valid {}: expected {expected}", format.name()),
            ));
        }
    }
}

/// One step of the way to a field; the JSON Pointer is written only for a problem.
#[derive(Clone, Copy)]
enum Segment<'j> {
    Name(&'j str),
    Index(usize),
}

/// The JSON Pointer (RFC 6901) of `path`; `/` for the whole record.
fn pointer(path: &[Segment]) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    let mut text = String::new();
    for segment in path {
        text.push('/');
        match segment {
            Segment::Name(name) if name.contains(['~', '/']) => {
                text.push_str(&name.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Name(name) => text.push_str(name),
            Segment::Index(i) => text.push_str(&i.to_string()),
        }
    }
    text
}

fn pointer_to(path: &[Segment], last: Segment) -> String {
    let mut full = path.to_vec();
    full.push(last);
    pointer(&full)
}

fn type_name(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

/// A hash of a property name from its length and the bytes at its ends: quick,
/// and enough to tell apart the names of one object.
fn name_hash(name: &str) -> usize {
    let bytes = name.as_bytes();
    let n = bytes.len();
    let at = |i: usize| bytes.get(i).copied().map_or(0, u32::from);
    let mixed = n as u32
        ^ at(0) << 8
        ^ at(1) << 16
        ^ at(n.wrapping_sub(1)) << 24
        ^ at(n.wrapping_sub(2)) << 4;
    (mixed.wrapping_mul(0x9E37_79B9) >> 8) as usize
}

/// The lookup table of [`Schema::slots`].
fn slots(properties: &[(String, Schema)]) -> Vec<u8> {
    if properties.is_empty() {
        return Vec::new();
    }
    let mask = (properties.len() * 4).next_power_of_two() - 1;
    let mut slots = vec![0u8; mask + 1];
    for (position, (name, _)) in properties.iter().enumerate() {
        let mut slot = name_hash(name) & mask;
        while slots[slot] != 0 {
            slot = (slot + 1) & mask;
        }
        // At most MAX_PROPERTIES (128) properties: the position fits.
        slots[slot] = position as u8 + 1;
    }
    slots
}

/// JSON Schema equality: numbers are equal when mathematically equal (`1.0 == 1`).
fn json_equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => {
            match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(l, w)| l == k && json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// `YYYY-MM-DD`, a day that exists (by hand: chrono's format parser is slow, and
/// every event is checked).
fn is_date(s: &str) -> bool {
    s.len() == 10 && crate::time::date_prefix(s.as_bytes()).is_some()
}

/// BRIN (2 digits + 2 upper-case letters or digits) followed by a two-digit vestiging number.
fn is_brin6(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 6
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2..4]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && b[4..].iter().all(u8::is_ascii_digit)
}

fn is_postcode(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|c| *c != b' ').collect();
    compact.len() == 6
        && s.len() <= 7
        && compact[0] != b'0'
        && compact[..4].iter().all(u8::is_ascii_digit)
        && compact[4..].iter().all(u8::is_ascii_alphabetic)
}

fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["id", "worlds"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "worlds": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 7}, "uniqueItems": true},
                "kind": {"enum": ["a", "b"]},
                "nested": {"type": "object", "additionalProperties": false, "properties": {"x/y": {"type": "number"}}}
            }
        })
    }

    #[test]
    fn reports_every_problem_with_its_path_and_never_the_value() {
        let instance = json!({
            "worlds": [1, 9, 1, "secret-value"],
            "kind": "secret-kind",
            "extra": true,
            "nested": {"x/y": "secret-string"}
        });
        let errors = validate(&schema(), &instance);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "/id",
                "/extra",
                "/kind",
                "/nested/x~1y",
                "/worlds/2",
                "/worlds/1",
                "/worlds/3"
            ]
        );
        let text = serde_json::to_string(&errors).unwrap_or_default();
        assert!(
            !text.contains("secret"),
            "reasons must not echo values: {text}"
        );
    }

    #[test]
    fn accepts_a_valid_instance_and_integral_floats() {
        let instance = json!({"id": "0b6f8c1e-3f0a-4c55-9b1e-2a7d6c9e4f10", "worlds": [1.0, 7]});
        assert_eq!(validate(&schema(), &instance), vec![]);
    }

    #[test]
    fn numbers_compare_mathematically_in_enum_const_and_unique_items() {
        let schema = json!({"type": "array", "uniqueItems": true, "items": {"enum": [5, 10]}});
        assert_eq!(validate(&schema, &json!([5.0, 10])), vec![]);
        assert_eq!(validate(&schema, &json!([5, 5.0]))[0].field, "/1");
        assert_eq!(validate(&json!({"const": 1}), &json!(1.0)), vec![]);
        assert_eq!(validate(&json!({"const": 1}), &json!(1.5)).len(), 1);
        assert_eq!(
            validate(&json!({"const": [1, {"a": 2}]}), &json!([1.0, {"a": 2.0}])),
            vec![]
        );
    }

    #[test]
    fn refuses_schemas_with_unenforced_keywords() {
        assert!(check_schema(&schema(), "").is_ok());
        assert!(check_schema(&json!({"type": "string", "pattern": "^a"}), "").is_err());
        assert!(check_schema(&json!({"type": "string", "format": "hostname"}), "").is_err());
        assert!(
            check_schema(
                &json!({"type": "object", "required": ["x"], "properties": {}}),
                ""
            )
            .is_err()
        );
    }

    fn check(format: &str, s: &str) -> Result<(), &'static str> {
        Format::named(format).map_or(Err("a known format"), |f| f.check(s))
    }

    #[test]
    fn formats() {
        assert!(check("brin6", "12AB00").is_ok());
        assert!(check("brin6", "12ab00").is_err());
        assert!(check("postcode", "7411 AB").is_ok());
        assert!(check("postcode", "0411AB").is_err());
        assert!(check("date", "2012-02-30").is_err());
        assert!(check("date", "2012-02-29").is_ok());
        for wrong in [
            "2013-02-29",
            "2012-2-29",
            "2012-02-290",
            "2012/02/29",
            "２０１２-02-29",
        ] {
            assert!(check("date", wrong).is_err(), "{wrong}");
        }
        assert!(check("date-time", "2024-10-03T09:30:00+02:00").is_ok());
        assert!(check("date-time", "2024-10-03 09:30").is_err());
        assert!(check("school-year", "2024/25").is_ok());
        assert!(check("school-year", "2024/26").is_err());
        assert!(check("email", "a@b.nl").is_ok());
        assert!(check("email", "a b@c.nl").is_err());
    }
}
