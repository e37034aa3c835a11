//! Event validation, round trips, CSV coercion and the no-echo rule, through the
//! public API.

use serde_json::{Value, json};
use techmon_schemas::validate::validate;
use techmon_schemas::{
    Event, EventKind, FieldError, Payload, Problem, ReadEventError, catalogue, read_event,
    record_from_csv, schema, validate_event,
};

fn example(kind: EventKind) -> Value {
    let path = format!(
        "{}/examples/{}.v1.json",
        env!("CARGO_MANIFEST_DIR"),
        kind.as_str()
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fields(errors: &[FieldError]) -> Vec<&str> {
    let mut f: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    f.sort_unstable();
    f
}

fn errors_of(value: &Value) -> Vec<FieldError> {
    match validate_event(value) {
        Ok(event) => panic!("expected errors, got a valid {} event", event.kind()),
        Err(errors) => errors,
    }
}

/// Sets `pointer` (which must have a parent object) to `value`, or removes it when `value` is None.
fn set(record: &mut Value, pointer: &str, value: Option<Value>) {
    let (parent, name) = pointer.rsplit_once('/').expect("a pointer");
    let obj = record
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no {parent}"));
    match value {
        Some(v) => obj.insert(name.to_string(), v),
        None => obj.remove(name),
    };
}

#[test]
fn every_kind_has_a_valid_example_that_round_trips() {
    for kind in EventKind::ALL {
        let record = example(*kind);
        let event = validate_event(&record).unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        assert_eq!(event.kind(), *kind);
        assert_eq!(event.schema_version, 1);

        let json = serde_json::to_value(&event).expect("serialises");
        let full = schema(kind.as_str(), 1).expect("schema");
        assert_eq!(
            validate(full, &json),
            vec![],
            "{kind}: serialised event does not match its schema"
        );
        let again =
            validate_event(&json).unwrap_or_else(|e| panic!("{kind} after a round trip: {e:?}"));
        assert_eq!(again, event, "{kind}");
        assert_eq!(event.to_json(), json);

        // The typed reading without validation agrees too.
        let plain: Event = serde_json::from_value(json).expect("deserialises");
        assert_eq!(plain, event);
    }
}

#[test]
fn examples_are_embedded_in_the_composed_schemas() {
    for kind in EventKind::ALL {
        let full = schema(kind.as_str(), 1).expect("schema");
        assert_eq!(full["examples"][0], example(*kind), "{kind}");
    }
}

#[test]
fn the_examples_keep_their_values() {
    let Ok(event) = validate_event(&example(EventKind::GroupParticipated)) else {
        panic!("valid")
    };
    let Payload::GroupParticipated(g) = &event.payload else {
        panic!("kind")
    };
    assert_eq!(g.school_year.to_string(), "2024/25");
    assert_eq!(
        (
            g.participants.girls,
            g.participants.boys,
            g.participants.other
        ),
        (12, 14, 1)
    );
    assert_eq!(g.participants.total(), 27);
    assert_eq!(g.groep, Some(7));
    assert_eq!(event.occurred_at.to_rfc3339(), "2024-10-03T09:00:00+02:00");

    let Ok(event) = validate_event(&example(EventKind::SurveyAnswered)) else {
        panic!("valid")
    };
    let Payload::SurveyAnswered(s) = &event.payload else {
        panic!("kind")
    };
    assert!((s.score_of_10() - 9.0).abs() < 1e-9);

    let Ok(event) = validate_event(&example(EventKind::ProfileChosen)) else {
        panic!("valid")
    };
    let Payload::ProfileChosen(p) = &event.payload else {
        panic!("kind")
    };
    assert_eq!(p.count, 17);
    assert!(p.profile().is_some_and(|p| p.technical));
}

#[test]
fn defaults_apply_when_optional_fields_are_left_out() {
    let mut record = example(EventKind::GroupParticipated);
    set(&mut record, "/payload/accompanying_teachers", None);
    set(&mut record, "/payload/participants/other", None);
    let event = validate_event(&record).expect("valid");
    let Payload::GroupParticipated(g) = &event.payload else {
        panic!("kind")
    };
    assert_eq!((g.accompanying_teachers, g.participants.other), (0, 0));

    let mut record = example(EventKind::ProfileChosen);
    set(&mut record, "/payload/count", None);
    set(&mut record, "/payload/participant_ref", Some(json!("P-1")));
    let event = validate_event(&record).expect("valid");
    let Payload::ProfileChosen(p) = &event.payload else {
        panic!("kind")
    };
    assert_eq!(p.count, 1);
    let json = serde_json::to_value(&event).expect("serialises");
    assert_eq!(validate_event(&json).expect("still valid"), event);
}

/// The stored text of `record` with its top-level fields in the given order.
fn text_in_order(record: &Value, order: &[&str]) -> String {
    let fields: Vec<String> = order
        .iter()
        .map(|name| format!("{:?}: {}", name, record[*name]))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

#[test]
fn reading_stored_bytes_agrees_with_validating_a_value() {
    let envelope = [
        "event_id",
        "event_type",
        "schema_version",
        "hub_id",
        "occurred_at",
        "sent_at",
        "payload",
    ];
    let mut payload_first = envelope;
    payload_first.rotate_right(1);
    for kind in EventKind::ALL {
        let record = example(*kind);
        let expected = validate_event(&record).expect("valid example");
        for order in [envelope, payload_first] {
            let text = text_in_order(&record, &order);
            assert_eq!(
                read_event(text.as_bytes()),
                Ok(expected.clone()),
                "{kind}, fields in order {order:?}"
            );
        }
        // An invalid record gets the same problems either way.
        let mut bad = record.clone();
        set(&mut bad, "/hub_id", Some(json!(17)));
        set(&mut bad, "/payload/no_such_field", Some(json!("secret")));
        let Err(ReadEventError::Invalid(problems)) = read_event(bad.to_string().as_bytes()) else {
            panic!("{kind}: an invalid record was read");
        };
        assert_eq!(fields(&problems), fields(&errors_of(&bad)), "{kind}");
    }
    assert_eq!(read_event(b"{\"event_id\": "), Err(ReadEventError::NotJson));
    assert_eq!(read_event(b"\xff\xfe"), Err(ReadEventError::NotJson));
}

/// Every place of a record that holds a value, as JSON Pointers (objects' fields
/// and arrays' items, at any depth).
fn pointers(value: &Value, at: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (name, inner) in fields {
                let pointer = format!("{at}/{name}");
                out.push(pointer.clone());
                pointers(inner, &pointer, out);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                let pointer = format!("{at}/{i}");
                out.push(pointer.clone());
                pointers(inner, &pointer, out);
            }
        }
        _ => {}
    }
}

/// The text of `record` with its payload as the first field.
fn payload_first(record: &Value) -> String {
    let fields = record.as_object().expect("an object");
    let (payload, rest): (Vec<_>, Vec<_>) = fields.iter().partition(|(name, _)| *name == "payload");
    let fields: Vec<String> = payload
        .into_iter()
        .chain(rest)
        .map(|(name, value)| format!("{name:?}:{value}"))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// `read_event` reads a valid event in one pass that validates as it reads, and
/// goes back to the tree for anything else. Both must reach the same verdict as
/// validating the record's tree, for every change to every field of every kind:
/// the one pass may refuse a valid record (the tree then accepts it), never accept
/// an invalid one.
#[test]
fn the_one_pass_reading_agrees_with_the_tree_on_every_changed_field() {
    let replacements = [
        json!(null),
        json!(true),
        json!(0),
        json!(-1),
        json!(1),
        json!(7),
        json!(7.0),
        json!(2.5),
        json!(5_000_000_000_u64),
        json!(""),
        json!("x"),
        json!("PO"),
        json!("2024/25"),
        json!("2024-10-03"),
        json!("2024-10-03T09:30:00+02:00"),
        json!("12AB00"),
        json!("x".repeat(300)),
        json!([]),
        json!([1, 1]),
        json!(["po", "vo"]),
        json!({}),
        json!({"girls": 1, "boys": 2}),
    ];
    let examples =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples")).expect("examples");
    let (mut compared, mut valid) = (0, 0);
    for file in examples {
        let text = std::fs::read_to_string(file.expect("an example").path()).expect("readable");
        let record: Value = serde_json::from_str(&text).expect("JSON");
        let mut places = Vec::new();
        pointers(&record, "", &mut places);
        let mut variants = vec![record.clone()];
        for place in &places {
            let (parent, _) = place.rsplit_once('/').expect("a pointer");
            let mut removed = record.clone();
            let is_item = record.pointer(parent).is_some_and(Value::is_array);
            if !is_item {
                set(&mut removed, place, None);
                variants.push(removed);
            }
            for replacement in &replacements {
                let mut changed = record.clone();
                *changed.pointer_mut(place).expect("a place") = replacement.clone();
                variants.push(changed);
            }
            if let Some(Value::Object(fields)) = record.pointer(place) {
                let mut extra = record.clone();
                let mut fields = fields.clone();
                fields.insert("unknown".to_string(), json!(1));
                *extra.pointer_mut(place).expect("a place") = Value::Object(fields);
                variants.push(extra);
            }
        }
        for variant in variants {
            let expected = validate_event(&variant);
            valid += usize::from(expected.is_ok());
            // serde_json writes the fields sorted: the payload comes before
            // `schema_version`; in the second text it comes first.
            let texts = [variant.to_string(), payload_first(&variant)];
            for text in texts {
                let read = match read_event(text.as_bytes()) {
                    Ok(event) => Ok(event),
                    Err(ReadEventError::Invalid(errors)) => Err(errors),
                    Err(ReadEventError::NotJson) => panic!("JSON: {text}"),
                };
                assert_eq!(read, expected, "{text}");
                compared += 1;
            }
        }
    }
    // The changes reach both verdicts, many times.
    assert!(valid > 100, "{valid} valid variants");
    assert!(compared - valid > 1000, "{compared} compared");
}

#[test]
fn a_field_given_twice_is_refused_not_guessed() {
    let record = example(EventKind::ParticipantAttended);
    let text = record.to_string();
    let twice = text.replacen("{", "{\"hub_id\": \"another-hub\", ", 1);
    let Err(ReadEventError::Invalid(problems)) = read_event(twice.as_bytes()) else {
        panic!("a record with hub_id twice was read");
    };
    assert_eq!(
        problems,
        vec![FieldError::new("/hub_id", "field appears more than once")]
    );
}

#[test]
fn integral_floats_are_integers() {
    let mut record = example(EventKind::GroupParticipated);
    set(&mut record, "/payload/groep", Some(json!(7.0)));
    set(&mut record, "/schema_version", Some(json!(1.0)));
    let event = validate_event(&record).expect("7.0 is an integer");
    assert_eq!(read_event(record.to_string().as_bytes()), Ok(event.clone()));
    let Payload::GroupParticipated(g) = &event.payload else {
        panic!("kind")
    };
    assert_eq!(g.groep, Some(7));
    set(&mut record, "/payload/groep", Some(json!(7.5)));
    assert_eq!(fields(&errors_of(&record)), ["/payload/groep"]);
}

/// For every kind: changes to its example, and the fields that must then be reported.
#[test]
fn invalid_variants_report_their_field_paths() {
    type Change = (&'static str, Option<Value>);
    let long = "x".repeat(2001);
    let cases: Vec<(EventKind, Vec<Change>, Vec<&str>)> = vec![
        (
            EventKind::ActivityHeld,
            vec![
                ("/payload/activity_type", Some(json!("lecture"))),
                ("/payload/worlds", Some(json!([0, 8, 2, 2]))),
                ("/payload/target_groups", Some(json!(["po", "pupils"]))),
                ("/payload/title", None),
            ],
            vec![
                "/payload/activity_type",
                "/payload/target_groups/1",
                "/payload/title",
                "/payload/worlds/0",
                "/payload/worlds/1",
                "/payload/worlds/3",
            ],
        ),
        (
            EventKind::ActivityHeld,
            vec![("/payload/ends_at", Some(json!("2024-10-03T08:59:59+02:00")))],
            vec!["/payload/ends_at"],
        ),
        (
            // The same instant in another offset is not earlier.
            EventKind::ActivityHeld,
            vec![("/payload/ends_at", Some(json!("2024-10-03T07:00:00Z")))],
            vec![],
        ),
        (
            EventKind::GroupParticipated,
            vec![("/payload/sector", Some(json!("VO")))],
            vec!["/payload/groep"],
        ),
        (
            // A field that fails the schema is not reported again by the semantic rules.
            EventKind::GroupParticipated,
            vec![
                ("/payload/sector", Some(json!("VO"))),
                ("/payload/groep", Some(json!(9))),
            ],
            vec!["/payload/groep"],
        ),
        (
            EventKind::GroupParticipated,
            vec![("/payload/leerjaar", Some(json!(2)))],
            vec!["/payload/leerjaar"],
        ),
        (
            EventKind::GroupParticipated,
            vec![
                ("/payload/participants/boys", None),
                ("/payload/participants/girls", Some(json!(-1))),
                ("/payload/school_brin6", Some(json!("12ab00"))),
                ("/payload/school_year", Some(json!("2024/26"))),
                ("/payload/groep", Some(json!(9))),
                ("/payload/onderwijstype", Some(json!("gymnasium"))),
            ],
            vec![
                "/payload/groep",
                "/payload/onderwijstype",
                "/payload/participants/boys",
                "/payload/participants/girls",
                "/payload/school_brin6",
                "/payload/school_year",
            ],
        ),
        (
            EventKind::ParticipantRegistered,
            vec![
                ("/payload/email", Some(json!("not-an-address"))),
                ("/payload/postcode", Some(json!("0123 AB"))),
                ("/payload/birth_date", Some(json!("2011-02-30"))),
                ("/payload/consent_research", Some(json!("yes"))),
                ("/payload/gender", None),
                ("/payload/sector", Some(json!("PO"))),
            ],
            vec![
                "/payload/birth_date",
                "/payload/consent_research",
                "/payload/email",
                "/payload/gender",
                "/payload/leerjaar",
                "/payload/postcode",
            ],
        ),
        (
            EventKind::ParticipantAttended,
            vec![
                ("/payload/participant_ref", None),
                ("/payload/role", Some(json!("visitor"))),
            ],
            vec!["/payload/participant_ref", "/payload/role"],
        ),
        (
            EventKind::SurveyAnswered,
            vec![
                ("/payload/scale_max", Some(json!(7))),
                ("/payload/score", Some(json!(-1))),
            ],
            vec!["/payload/scale_max", "/payload/score"],
        ),
        (
            EventKind::SurveyAnswered,
            vec![("/payload/score", Some(json!(5.5)))],
            vec!["/payload/score"],
        ),
        (
            EventKind::ProfileChosen,
            vec![("/payload/profile_code", Some(json!("XYZ")))],
            vec!["/payload/profile_code"],
        ),
        (
            EventKind::ProfileChosen,
            vec![("/payload/profile_code", Some(json!("N&T")))],
            vec!["/payload/profile_code"],
        ),
        (
            EventKind::ProfileChosen,
            vec![("/payload/participant_ref", Some(json!("P-1")))],
            vec!["/payload/count"],
        ),
        (
            // Only the onderwijstype is reported, not also the profile.
            EventKind::ProfileChosen,
            vec![
                ("/payload/onderwijstype", Some(json!("pro"))),
                ("/payload/count", Some(json!(0))),
            ],
            vec!["/payload/count", "/payload/onderwijstype"],
        ),
        (
            EventKind::PartnerJoined,
            vec![
                ("/payload/organisation_kind", Some(json!("bank"))),
                ("/payload/organisation_name", None),
            ],
            vec!["/payload/organisation_kind", "/payload/organisation_name"],
        ),
        (
            EventKind::PartnerLeft,
            vec![
                ("/payload/reason", Some(json!(long))),
                ("/payload/partner_id", Some(json!(17))),
            ],
            vec!["/payload/partner_id", "/payload/reason"],
        ),
        (
            EventKind::AmbassadorCommitted,
            vec![
                ("/payload/email", Some(json!("a@b"))),
                ("/payload/phone", Some(json!("06"))),
            ],
            vec!["/payload/email", "/payload/phone"],
        ),
        (
            EventKind::TrajectoryStarted,
            vec![
                ("/payload/route", Some(json!(""))),
                ("/payload/participant_ref", Some(json!("x".repeat(65)))),
            ],
            vec!["/payload/participant_ref", "/payload/route"],
        ),
        (
            EventKind::TrajectoryEnded,
            vec![
                ("/payload/outcome", Some(json!("graduated"))),
                ("/payload/trajectory_id", None),
            ],
            vec!["/payload/outcome", "/payload/trajectory_id"],
        ),
        (
            EventKind::ConsentWithdrawn,
            vec![
                ("/payload/participant_ref", Some(json!(""))),
                ("/payload/reason", Some(json!("moved"))),
            ],
            vec!["/payload/participant_ref", "/payload/reason"],
        ),
    ];
    let mut kinds_covered = std::collections::BTreeSet::new();
    for (kind, changes, expected) in cases {
        let mut record = example(kind);
        for (pointer, value) in changes.clone() {
            set(&mut record, pointer, value);
        }
        if expected.is_empty() {
            assert!(
                validate_event(&record).is_ok(),
                "{kind} {changes:?} should be valid"
            );
            continue;
        }
        kinds_covered.insert(kind);
        let errors = errors_of(&record);
        assert_eq!(fields(&errors), expected, "{kind} {changes:?}: {errors:?}");
    }
    assert_eq!(
        kinds_covered.len(),
        EventKind::ALL.len(),
        "an invalid variant for every kind"
    );
}

#[test]
fn profile_reasons_name_the_known_codes() {
    let mut record = example(EventKind::ProfileChosen);
    set(&mut record, "/payload/profile_code", Some(json!("N&T")));
    let errors = errors_of(&record);
    assert!(errors[0].reason.contains("havo, vwo"), "{errors:?}");
    set(
        &mut record,
        "/payload/profile_code",
        Some(json!("Techniek")),
    );
    let errors = errors_of(&record);
    assert!(
        errors[0].reason.contains("BWI") && !errors[0].reason.contains("Techniek"),
        "{errors:?}"
    );
}

#[test]
fn unknown_kinds_versions_and_fields() {
    let mut record = example(EventKind::ActivityHeld);
    set(&mut record, "/event_type", Some(json!("activity_hold")));
    let errors = errors_of(&record);
    assert_eq!(fields(&errors), ["/event_type"]);
    assert_eq!(errors[0].problem, Problem::UnknownKind);
    assert!(
        errors[0]
            .reason
            .starts_with("unknown event kind; known kinds: activity_held, group_participated")
    );
    assert!(
        !errors[0].reason.contains("activity_hold,")
            && !errors[0].reason.contains("activity_hold ")
    );

    let mut record = example(EventKind::ActivityHeld);
    set(&mut record, "/schema_version", Some(json!(2)));
    let errors = errors_of(&record);
    assert_eq!(
        errors,
        [FieldError::of(
            Problem::UnknownVersion,
            "/schema_version",
            "unknown schema version for activity_held; known: 1"
        )]
    );

    let mut record = example(EventKind::ActivityHeld);
    set(&mut record, "/schema_version", Some(json!("1")));
    assert_eq!(fields(&errors_of(&record)), ["/schema_version"]);

    let mut record = example(EventKind::ActivityHeld);
    set(&mut record, "/trace_id", Some(json!("abc")));
    set(&mut record, "/payload/room", Some(json!("B1.12")));
    let errors = errors_of(&record);
    assert_eq!(fields(&errors), ["/payload/room", "/trace_id"]);
    assert!(errors.iter().all(|e| e.reason == "unknown field"));

    assert_eq!(
        errors_of(&json!([1, 2])),
        [FieldError::of(
            Problem::NotAnEvent,
            "/",
            "expected a JSON object (one event)"
        )]
    );
    assert_eq!(fields(&errors_of(&json!("event"))), ["/"]);

    // Without a known kind, the envelope's other problems are still reported.
    let mut record = example(EventKind::ActivityHeld);
    set(&mut record, "/event_type", None);
    set(&mut record, "/event_id", Some(json!("not-a-uuid")));
    set(&mut record, "/sent_at", None);
    assert_eq!(
        fields(&errors_of(&record)),
        ["/event_id", "/event_type", "/sent_at"]
    );
    set(&mut record, "/event_type", Some(json!(12)));
    set(&mut record, "/schema_version", None);
    assert_eq!(
        fields(&errors_of(&record)),
        ["/event_id", "/event_type", "/schema_version", "/sent_at"]
    );
}

#[test]
fn a_record_with_many_problems_reports_all_of_them() {
    let record = json!({
        "event_id": "123",
        "event_type": "group_participated",
        "schema_version": 1,
        "hub_id": "",
        "occurred_at": "yesterday",
        "sent_at": "2024-10-03T16:05:12+02:00",
        "source": "excel",
        "payload": {
            "activity_id": "act-1",
            "school_brin6": "12AB0",
            "sector": "VO",
            "groep": 7,
            "school_year": "2024-2025",
            "participants": {"girls": "twelve", "boys": 3, "unknown": 1},
            "accompanying_teachers": 1.5,
            "teacher_name": "Canary-Jansen"
        }
    });
    let errors = errors_of(&record);
    assert_eq!(
        fields(&errors),
        [
            "/event_id",
            "/hub_id",
            "/occurred_at",
            "/payload/accompanying_teachers",
            "/payload/groep",
            "/payload/participants/girls",
            "/payload/participants/unknown",
            "/payload/school_brin6",
            "/payload/school_year",
            "/payload/teacher_name",
            "/source",
        ]
    );
}

#[test]
fn no_reason_ever_contains_a_planted_value() {
    let canary = "Canary-Jansen";
    let mail = "canary@example.org";
    let mut records = Vec::new();
    for kind in EventKind::ALL {
        let mut record = example(*kind);
        let payload = record["payload"].as_object().expect("payload").clone();
        // Every payload field in turn gets a wrong-typed or wrong-valued canary.
        for (name, value) in payload {
            let planted = match value {
                Value::String(_) => json!(format!("{canary} {mail}")),
                Value::Number(_) | Value::Bool(_) => json!(canary),
                Value::Array(_) => json!([canary, mail]),
                Value::Object(_) => json!({canary: mail}),
                Value::Null => json!(mail),
            };
            set(&mut record, &format!("/payload/{name}"), Some(planted));
        }
        set(
            &mut record,
            &format!("/payload/{canary}"),
            Some(json!(mail)),
        );
        records.push(record.clone());
        set(&mut record, "/event_type", Some(json!(canary)));
        set(&mut record, "/hub_id", Some(json!([mail])));
        records.push(record);
    }
    let mut record = example(EventKind::SurveyAnswered);
    set(&mut record, "/schema_version", Some(json!(canary)));
    records.push(record);
    records.push(json!(canary));
    records.push(json!({"event_type": mail, "schema_version": canary, "event_id": mail, "occurred_at": canary}));

    let mut all = Vec::new();
    for record in &records {
        if let Err(errors) = validate_event(record) {
            all.extend(errors);
        }
    }
    assert!(
        all.len() > 50,
        "the planted values must be rejected: {}",
        all.len()
    );
    for e in &all {
        assert!(
            !e.reason.to_lowercase().contains("anary"),
            "reason echoes the value: {e:?}"
        );
    }

    // CSV cells too.
    let headers = [
        "event_id",
        "hub_id",
        "occurred_at",
        "sent_at",
        "activity_id",
        "sector",
        "school_year",
        "participants.girls",
        "participants.boys",
        "groep",
    ];
    let row = [
        "x",
        "tec-deventer",
        "t",
        "t",
        "a",
        "PO",
        "2024/25",
        canary,
        "Canary@1",
        "canary",
    ];
    let errors =
        record_from_csv("group_participated", 1, &headers, &row).expect_err("bad integers");
    // The times are read as a spreadsheet writes them, so `t` is refused in its cell.
    assert_eq!(
        fields(&errors),
        [
            "/occurred_at",
            "/payload/groep",
            "/payload/participants/boys",
            "/payload/participants/girls",
            "/sent_at"
        ]
    );
    for e in &errors {
        assert!(!e.reason.to_lowercase().contains("anary"), "{e:?}");
    }
}

#[test]
fn debug_output_redacts_personal_data() {
    let event = validate_event(&example(EventKind::ParticipantRegistered)).expect("valid");
    let text = format!("{event:?}");
    for secret in [
        "Sanne",
        "sanne@example.org",
        "+31 6",
        "2011-05-04",
        "7311",
        "Voorbeeldstraat",
        "L-2024-113",
        "NTP-P-000731",
        "elektrotechniek",
    ] {
        assert!(!text.contains(secret), "Debug shows {secret}: {text}");
    }
    assert!(
        text.contains("<redacted>") && text.contains("consent_research: true"),
        "{text}"
    );
    let event = validate_event(&example(EventKind::AmbassadorCommitted)).expect("valid");
    let text = format!("{event:?}");
    assert!(
        !text.contains("Jan Voorbeeld") && !text.contains("jan.voorbeeld@"),
        "{text}"
    );
}

#[test]
fn subject_keys() {
    let key = |kind: EventKind, changes: &[(&str, Option<Value>)]| {
        let mut record = example(kind);
        for (p, v) in changes {
            set(&mut record, p, v.clone());
        }
        validate_event(&record)
            .unwrap_or_else(|e| panic!("{kind}: {e:?}"))
            .subject_key()
    };
    assert_eq!(
        key(EventKind::ActivityHeld, &[]),
        "activity:tec-deventer:act-2024-0412"
    );
    assert_eq!(
        key(EventKind::GroupParticipated, &[]),
        "activity:tec-deventer:act-2024-0412"
    );
    assert_eq!(
        key(EventKind::ParticipantRegistered, &[]),
        "participant:newtechpark:NTP-P-000731"
    );
    assert_eq!(
        key(EventKind::ParticipantAttended, &[]),
        "participant:newtechpark:NTP-P-000731"
    );
    assert_eq!(
        key(EventKind::SurveyAnswered, &[]),
        "activity:tec-deventer:act-2024-0412"
    );
    assert_eq!(
        key(
            EventKind::SurveyAnswered,
            &[("/payload/participant_ref", Some(json!("P-9")))]
        ),
        "participant:tec-deventer:P-9"
    );
    assert_eq!(key(EventKind::ProfileChosen, &[]), "school:20ZZ01");
    assert_eq!(
        key(
            EventKind::ProfileChosen,
            &[
                ("/payload/participant_ref", Some(json!("P-9"))),
                ("/payload/count", None)
            ]
        ),
        "participant:techniekfabriek:P-9"
    );
    assert_eq!(
        key(EventKind::PartnerJoined, &[]),
        "partner:techniekbrouwerij:partner-017"
    );
    assert_eq!(
        key(EventKind::PartnerLeft, &[]),
        "partner:techniekbrouwerij:partner-017"
    );
    assert_eq!(
        key(EventKind::AmbassadorCommitted, &[]),
        "ambassador:tec-deventer:amb-0005"
    );
    assert_eq!(
        key(EventKind::TrajectoryStarted, &[]),
        "participant:newtechpark:NTP-V-000044"
    );
    assert_eq!(
        key(EventKind::TrajectoryEnded, &[]),
        "participant:newtechpark:NTP-V-000044"
    );
    assert_eq!(
        key(EventKind::ConsentWithdrawn, &[]),
        "participant:newtechpark:NTP-P-000731"
    );
    // Version 2 can name an ambassador: ordered with that ambassador's events.
    assert_eq!(
        key(
            EventKind::ConsentWithdrawn,
            &[
                ("/schema_version", Some(json!(2))),
                ("/payload/subject", Some(json!("ambassador")))
            ]
        ),
        "ambassador:newtechpark:NTP-P-000731"
    );
}

#[test]
fn only_version_2_of_consent_withdrawn_names_its_subject() {
    let mut record = example(EventKind::ConsentWithdrawn);
    set(&mut record, "/payload/subject", Some(json!("ambassador")));
    let errors = validate_event(&record).expect_err("version 1 has no subject");
    assert_eq!(errors[0].field, "/payload/subject");
    set(&mut record, "/schema_version", Some(json!(2)));
    let event = validate_event(&record).expect("version 2 has");
    assert_eq!(event.participant_ref(), None);
    set(&mut record, "/payload/subject", Some(json!("teacher")));
    let errors = validate_event(&record).expect_err("not a subject");
    assert_eq!(errors[0].field, "/payload/subject");
    set(&mut record, "/payload/subject", None);
    let event = validate_event(&record).expect("a participant by default");
    assert_eq!(event.participant_ref(), Some("NTP-P-000731"));
}

#[test]
fn event_kind_strings() {
    for kind in EventKind::ALL {
        assert_eq!(kind.as_str().parse::<EventKind>(), Ok(*kind));
        assert_eq!(kind.to_string(), kind.as_str());
    }
    assert_eq!(EventKind::ALL.len(), 12);
    let err = "Canary".parse::<EventKind>().expect_err("unknown");
    assert!(!err.to_string().contains("anary"));
}

#[test]
fn catalogue_and_schema_lookup() {
    let c = catalogue();
    let kinds: Vec<&str> = c["kinds"]
        .as_array()
        .expect("kinds")
        .iter()
        .filter_map(|k| k["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        EventKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
    );
    let full = schema("group_participated", 1).expect("schema");
    assert_eq!(
        full["$id"],
        json!("urn:techmon:schema:event:group_participated:v1")
    );
    assert_eq!(full["properties"]["schema_version"]["const"], json!(1));
    assert_eq!(
        full["properties"]["payload"]["properties"]["participants"]["required"],
        json!(["girls", "boys"])
    );
}

// --- CSV -------------------------------------------------------------------

const ENVELOPE_HEADERS: [&str; 4] = ["event_id", "hub_id", "occurred_at", "sent_at"];
const ENVELOPE_CELLS: [&str; 4] = [
    "6a1d8a52-0f4e-4b8e-a7a3-0c9f0e6b2d11",
    "tec-deventer",
    "2024-10-03T09:00:00+02:00",
    "2024-10-03T16:05:12+02:00",
];

fn csv(kind: &str, headers: &[&str], cells: &[&str]) -> Result<Value, Vec<FieldError>> {
    let h: Vec<&str> = ENVELOPE_HEADERS.iter().chain(headers).copied().collect();
    let c: Vec<&str> = ENVELOPE_CELLS.iter().chain(cells).copied().collect();
    record_from_csv(kind, 1, &h, &c)
}

#[test]
fn csv_group_participated_row() {
    let record = csv(
        "group_participated",
        &[
            "activity_id",
            "school_brin6",
            "sector",
            "groep",
            "leerjaar",
            "school_year",
            "participants.girls",
            "participants.boys",
            "participants.other",
            "accompanying_teachers",
        ],
        &[
            "act-2024-0412",
            "12AB00",
            "PO",
            " 7 ",
            "",
            "2024/25",
            "12",
            "14",
            "",
            "2",
        ],
    )
    .expect("coerces");
    assert_eq!(
        record,
        json!({
            "event_id": "6a1d8a52-0f4e-4b8e-a7a3-0c9f0e6b2d11",
            "event_type": "group_participated",
            "schema_version": 1,
            "hub_id": "tec-deventer",
            "occurred_at": "2024-10-03T09:00:00+02:00",
            "sent_at": "2024-10-03T16:05:12+02:00",
            "payload": {
                "activity_id": "act-2024-0412",
                "school_brin6": "12AB00",
                "sector": "PO",
                "groep": 7,
                "school_year": "2024/25",
                "participants": {"girls": 12, "boys": 14},
                "accompanying_teachers": 2
            }
        })
    );
    let event = validate_event(&record).expect("valid");
    assert_eq!(event.kind(), EventKind::GroupParticipated);
}

#[test]
fn csv_activity_held_row_with_lists() {
    let record = csv(
        "activity_held",
        &[
            "activity_id",
            "activity_type",
            "title",
            "starts_at",
            "ends_at",
            "duration_minutes",
            "worlds",
            "target_groups",
            "partner_organisations",
            "schema_version",
            "event_type",
        ],
        &[
            "a-1",
            "workshop",
            "Solderen",
            "2024-11-05T13:00:00+01:00",
            "2024-11-05T15:00:00+01:00",
            "120",
            "1|6",
            "vo | teachers",
            "Bedrijf A|Bedrijf B",
            "1",
            "activity_held",
        ],
    )
    .expect("coerces");
    assert_eq!(record["payload"]["worlds"], json!([1, 6]));
    assert_eq!(
        record["payload"]["target_groups"],
        json!(["vo", "teachers"])
    );
    assert_eq!(
        record["payload"]["partner_organisations"],
        json!(["Bedrijf A", "Bedrijf B"])
    );
    assert_eq!(record["payload"]["duration_minutes"], json!(120));
    let event = validate_event(&record).expect("valid");
    let Payload::ActivityHeld(a) = &event.payload else {
        panic!("kind")
    };
    assert_eq!(a.worlds, [1, 6]);

    // A single value is a one-item list; empty worlds are left out (and then missing).
    let record = csv("activity_held", &["worlds"], &["3"]).expect("coerces");
    assert_eq!(record["payload"]["worlds"], json!([3]));
}

#[test]
fn csv_other_types() {
    let record = csv(
        "participant_registered",
        &[
            "participant_ref",
            "name",
            "gender",
            "role",
            "consent_research",
        ],
        &["p-1", "Sanne", "female", "pupil", "Ja"],
    )
    .expect("coerces");
    assert_eq!(record["payload"]["consent_research"], json!(true));
    assert!(validate_event(&record).is_ok());
    for (cell, expected) in [
        ("nee", false),
        ("0", false),
        ("TRUE", true),
        ("1", true),
        ("false", false),
    ] {
        let record =
            csv("participant_registered", &["consent_research"], &[cell]).expect("coerces");
        assert_eq!(
            record["payload"]["consent_research"],
            json!(expected),
            "{cell}"
        );
    }
    let errors = csv(
        "participant_registered",
        &["consent_research"],
        &["misschien"],
    )
    .expect_err("not a boolean");
    assert_eq!(fields(&errors), ["/payload/consent_research"]);

    let record = csv(
        "survey_answered",
        &["activity_id", "respondent_role", "score", "scale_max"],
        &["a-1", "parent", "4,5", "5"],
    )
    .expect("coerces");
    assert_eq!(record["payload"]["score"], json!(4.5));
    assert_eq!(record["payload"]["scale_max"], json!(5));
    assert!(validate_event(&record).is_ok());
}

#[test]
fn csv_problems_are_reported_with_their_paths() {
    let errors = csv(
        "group_participated",
        &[
            "activity_id",
            "groep",
            "participants.girls",
            "participants.pets",
            "teacher",
            "payload",
            "worlds",
            "participants",
        ],
        &["a-1", "zeven", "12", "1", "x", "y", "1", "3"],
    )
    .expect_err("problems");
    assert_eq!(
        fields(&errors),
        [
            "/payload/groep",
            "/payload/participants",
            "/payload/participants/pets",
            "/payload/payload",
            "/payload/teacher",
            "/payload/worlds"
        ]
    );
    let reason = |f: &str| {
        errors
            .iter()
            .find(|e| e.field == f)
            .map(|e| e.reason.as_str())
    };
    assert_eq!(reason("/payload/groep"), Some("expected integer"));
    assert_eq!(reason("/payload/teacher"), Some("unknown column"));
    assert_eq!(reason("/payload/participants/pets"), Some("unknown column"));

    let errors = csv("activity_held", &["worlds"], &["1||x"]).expect_err("bad list");
    assert_eq!(fields(&errors), ["/payload/worlds/1", "/payload/worlds/2"]);

    let errors = csv(
        "activity_held",
        &["activity_id", "activity_id"],
        &["a", "b"],
    )
    .expect_err("duplicate");
    assert_eq!(
        errors,
        [FieldError::new("/payload/activity_id", "duplicate column")]
    );

    let errors =
        csv("activity_held", &["event_type"], &["group_participated"]).expect_err("other kind");
    assert_eq!(fields(&errors), ["/event_type"]);

    let errors = csv("activity_helt", &[], &[]).expect_err("unknown kind");
    assert_eq!(fields(&errors), ["/event_type"]);
    let errors =
        record_from_csv("activity_held", 3, &["event_id"], &["x"]).expect_err("unknown version");
    assert_eq!(
        errors,
        [FieldError::of(
            Problem::UnknownVersion,
            "/schema_version",
            "unknown schema version for activity_held; known: 1"
        )]
    );
    let errors = csv("activity_held", &["schema_version"], &["2"]).expect_err("unknown version");
    assert_eq!(fields(&errors), ["/schema_version"]);
    let errors = record_from_csv("activity_held", 1, &["event_id", "hub_id"], &["x"])
        .expect_err("short row");
    assert_eq!(fields(&errors), ["/"]);
}

#[test]
fn csv_headers_may_carry_a_bom_and_spaces() {
    let record = record_from_csv(
        "consent_withdrawn",
        1,
        &[
            "\u{feff}event_id",
            " hub_id ",
            "occurred_at",
            "sent_at",
            "participant_ref",
        ],
        &[
            "0f1a2b3c-4d5e-4f6a-9b7c-8d9e0f1a2b3c",
            "newtechpark",
            "2025-02-10T10:00:00+01:00",
            "2025-02-10T10:00:00+01:00",
            "P-1",
        ],
    )
    .expect("coerces");
    assert!(validate_event(&record).is_ok());
}

#[test]
fn csv_missing_fields_are_left_to_validation() {
    // sent_at has no default: a feed without it fails validation at /sent_at.
    let record = record_from_csv(
        "consent_withdrawn",
        1,
        &["event_id", "hub_id", "occurred_at", "participant_ref"],
        &[
            "0f1a2b3c-4d5e-4f6a-9b7c-8d9e0f1a2b3c",
            "newtechpark",
            "2025-02-10T10:00:00+01:00",
            "P-1",
        ],
    )
    .expect("coerces");
    assert_eq!(fields(&errors_of(&record)), ["/sent_at"]);
}

#[test]
fn every_form_the_schema_accepts_can_be_read() {
    // What the validator accepts, serde must read too, or the record ends in an internal error.
    for time in [
        "2024-10-03T09:30:00Z",
        "2024-10-03t09:30:00z",
        "2024-10-03T09:30:00.123456789+02:00",
        "2024-10-03T09:30:00-00:00",
        "2024-12-31T23:59:60Z",
    ] {
        let mut record = example(EventKind::ConsentWithdrawn);
        set(&mut record, "/occurred_at", Some(json!(time)));
        assert!(validate_event(&record).is_ok(), "{time}");
    }
    for id in [
        "0F1A2B3C-4D5E-4F6A-9B7C-8D9E0F1A2B3C",
        "{0f1a2b3c-4d5e-4f6a-9b7c-8d9e0f1a2b3c}",
        "0f1a2b3c4d5e4f6a9b7c8d9e0f1a2b3c",
    ] {
        let mut record = example(EventKind::ConsentWithdrawn);
        set(&mut record, "/event_id", Some(json!(id)));
        let event = validate_event(&record).unwrap_or_else(|e| panic!("{id}: {e:?}"));
        assert_eq!(
            event.event_id.to_string(),
            "0f1a2b3c-4d5e-4f6a-9b7c-8d9e0f1a2b3c"
        );
    }
    let mut record = example(EventKind::GroupParticipated);
    set(
        &mut record,
        "/payload/participants",
        Some(json!({"girls": 1_000_000, "boys": 0})),
    );
    set(
        &mut record,
        "/payload/accompanying_teachers",
        Some(json!(1_000_000)),
    );
    assert!(validate_event(&record).is_ok());
    set(
        &mut record,
        "/payload/participants",
        Some(json!({"girls": 5_000_000_000_u64, "boys": 0})),
    );
    assert_eq!(fields(&errors_of(&record)), ["/payload/participants/girls"]);
}
