//! The schema registry: every (kind, version) schema, composed from the envelope
//! schema and the kind's payload schema, plus record validation and CSV coercion.
//!
//! Built once per process from the embedded files; every schema is checked with
//! [`check_schema`] and every embedded example validated when it is built, so a
//! broken schema file fails the first test that touches the registry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use chrono::{DateTime, FixedOffset, NaiveDate};
use memchr::memmem::Finder;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::codes;
use crate::event::{Event, EventKind, Payload, Sector, VoOnderwijstype};
use crate::json::Json;
use crate::validate::{Checked, FieldError, Problem, Schema, check_schema};

const ENVELOPE_V1: &str = include_str!("../json/envelope/v1.schema.json");

/// (kind, version, payload schema, example event).
const FILES: &[(EventKind, u32, &str, &str)] = &[
    (
        EventKind::ActivityHeld,
        1,
        include_str!("../json/activity_held/v1.schema.json"),
        include_str!("../examples/activity_held.v1.json"),
    ),
    (
        EventKind::GroupParticipated,
        1,
        include_str!("../json/group_participated/v1.schema.json"),
        include_str!("../examples/group_participated.v1.json"),
    ),
    (
        EventKind::ParticipantRegistered,
        1,
        include_str!("../json/participant_registered/v1.schema.json"),
        include_str!("../examples/participant_registered.v1.json"),
    ),
    (
        EventKind::ParticipantAttended,
        1,
        include_str!("../json/participant_attended/v1.schema.json"),
        include_str!("../examples/participant_attended.v1.json"),
    ),
    (
        EventKind::SurveyAnswered,
        1,
        include_str!("../json/survey_answered/v1.schema.json"),
        include_str!("../examples/survey_answered.v1.json"),
    ),
    (
        EventKind::ProfileChosen,
        1,
        include_str!("../json/profile_chosen/v1.schema.json"),
        include_str!("../examples/profile_chosen.v1.json"),
    ),
    (
        EventKind::PartnerJoined,
        1,
        include_str!("../json/partner_joined/v1.schema.json"),
        include_str!("../examples/partner_joined.v1.json"),
    ),
    (
        EventKind::PartnerLeft,
        1,
        include_str!("../json/partner_left/v1.schema.json"),
        include_str!("../examples/partner_left.v1.json"),
    ),
    (
        EventKind::AmbassadorCommitted,
        1,
        include_str!("../json/ambassador_committed/v1.schema.json"),
        include_str!("../examples/ambassador_committed.v1.json"),
    ),
    (
        EventKind::TrajectoryStarted,
        1,
        include_str!("../json/trajectory_started/v1.schema.json"),
        include_str!("../examples/trajectory_started.v1.json"),
    ),
    (
        EventKind::TrajectoryEnded,
        1,
        include_str!("../json/trajectory_ended/v1.schema.json"),
        include_str!("../examples/trajectory_ended.v1.json"),
    ),
    (
        EventKind::ConsentWithdrawn,
        1,
        include_str!("../json/consent_withdrawn/v1.schema.json"),
        include_str!("../examples/consent_withdrawn.v1.json"),
    ),
    (
        EventKind::ConsentWithdrawn,
        2,
        include_str!("../json/consent_withdrawn/v2.schema.json"),
        include_str!("../examples/consent_withdrawn.v2.json"),
    ),
];

struct Entry {
    payload: Value,
    full: Value,
    /// `full`, compiled for validation.
    compiled: Schema,
}

struct Registry {
    envelope: Value,
    envelope_compiled: Schema,
    entries: BTreeMap<EventKind, BTreeMap<u32, Entry>>,
    versions: BTreeMap<EventKind, Vec<u32>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(build);

fn parse_embedded(name: &str, text: &str) -> Value {
    match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => panic!("embedded file {name} is not valid JSON: {e}"),
    }
}

fn build() -> Registry {
    let envelope = parse_embedded("json/envelope/v1.schema.json", ENVELOPE_V1);
    let envelope_compiled = match Schema::compile(&envelope) {
        Ok(compiled) => compiled,
        Err(e) => panic!("embedded envelope schema is invalid: {e}"),
    };
    for field in ["event_type", "schema_version", "payload"] {
        assert!(
            envelope["properties"].get(field).is_some(),
            "envelope schema lacks `{field}`"
        );
    }

    let mut entries: BTreeMap<EventKind, BTreeMap<u32, Entry>> = BTreeMap::new();
    for &(kind, version, payload_text, example_text) in FILES {
        let name = format!("{kind}/v{version}");
        let payload = parse_embedded(&name, payload_text);
        if let Err(e) = check_schema(&payload, &name) {
            panic!("embedded payload schema is invalid: {e}");
        }
        assert_eq!(
            payload["$id"],
            json!(format!("urn:techmon:schema:{kind}:v{version}")),
            "{name}: $id does not match the file's place"
        );
        assert_eq!(
            payload["type"],
            json!("object"),
            "{name}: a payload is an object"
        );
        let example = parse_embedded(&format!("examples/{kind}.v{version}.json"), example_text);
        let full = compose(&envelope, kind, version, &payload, &example);
        let compiled = match Schema::compile(&full) {
            Ok(compiled) => compiled,
            Err(e) => panic!("composed schema {name} is invalid: {e}"),
        };
        let previous = entries.entry(kind).or_default().insert(
            version,
            Entry {
                payload,
                full,
                compiled,
            },
        );
        assert!(previous.is_none(), "{name} is listed twice");
    }
    for kind in EventKind::ALL {
        assert!(
            entries.contains_key(kind),
            "no schema for event kind {kind}"
        );
    }
    let versions = entries
        .iter()
        .map(|(k, v)| (*k, v.keys().copied().collect()))
        .collect();
    let registry = Registry {
        envelope,
        envelope_compiled,
        entries,
        versions,
    };

    // Every example must pass the whole validation, including the semantic checks.
    for &(kind, version, _, example_text) in FILES {
        let example = parse_embedded("example", example_text);
        if let Err(errors) = read_checked(&registry, &Json::from(&example)) {
            panic!("examples/{kind}.v{version}.json is not a valid event: {errors:?}");
        }
    }
    registry
}

/// The full schema of one kind and version: the envelope with `event_type` and
/// `schema_version` fixed and the kind's payload schema in place of `payload`.
fn compose(
    envelope: &Value,
    kind: EventKind,
    version: u32,
    payload: &Value,
    example: &Value,
) -> Value {
    let mut full = envelope.clone();
    let mut payload = payload.clone();
    let payload_description = payload
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(p) = payload.as_object_mut() {
        p.remove("$schema");
        p.remove("$id");
        p.remove("title");
    }
    let obj = full
        .as_object_mut()
        .expect("the envelope schema is an object (checked above)");
    obj.insert(
        "$id".into(),
        json!(format!("urn:techmon:schema:event:{kind}:v{version}")),
    );
    obj.insert(
        "title".into(),
        json!(format!("techmon event {kind}, version {version}")),
    );
    obj.insert(
        "description".into(),
        json!(format!(
            "{payload_description} Envelope: {}",
            envelope["description"].as_str().unwrap_or_default()
        )),
    );
    obj.insert("examples".into(), json!([example]));
    let props = obj
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .expect("the envelope schema has properties (checked above)");
    props.insert(
        "event_type".into(),
        json!({"description": format!("The event kind: always {kind} for this schema."), "const": kind.as_str()}),
    );
    props.insert(
        "schema_version".into(),
        json!({
            "description": format!("Version of the {kind} schema the event follows: {version} for this schema."),
            "type": "integer",
            "const": version
        }),
    );
    props.insert("payload".into(), payload);
    full
}

/// Every event kind with its known schema versions (ascending).
pub fn kinds() -> impl Iterator<Item = (EventKind, &'static [u32])> {
    REGISTRY.versions.iter().map(|(k, v)| (*k, v.as_slice()))
}

/// The newest schema version of `kind`.
pub fn latest_version(kind: EventKind) -> Option<u32> {
    REGISTRY.versions.get(&kind).and_then(|v| v.last().copied())
}

/// The full (composed) schema of `kind` (such as `activity_held`) in `version`,
/// as served at `GET /v1/schemas/{kind}/{version}`.
pub fn schema(kind: &str, version: u32) -> Option<&'static Value> {
    let kind: EventKind = kind.parse().ok()?;
    REGISTRY.entries.get(&kind)?.get(&version).map(|e| &e.full)
}

/// The payload schema alone, as in its file.
pub fn payload_schema(kind: EventKind, version: u32) -> Option<&'static Value> {
    REGISTRY
        .entries
        .get(&kind)?
        .get(&version)
        .map(|e| &e.payload)
}

/// The envelope schema, as in its file.
pub fn envelope_schema() -> &'static Value {
    &REGISTRY.envelope
}

/// The list of event kinds with their versions and descriptions, as served at
/// `GET /v1/schemas`.
pub fn catalogue() -> Value {
    let kinds: Vec<Value> = REGISTRY
        .entries
        .iter()
        .map(|(kind, versions)| {
            let latest = versions.iter().next_back().map(|(v, e)| (*v, e));
            json!({
                "kind": kind.as_str(),
                "versions": versions.keys().collect::<Vec<_>>(),
                "latest": latest.map(|(v, _)| v),
                "description": latest.and_then(|(_, e)| e.payload.get("description")).cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    json!({
        "envelope": {
            "fields": REGISTRY.envelope["required"].clone(),
            "description": REGISTRY.envelope["description"].clone(),
        },
        "kinds": kinds,
    })
}

fn known_kinds() -> String {
    EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_kind() -> FieldError {
    FieldError::of(
        Problem::UnknownKind,
        "/event_type",
        format!("unknown event kind; known kinds: {}", known_kinds()),
    )
}

fn unknown_version(registry: &Registry, kind: EventKind) -> FieldError {
    let known: Vec<String> = registry
        .versions
        .get(&kind)
        .into_iter()
        .flatten()
        .map(u32::to_string)
        .collect();
    FieldError::of(
        Problem::UnknownVersion,
        "/schema_version",
        format!(
            "unknown schema version for {kind}; known: {}",
            known.join(", ")
        ),
    )
}

/// Validates one incoming event record: the envelope, the schema of its kind and
/// version, and the semantic rules; returns the typed event or every problem found.
///
/// Reasons never contain the record's values.
pub fn validate_event(value: &Value) -> Result<Event, Vec<FieldError>> {
    read_checked(&REGISTRY, &Json::from(value))
}

/// Why stored bytes are not an event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadEventError {
    #[error("not JSON")]
    NotJson,
    #[error("not a valid event ({} problems)", .0.len())]
    Invalid(Vec<FieldError>),
}

/// [`validate_event`] for an event's JSON text, as stored on the log. A valid
/// event is read in one pass that validates as it reads; any other is validated
/// on a tree that borrows from `bytes`, which lists its problems.
pub fn read_event(bytes: &[u8]) -> Result<Event, ReadEventError> {
    if let Some(event) = read_valid(&REGISTRY, bytes) {
        return Ok(event);
    }
    let json = Json::parse(bytes).map_err(|_| ReadEventError::NotJson)?;
    read_checked(&REGISTRY, &json).map_err(ReadEventError::Invalid)
}

/// A valid event, read in one pass that validates as it reads; `None` when the
/// event is not valid, or when this pass cannot tell (then the tree decides).
///
/// The schema is chosen before reading, by the first `"event_type":"…"` in the
/// text and the kind's latest version. A wrong guess (a nested field of that name,
/// an older version) fails the schema's `const` for `event_type` or
/// `schema_version`, so it only costs the second pass.
fn read_valid(registry: &Registry, bytes: &[u8]) -> Option<Event> {
    const TYPE_FIELD: &[u8] = b"\"event_type\":\"";
    static FINDER: LazyLock<Finder> = LazyLock::new(|| Finder::new(TYPE_FIELD));
    let text = std::str::from_utf8(bytes).ok()?;
    // The field name is ASCII, so its end is a character boundary of the text.
    let after = &text[FINDER.find(bytes)? + TYPE_FIELD.len()..];
    let kind: EventKind = after[..after.find('"')?].parse().ok()?;
    let (_, entry) = registry.entries.get(&kind)?.last_key_value()?;
    let mut reader = serde_json::Deserializer::from_str(text);
    let event = Event::deserialize(Checked::new(&mut reader, &entry.compiled)).ok()?;
    reader.end().ok()?;
    (event.kind() == kind && keeps_the_rules(&event)).then_some(event)
}

/// Checks a record against the schema of its kind and version and the semantic
/// rules, then reads the typed event.
fn read_checked(registry: &Registry, json: &Json) -> Result<Event, Vec<FieldError>> {
    let kind = check_event(registry, json)?;
    match Event::deserialize(json) {
        Ok(event) if event.kind() == kind => Ok(event),
        // The serde message may quote a value: never pass it on.
        _ => Err(vec![FieldError::new(
            "/",
            "the record matches the schema but could not be read; this is a bug in techmon, please report it",
        )]),
    }
}

/// Checks a record against the schema of its kind and version and the semantic
/// rules; returns its kind, or every problem found.
fn check_event(registry: &Registry, value: &Json) -> Result<EventKind, Vec<FieldError>> {
    if value.as_object().is_none() {
        return Err(vec![FieldError::of(
            Problem::NotAnEvent,
            "/",
            "expected a JSON object (one event)",
        )]);
    }
    let mut errors = Vec::new();
    let kind = match value.get("event_type") {
        None => {
            errors.push(FieldError::of(
                Problem::UnknownKind,
                "/event_type",
                "required field is missing",
            ));
            None
        }
        Some(v) => {
            let kind = v.as_str().and_then(|s| s.parse::<EventKind>().ok());
            if kind.is_none() {
                errors.push(unknown_kind());
            }
            kind
        }
    };
    let entry = kind.and_then(|kind| {
        let Some(v) = value.get("schema_version") else {
            errors.push(FieldError::of(
                Problem::UnknownVersion,
                "/schema_version",
                "required field is missing",
            ));
            return None;
        };
        let Some(version) = v.as_integer() else {
            errors.push(FieldError::of(
                Problem::UnknownVersion,
                "/schema_version",
                "expected integer",
            ));
            return None;
        };
        let entry = u32::try_from(version)
            .ok()
            .and_then(|v| registry.entries.get(&kind)?.get(&v));
        if entry.is_none() {
            errors.push(unknown_version(registry, kind));
        }
        entry.map(|e| (kind, e))
    });
    let Some((kind, entry)) = entry else {
        // Still report the envelope's other problems in the same answer.
        let checked_version = kind.is_some();
        errors.extend(
            registry
                .envelope_compiled
                .validate(value)
                .into_iter()
                .filter(|e| {
                    e.field != "/event_type" && !(checked_version && e.field == "/schema_version")
                }),
        );
        return Err(errors);
    };

    let mut errors = entry.compiled.validate(value);
    let semantic = semantic_checks(kind, value, &errors);
    errors.extend(semantic);
    if errors.is_empty() {
        Ok(kind)
    } else {
        Err(errors)
    }
}

/// Rules a JSON Schema cannot express. Fields that already failed schema
/// validation are skipped, so each problem is reported once.
fn semantic_checks(kind: EventKind, event: &Json, schema_errors: &[FieldError]) -> Vec<FieldError> {
    let Some(payload) = event.get("payload").filter(|p| p.as_object().is_some()) else {
        return Vec::new();
    };
    let failed = |field: &str| {
        let pointer = format!("/payload/{field}");
        schema_errors
            .iter()
            .any(|e| e.field == pointer || e.field.starts_with(&format!("{pointer}/")))
    };
    // A field that is present and passed the schema.
    let get = |field: &str| payload.get(field).filter(|_| !failed(field));
    let text = |field| get(field).and_then(Json::as_str);
    let number = |field| get(field).and_then(Json::as_f64);
    let facts = match kind {
        EventKind::ActivityHeld => {
            let time = |field| text(field).and_then(crate::time::parse_rfc3339);
            Facts::Times {
                starts: time("starts_at"),
                ends: time("ends_at"),
            }
        }
        EventKind::GroupParticipated | EventKind::ParticipantRegistered => Facts::Level {
            sector: text("sector"),
            groep: get("groep").is_some(),
            leerjaar: get("leerjaar").is_some(),
        },
        EventKind::SurveyAnswered => Facts::Score {
            score: number("score"),
            scale_max: number("scale_max"),
        },
        EventKind::ProfileChosen => Facts::Profile {
            code: text("profile_code"),
            onderwijstype: text("onderwijstype").and_then(|s| s.parse().ok()),
            participant: get("participant_ref").is_some(),
            count: number("count"),
        },
        _ => return Vec::new(),
    };
    facts.problems()
}

/// Whether a typed event keeps the rules of [`semantic_checks`].
fn keeps_the_rules(event: &Event) -> bool {
    let facts = match &event.payload {
        Payload::ActivityHeld(p) => Facts::Times {
            starts: Some(p.starts_at),
            ends: Some(p.ends_at),
        },
        Payload::GroupParticipated(p) => Facts::Level {
            sector: Some(p.sector.as_str()),
            groep: p.groep.is_some(),
            leerjaar: p.leerjaar.is_some(),
        },
        Payload::ParticipantRegistered(p) => Facts::Level {
            sector: p.sector.map(Sector::as_str),
            groep: p.groep.is_some(),
            leerjaar: p.leerjaar.is_some(),
        },
        Payload::SurveyAnswered(p) => Facts::Score {
            score: Some(p.score),
            scale_max: Some(f64::from(p.scale_max.value())),
        },
        Payload::ProfileChosen(p) => Facts::Profile {
            code: Some(&p.profile_code),
            onderwijstype: Some(p.onderwijstype),
            participant: p.participant_ref.is_some(),
            count: Some(f64::from(p.count)),
        },
        _ => return true,
    };
    facts.problems().is_empty()
}

/// What the semantic rules look at, read from a tree or from a typed event, so
/// that both are judged by the same rules.
enum Facts<'a> {
    Times {
        starts: Option<DateTime<FixedOffset>>,
        ends: Option<DateTime<FixedOffset>>,
    },
    Level {
        sector: Option<&'a str>,
        groep: bool,
        leerjaar: bool,
    },
    Score {
        score: Option<f64>,
        scale_max: Option<f64>,
    },
    Profile {
        code: Option<&'a str>,
        onderwijstype: Option<VoOnderwijstype>,
        participant: bool,
        count: Option<f64>,
    },
}

impl Facts<'_> {
    fn problems(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        match *self {
            Facts::Times {
                starts: Some(starts),
                ends: Some(ends),
            } if ends < starts => {
                errors.push(FieldError::new(
                    "/payload/ends_at",
                    "must not be before starts_at",
                ));
            }
            Facts::Level {
                sector: Some(sector),
                groep,
                leerjaar,
            } => {
                if sector != "PO" && groep {
                    errors.push(FieldError::new(
                        "/payload/groep",
                        "groep is only for sector PO; use leerjaar",
                    ));
                }
                if sector == "PO" && leerjaar {
                    errors.push(FieldError::new(
                        "/payload/leerjaar",
                        "leerjaar is not for sector PO; use groep",
                    ));
                }
            }
            Facts::Score {
                score: Some(score),
                scale_max: Some(max),
            } if score > max => {
                errors.push(FieldError::new(
                    "/payload/score",
                    "must not exceed scale_max",
                ));
            }
            Facts::Profile {
                code,
                onderwijstype,
                participant,
                count,
            } => {
                if let Some(code) = code {
                    errors.extend(profile_problem(code, onderwijstype));
                }
                if participant && count.is_some_and(|c| c > 1.0) {
                    errors.push(FieldError::new(
                        "/payload/count",
                        "a count above 1 is not allowed together with participant_ref",
                    ));
                }
            }
            _ => {}
        }
        errors
    }
}

/// An unknown profile code, or one not offered in the onderwijstype.
fn profile_problem(code: &str, onderwijstype: Option<VoOnderwijstype>) -> Option<FieldError> {
    let Some(profile) = codes::profile(code) else {
        let known: Vec<&str> = codes::profiles().iter().map(|p| p.code.as_str()).collect();
        return Some(FieldError::new(
            "/payload/profile_code",
            format!("unknown profile code; known codes: {}", known.join(", ")),
        ));
    };
    let ot = onderwijstype.filter(|ot| !profile.offered_in(*ot))?;
    let offered: Vec<&str> = profile.onderwijstypes.iter().map(|o| o.as_str()).collect();
    Some(FieldError::new(
        "/payload/profile_code",
        format!(
            "profile {} is not offered in {}; it is offered in: {}",
            profile.code,
            ot,
            offered.join(", ")
        ),
    ))
}

// ---------------------------------------------------------------------------
// CSV

/// The JSON type a schema asks for (the first non-null `type`, or the type of its
/// `enum` or `const` values).
fn schema_type(schema: &Value) -> Option<&'static str> {
    const TYPES: &[&str] = &["string", "integer", "number", "boolean", "array", "object"];
    let declared = match schema.get("type") {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    };
    if let Some(t) = declared {
        return TYPES.iter().copied().find(|known| *known == t);
    }
    let sample = schema
        .get("const")
        .or_else(|| schema.get("enum").and_then(|e| e.get(0)))?;
    Some(match sample {
        Value::String(_) => "string",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => return None,
    })
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Coerces one CSV cell to the JSON type of `schema`.
fn coerce(schema: &Value, cell: &str, field: &str, errors: &mut Vec<FieldError>) -> Option<Value> {
    let fail = |errors: &mut Vec<FieldError>, reason: &str| {
        errors.push(FieldError::new(field, reason));
        None
    };
    match schema_type(schema) {
        Some("integer") => match cell.parse::<i64>() {
            Ok(n) => Some(Value::from(n)),
            Err(_) => fail(errors, "expected integer"),
        },
        Some("number") => {
            // Dutch spreadsheets write 4,5.
            let text = if !cell.contains('.') && cell.matches(',').count() == 1 {
                cell.replace(',', ".")
            } else {
                cell.to_string()
            };
            match text
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .and_then(serde_json::Number::from_f64)
            {
                Some(n) => Some(Value::Number(n)),
                None => fail(errors, "expected number"),
            }
        }
        Some("boolean") => match cell.to_lowercase().as_str() {
            "true" | "ja" | "1" => Some(Value::Bool(true)),
            "false" | "nee" | "0" => Some(Value::Bool(false)),
            _ => fail(errors, "expected boolean (true/false, ja/nee, 1/0)"),
        },
        Some("array") => {
            let items = schema.get("items").cloned().unwrap_or(Value::Null);
            let mut out = Vec::new();
            let before = errors.len();
            for (i, piece) in cell.split('|').enumerate() {
                let piece = piece.trim();
                let item_field = format!("{field}/{i}");
                if piece.is_empty() {
                    errors.push(FieldError::new(
                        item_field,
                        "empty item in a |-separated list",
                    ));
                    continue;
                }
                if let Some(v) = coerce(&items, piece, &item_field, errors) {
                    out.push(v);
                }
            }
            (errors.len() == before).then_some(Value::Array(out))
        }
        Some("object") => fail(
            errors,
            "a group of fields: use one column per member, such as participants.girls",
        ),
        // Times and dates as spreadsheets write them, read in the Netherlands.
        _ => match schema.get("format").and_then(Value::as_str) {
            Some("date-time") if !crate::time::is_rfc3339(cell) => {
                match crate::sheet::spreadsheet_time(cell) {
                    Some(time) => Some(Value::String(time)),
                    None => fail(
                        errors,
                        "expected a time: 2024-10-03T09:00:00+02:00, 3-10-2024 9:00, or a spreadsheet's date",
                    ),
                }
            }
            Some("date") if NaiveDate::parse_from_str(cell, "%Y-%m-%d").is_err() => {
                match crate::sheet::spreadsheet_date(cell) {
                    Some(date) => Some(Value::String(date)),
                    None => fail(
                        errors,
                        "expected a date: 2009-10-03, 3-10-2009, or a spreadsheet's date",
                    ),
                }
            }
            _ => Some(Value::String(cell.to_string())),
        },
    }
}

/// The envelope's own columns; every other column is a payload field.
const ENVELOPE_COLUMNS: &[&str] = &[
    "event_id",
    "event_type",
    "schema_version",
    "hub_id",
    "occurred_at",
    "sent_at",
];

/// The path in the event a CSV column fills: an envelope field, or `payload` and the
/// dotted name's parts (`participants.girls`).
fn column_path(column: &str) -> Vec<String> {
    if ENVELOPE_COLUMNS.contains(&column) {
        return vec![column.to_string()];
    }
    std::iter::once("payload")
        .chain(column.split('.'))
        .map(str::to_string)
        .collect()
}

fn pointer_of(path: &[String]) -> String {
    format!(
        "/{}",
        path.iter().map(|s| escape(s)).collect::<Vec<_>>().join("/")
    )
}

/// The JSON Pointer of the field a CSV column fills, for answers about a cell
/// (`activity_id` → `/payload/activity_id`, `event_id` → `/event_id`).
pub fn csv_column_pointer(header: &str) -> String {
    pointer_of(&column_path(header_name(header)))
}

/// Where a column goes: its JSON Pointer and the schema of the field.
fn resolve_column<'a>(full: &'a Value, column: &str) -> Result<(Vec<String>, &'a Value), String> {
    let path = column_path(column);
    if path.len() == 1 {
        let schema = &full["properties"][column];
        return Ok((path, schema));
    }
    let segments = &path[1..];
    let pointer = pointer_of(&path);
    let mut schema = &full["properties"]["payload"];
    for segment in segments {
        match schema
            .get("properties")
            .and_then(|p| p.get(segment.as_str()))
        {
            Some(sub) => schema = sub,
            None => return Err(pointer),
        }
    }
    Ok((path, schema))
}

fn insert_at(root: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut obj = root;
    for segment in parents {
        let next = obj
            .entry(segment.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        obj = next.as_object_mut().expect("made an object just above");
    }
    obj.insert(last.clone(), value);
}

/// The Dutch headers of the templates (docs/templates/), and the columns they name.
/// The columns' own names are taken too.
const DUTCH_HEADERS: &[(&str, &str)] = &[
    ("datum", "occurred_at"),
    ("date", "occurred_at"),
    ("activiteit", "activity_id"),
    ("soort", "activity_type"),
    ("titel", "title"),
    ("begin", "starts_at"),
    ("einde", "ends_at"),
    ("duur_minuten", "duration_minutes"),
    ("werelden", "worlds"),
    ("doelgroepen", "target_groups"),
    ("locatie", "location"),
    ("partners", "partner_organisations"),
    ("school", "school_brin6"),
    ("schooljaar", "school_year"),
    ("meisjes", "participants.girls"),
    ("jongens", "participants.boys"),
    ("overig", "participants.other"),
    ("begeleiders", "accompanying_teachers"),
    ("deelnemer", "participant_ref"),
    ("naam", "name"),
    ("e-mail", "email"),
    ("telefoon", "phone"),
    ("geboortedatum", "birth_date"),
    ("adres", "street_address"),
    ("leerlingnummer", "pupil_number"),
    ("geslacht", "gender"),
    ("rol", "role"),
    ("toestemming_onderzoek", "consent_research"),
    ("opmerkingen", "notes"),
    ("rol_respondent", "respondent_role"),
    ("schaal_max", "scale_max"),
    ("opmerking", "comment"),
    ("profiel", "profile_code"),
    ("aantal", "count"),
    ("partner", "partner_id"),
    ("organisatie", "organisation_name"),
    ("soort_organisatie", "organisation_kind"),
    ("bijdrage", "contribution"),
    ("reden", "reason"),
    ("ambassadeur", "ambassador_ref"),
    ("traject", "trajectory_id"),
    ("werkgever", "employer"),
    ("uitkomst", "outcome"),
];

/// The column in which the upload page's file of refused rows gives each row's
/// reasons: a feed passes over it, so that the file, fixed, can be sent again.
pub const REFUSAL_COLUMN: &str = "geweigerd_omdat";

/// The column a header names: without surrounding spaces or a byte order mark, and
/// by its own name or its Dutch one (in any case).
fn header_name(header: &str) -> &str {
    let name = header.trim_start_matches('\u{feff}').trim();
    DUTCH_HEADERS
        .iter()
        .find(|(dutch, _)| dutch.eq_ignore_ascii_case(name))
        .map_or(name, |(_, column)| column)
}

/// What a column of a feed takes, for a spreadsheet that helps fill it in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnShape {
    /// The values a cell may hold when they are a closed list, as a cell writes them
    /// (a yes/no field as `ja`/`nee`; a profile from the profile code list).
    pub choices: Vec<String>,
    pub time: Option<TimeShape>,
    /// A number, integer or not.
    pub number: bool,
}

/// A column of times (`date-time`) or of dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeShape {
    DateTime,
    Date,
}

/// What the column `header` (its own name or its Dutch one) of a feed of `kind` in
/// schema `version` takes; `None` for a column the kind does not have.
pub fn column_shape(kind: EventKind, version: u32, header: &str) -> Option<ColumnShape> {
    let entry = REGISTRY.entries.get(&kind)?.get(&version)?;
    let column = header_name(header);
    let (_, schema) = resolve_column(&entry.full, column).ok()?;
    let kind_of = schema_type(schema);
    let choices = if column == "profile_code" {
        crate::codes::profiles()
            .iter()
            .map(|p| p.code.clone())
            .collect()
    } else if kind_of == Some("boolean") {
        vec!["ja".into(), "nee".into()]
    } else {
        schema
            .get("enum")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect()
    };
    let time = match schema.get("format").and_then(Value::as_str) {
        Some("date-time") => Some(TimeShape::DateTime),
        Some("date") => Some(TimeShape::Date),
        _ => None,
    };
    Some(ColumnShape {
        choices,
        time,
        number: matches!(kind_of, Some("integer" | "number")),
    })
}

/// The kinds a sheet with this header row can be of: those whose newest schema has
/// every payload column it names and gets each of its required payload fields from
/// it. One kind recognises the sheet; more (kinds whose columns overlap) leave the
/// choice to the sender.
pub fn kinds_of_header(headers: &[&str]) -> Vec<EventKind> {
    let columns: Vec<&str> = headers
        .iter()
        .map(|h| header_name(h))
        .filter(|c| !c.is_empty() && !ENVELOPE_COLUMNS.contains(c) && *c != REFUSAL_COLUMN)
        .collect();
    if columns.is_empty() {
        return Vec::new();
    }
    REGISTRY
        .entries
        .iter()
        .filter_map(|(kind, versions)| Some((*kind, versions.values().next_back()?)))
        .filter(|(_, entry)| {
            let known = columns
                .iter()
                .all(|c| resolve_column(&entry.full, c).is_ok_and(|(_, schema)| !schema.is_null()));
            let required = entry.full["properties"]["payload"]["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .all(|field| columns.iter().any(|c| c.split('.').next() == Some(field)));
            known && required
        })
        .map(|(kind, _)| kind)
        .collect()
}

/// The separator of a CSV feed, from its header row: `;` when the header has
/// semicolons and no commas (as Dutch spreadsheet exports do), else `,`.
pub fn csv_delimiter(header_line: &[u8]) -> u8 {
    if header_line.contains(&b';') && !header_line.contains(&b',') {
        b';'
    } else {
        b','
    }
}

/// Builds an event record from one CSV row of a feed of `kind` events, to be
/// checked with [`validate_event`].
///
/// Columns are envelope field names (`event_id`, `hub_id`, `occurred_at`,
/// `sent_at`; optionally `schema_version`, which defaults to `version`, and
/// `event_type`, which must then be `kind`) and payload field names, with dotted
/// names for fields of nested objects (`participants.girls`). Cells are trimmed;
/// an empty cell leaves the field out; lists are `|`-separated (`1|6`); cells are
/// coerced to the type the schema gives the field (booleans: true/false, ja/nee,
/// 1/0; numbers may use a decimal comma). Every problem is reported, at the
/// field's JSON Pointer and without the cell's value.
pub fn record_from_csv(
    kind: &str,
    version: u32,
    headers: &[&str],
    row: &[&str],
) -> Result<Value, Vec<FieldError>> {
    let registry = &*REGISTRY;
    let Ok(kind) = kind.parse::<EventKind>() else {
        return Err(vec![unknown_kind()]);
    };
    if headers.len() != row.len() {
        return Err(vec![FieldError::new(
            "/",
            format!(
                "the row has {} cells but the header has {} columns",
                row.len(),
                headers.len()
            ),
        )]);
    }
    let cell_of = |column: &str| {
        headers
            .iter()
            .position(|h| header_name(h) == column)
            .map(|i| row[i].trim())
            .filter(|c| !c.is_empty())
    };

    let mut errors = Vec::new();
    let mut version = version;
    if let Some(cell) = cell_of("schema_version") {
        match cell.parse::<u32>() {
            Ok(v) => version = v,
            Err(_) => {
                errors.push(FieldError::of(
                    Problem::UnknownVersion,
                    "/schema_version",
                    "expected integer",
                ));
                return Err(errors);
            }
        }
    }
    let Some(entry) = registry.entries.get(&kind).and_then(|v| v.get(&version)) else {
        return Err(vec![unknown_version(registry, kind)]);
    };
    if cell_of("event_type").is_some_and(|c| c != kind.as_str()) {
        errors.push(FieldError::of(
            Problem::UnknownKind,
            "/event_type",
            "differs from the event kind of the feed",
        ));
    }

    let mut record = Map::new();
    record.insert("event_type".into(), json!(kind.as_str()));
    record.insert("schema_version".into(), json!(version));
    record.insert("payload".into(), Value::Object(Map::new()));
    let mut seen = BTreeSet::new();
    for (header, cell) in headers.iter().zip(row) {
        let column = header_name(header);
        if column.eq_ignore_ascii_case(REFUSAL_COLUMN) {
            continue;
        }
        match resolve_column(&entry.full, column) {
            Err(pointer) => errors.push(FieldError::new(pointer, "unknown column")),
            Ok((path, schema)) => {
                let pointer = pointer_of(&path);
                if !seen.insert(pointer.clone()) {
                    errors.push(FieldError::new(pointer, "duplicate column"));
                    continue;
                }
                if matches!(column, "event_type" | "schema_version") {
                    continue; // handled above
                }
                let cell = cell.trim();
                if cell.is_empty() {
                    continue;
                }
                if let Some(value) = coerce(schema, cell, &pointer, &mut errors) {
                    insert_at(&mut record, &path, value);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(Value::Object(record))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_templates_header_is_recognised_as_its_kind_and_no_other() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/templates");
        for kind in EventKind::ALL {
            let text =
                std::fs::read_to_string(folder.join(format!("{kind}.csv"))).expect("template");
            let header: Vec<&str> = text.lines().next().expect("a header").split(',').collect();
            assert_eq!(kinds_of_header(&header), [*kind], "{header:?}");
            // The file of refused rows has a column more, which says nothing of the kind.
            let refused: Vec<&str> = header.iter().copied().chain([REFUSAL_COLUMN]).collect();
            assert_eq!(kinds_of_header(&refused), [*kind]);
        }
        assert!(kinds_of_header(&["datum", "deelnemer", "kleur"]).is_empty());
        assert!(kinds_of_header(&["event_id", "hub_id"]).is_empty());
        // Columns of a trajectory starting and of one ending: neither kind has both.
        assert!(kinds_of_header(&["traject", "deelnemer", "route", "uitkomst"]).is_empty());
        // Without its required `route`, a start is no start.
        assert_eq!(
            kinds_of_header(&["traject", "deelnemer", "uitkomst"]),
            [EventKind::TrajectoryEnded]
        );
    }

    #[test]
    fn a_columns_shape_comes_from_its_schema_and_the_code_lists() {
        let shape = |kind, header| column_shape(kind, 1, header).expect("a column");
        let sector = shape(EventKind::GroupParticipated, "sector");
        assert_eq!(sector.choices, ["PO", "VO", "MBO", "HBO", "other"]);
        assert_eq!((sector.time, sector.number), (None, false));
        assert_eq!(
            shape(EventKind::SurveyAnswered, "schaal_max").choices,
            ["5", "10", "100"]
        );
        assert!(shape(EventKind::GroupParticipated, "meisjes").number);
        assert_eq!(
            shape(EventKind::ParticipantRegistered, "toestemming_onderzoek").choices,
            ["ja", "nee"]
        );
        assert!(
            shape(EventKind::ProfileChosen, "profiel")
                .choices
                .contains(&"N&T".to_string())
        );
        assert_eq!(
            shape(EventKind::ActivityHeld, "begin").time,
            Some(TimeShape::DateTime)
        );
        assert_eq!(
            shape(EventKind::GroupParticipated, "datum").time,
            Some(TimeShape::DateTime)
        );
        assert_eq!(
            shape(EventKind::ParticipantRegistered, "geboortedatum").time,
            Some(TimeShape::Date)
        );
        assert_eq!(
            column_shape(EventKind::GroupParticipated, 1, "nonsense"),
            None
        );
        assert_eq!(
            column_shape(EventKind::GroupParticipated, 9, "sector"),
            None
        );
    }

    #[test]
    fn the_registry_builds_and_covers_every_kind() {
        let listed: Vec<EventKind> = kinds().map(|(k, _)| k).collect();
        assert_eq!(listed, EventKind::ALL);
        for kind in EventKind::ALL {
            let latest = if *kind == EventKind::ConsentWithdrawn {
                2
            } else {
                1
            };
            assert_eq!(latest_version(*kind), Some(latest));
            let full = schema(kind.as_str(), 1).expect("composed schema");
            assert_eq!(
                full["properties"]["event_type"]["const"],
                json!(kind.as_str())
            );
            assert_eq!(
                full["properties"]["payload"]["additionalProperties"],
                json!(false)
            );
            assert!(full["properties"]["payload"].get("$id").is_none());
            assert!(payload_schema(*kind, 1).is_some());
        }
        assert!(schema("activity_held", 2).is_none());
        assert!(schema("nonsense", 1).is_none());
        assert_eq!(envelope_schema()["additionalProperties"], json!(false));
    }

    #[test]
    fn every_object_in_every_schema_is_closed_and_described() {
        fn walk(schema: &Value, path: &str) {
            assert!(
                schema
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.is_empty())
                    || path.ends_with("/items"),
                "{path} has no description"
            );
            if schema.get("type") == Some(&json!("object")) && schema.get("properties").is_some() {
                assert_eq!(
                    schema.get("additionalProperties"),
                    Some(&json!(false)),
                    "{path} is not closed"
                );
            }
            for (name, sub) in schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                walk(sub, &format!("{path}/{name}"));
            }
            if let Some(items) = schema.get("items") {
                walk(items, &format!("{path}/items"));
            }
        }
        for (kind, versions) in kinds() {
            for v in versions {
                walk(
                    schema(kind.as_str(), *v).expect("listed"),
                    &format!("{kind}/v{v}"),
                );
            }
        }
    }

    #[test]
    fn catalogue_lists_every_kind() {
        let c = catalogue();
        let kinds = c["kinds"].as_array().expect("kinds");
        assert_eq!(kinds.len(), EventKind::ALL.len());
        assert_eq!(kinds[0]["kind"], json!("activity_held"));
        assert_eq!(kinds[0]["versions"], json!([1]));
        assert_eq!(kinds[0]["latest"], json!(1));
        assert!(
            kinds
                .iter()
                .all(|k| k["description"].as_str().is_some_and(|d| d.len() > 20))
        );
    }
}
