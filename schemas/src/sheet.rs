//! Plain sheets: rows as a hub coordinator keeps them, without the envelope. What a
//! row leaves out is filled in from where it is known: the hub from the token, the
//! schema version as the current one, `sent_at` as the time of receipt, `occurred_at`
//! from the kind's date, and `event_id` from the kind's natural key (UUID version 5),
//! so that the same sheet sent again is answered with duplicates, not counted twice.
//! Dates and times are read as Dutch spreadsheets write them (`3-10-2024`,
//! `03-10-2024 09:00`, Excel's serial numbers), in Europe/Amsterdam.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Europe::Amsterdam;
use serde_json::Value;
use uuid::Uuid;

use crate::EventKind;

/// The namespace of the event ids techmon derives (UUID version 5).
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x446160ef_77b9_4379_ab15_a56c83d66311);

/// What a row is known by, per kind: the fields (JSON Pointers) that say which
/// activity, class, person or organisation it is about. The same values again are the
/// same event. Documented in docs/hubs.md ("Plain sheets").
pub fn natural_key(kind: EventKind) -> &'static [&'static str] {
    match kind {
        EventKind::ActivityHeld => &["/payload/activity_id"],
        EventKind::GroupParticipated => &[
            "/payload/activity_id",
            "/payload/school_brin6",
            "/payload/sector",
            "/payload/groep",
            "/payload/leerjaar",
            "/payload/onderwijstype",
        ],
        EventKind::ParticipantRegistered => &["/payload/participant_ref"],
        EventKind::ParticipantAttended => &["/payload/activity_id", "/payload/participant_ref"],
        // An anonymous answer (no participant_ref) is known by what it says too, and
        // by how many the same came before it in the sheet (see `derived_event_id`).
        EventKind::SurveyAnswered => &[
            "/payload/activity_id",
            "/payload/respondent_role",
            "/payload/participant_ref",
        ],
        EventKind::ProfileChosen => &[
            "/payload/school_brin6",
            "/payload/school_year",
            "/payload/leerjaar",
            "/payload/onderwijstype",
            "/payload/profile_code",
            "/payload/participant_ref",
        ],
        // A partner may join, leave and join again: each on its day.
        EventKind::PartnerJoined | EventKind::PartnerLeft => {
            &["/payload/partner_id", "/occurred_at"]
        }
        EventKind::AmbassadorCommitted => &["/payload/ambassador_ref"],
        EventKind::TrajectoryStarted | EventKind::TrajectoryEnded => &["/payload/trajectory_id"],
        EventKind::ConsentWithdrawn => &["/payload/participant_ref"],
    }
}

/// Where a plain row came from: the hub whose token sent it, and when.
#[derive(Debug, Clone, Copy)]
pub struct Receipt<'a> {
    pub hub_id: &'a str,
    pub received_at: DateTime<Utc>,
    /// How many rows the same as this one came before it in the sheet: two pupils
    /// may give the same anonymous answer, and are two answers.
    pub repeat: usize,
}

/// Fills in what a plain row of `kind` left out of its envelope (see the module).
/// A row that names them keeps its own.
pub fn complete(kind: EventKind, record: &mut Value, receipt: &Receipt) {
    let Some(fields) = record.as_object_mut() else {
        return;
    };
    fields
        .entry("hub_id")
        .or_insert_with(|| Value::from(receipt.hub_id));
    fields.entry("sent_at").or_insert_with(|| {
        Value::from(
            receipt
                .received_at
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        )
    });
    // An activity happens when it starts.
    if kind == EventKind::ActivityHeld
        && !fields.contains_key("occurred_at")
        && let Some(starts_at) = record.pointer("/payload/starts_at").cloned()
        && let Some(fields) = record.as_object_mut()
    {
        fields.insert("occurred_at".into(), starts_at);
    }
    if record.get("event_id").is_none() {
        let id = derived_event_id(kind, record, receipt);
        if let Some(fields) = record.as_object_mut() {
            fields.insert("event_id".into(), Value::from(id.to_string()));
        }
    }
}

/// What else an anonymous survey answer is known by: what it says. With how many the
/// same came before it, a sheet sent again in another order, or in parts, gives the
/// same ids.
const ANONYMOUS_ANSWER: &[&str] = &["/payload/score", "/payload/scale_max", "/payload/comment"];

/// The event id of a row without one: UUID version 5 of the hub, the kind and the
/// values of the kind's natural key (for an anonymous survey answer also what it
/// says and its repeat).
fn derived_event_id(kind: EventKind, record: &Value, receipt: &Receipt) -> Uuid {
    let anonymous =
        kind == EventKind::SurveyAnswered && record.pointer("/payload/participant_ref").is_none();
    let extra = if anonymous { ANONYMOUS_ANSWER } else { &[] };
    let mut name = format!("{}\u{1f}{}", receipt.hub_id, kind.as_str());
    for pointer in natural_key(kind).iter().chain(extra) {
        name.push('\u{1f}');
        match record.pointer(pointer) {
            Some(Value::String(text)) => name.push_str(text),
            Some(Value::Null) | None => {}
            Some(value) => name.push_str(&value.to_string()),
        }
    }
    if anonymous {
        name.push_str(&format!("\u{1f}{}", receipt.repeat));
    }
    Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
}

/// The days from Excel's day 0 (30 December 1899, as Excel counts) to 1 January 1970.
const EXCEL_UNIX_EPOCH: f64 = 25_569.0;

/// A time as a spreadsheet writes it, in Europe/Amsterdam, as RFC 3339 with its
/// offset: `3-10-2024`, `03-10-2024 09:00`, `3/10/2024 9:00:30`, `2024-10-03 09:00`,
/// or an Excel serial number (`45568.375`). A day without a time is its start.
pub fn spreadsheet_time(cell: &str) -> Option<String> {
    let local = excel_serial(cell).or_else(|| dutch_date_time(cell))?;
    // A time that the clock skips in spring is read as after the change; one it
    // passes twice in autumn, as the first.
    let time = Amsterdam
        .from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            Amsterdam
                .from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })?;
    Some(time.to_rfc3339_opts(SecondsFormat::Secs, false))
}

/// A date as a spreadsheet writes it (`3-10-2024`, `03/10/2024`, `2024-10-03`, or an
/// Excel serial number), as `YYYY-MM-DD`.
pub fn spreadsheet_date(cell: &str) -> Option<String> {
    let date = excel_serial(cell)
        .map(|t| t.date())
        .or_else(|| dutch_date(cell))?;
    Some(date.format("%Y-%m-%d").to_string())
}

fn excel_serial(cell: &str) -> Option<NaiveDateTime> {
    let days: f64 = cell.trim().parse().ok()?;
    // Excel's dates from 1 March 1900 (serial 61) to the year 9999.
    if !(61.0..2_958_466.0).contains(&days) {
        return None;
    }
    let seconds = ((days - EXCEL_UNIX_EPOCH) * 86_400.0).round() as i64;
    DateTime::from_timestamp(seconds, 0).map(|t| t.naive_utc())
}

/// `d-m-yyyy`, `d/m/yyyy` or `yyyy-mm-dd`.
fn dutch_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    ["%d-%m-%Y", "%d/%m/%Y", "%Y-%m-%d", "%d.%m.%Y"]
        .iter()
        .find_map(|format| NaiveDate::parse_from_str(text, format).ok())
}

/// A date, optionally followed by a time of day (`9:00`, `09:00:30`, or ISO's `T`).
fn dutch_date_time(cell: &str) -> Option<NaiveDateTime> {
    let cell = cell.trim();
    let (date, time) = match cell.split_once([' ', 'T']) {
        Some((date, time)) => (date, Some(time.trim())),
        None => (cell, None),
    };
    let date = dutch_date(date)?;
    let time = match time {
        None => NaiveTime::MIN,
        Some(time) => ["%H:%M:%S", "%H:%M"]
            .iter()
            .find_map(|format| NaiveTime::parse_from_str(time, format).ok())?,
    };
    Some(date.and_time(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dutch_dates_and_excel_serials_are_the_same_times_in_amsterdam() {
        // Summer time (UTC+2), winter time (UTC+1).
        for (cell, time) in [
            ("3-10-2024", "2024-10-03T00:00:00+02:00"),
            ("03-10-2024 09:00", "2024-10-03T09:00:00+02:00"),
            ("3/10/2024 9:00:30", "2024-10-03T09:00:30+02:00"),
            ("2024-10-03 09:00", "2024-10-03T09:00:00+02:00"),
            ("45568.375", "2024-10-03T09:00:00+02:00"),
            ("45568", "2024-10-03T00:00:00+02:00"),
            ("5-11-2024 13:30", "2024-11-05T13:30:00+01:00"),
            ("45601.5625", "2024-11-05T13:30:00+01:00"),
            // 02:30 on 31 March 2024 does not exist there: the clock went to 03:00.
            ("31-3-2024 2:30", "2024-03-31T03:30:00+02:00"),
        ] {
            assert_eq!(spreadsheet_time(cell).as_deref(), Some(time), "{cell}");
        }
        for cell in [
            "",
            "soon",
            "32-1-2024",
            "3-10-24x",
            "12",
            "2024-10-03 25:00",
        ] {
            assert_eq!(spreadsheet_time(cell), None, "{cell}");
        }
        assert_eq!(spreadsheet_date("3-10-2009").as_deref(), Some("2009-10-03"));
        assert_eq!(spreadsheet_date("40089").as_deref(), Some("2009-10-03"));
    }

    fn receipt(hub_id: &str) -> Receipt<'_> {
        Receipt {
            hub_id,
            received_at: Utc
                .with_ymd_and_hms(2024, 10, 8, 14, 0, 0)
                .single()
                .expect("a time"),
            repeat: 0,
        }
    }

    #[test]
    fn a_plain_row_gets_its_envelope_and_the_same_row_the_same_id() {
        let row = |girls: u32| {
            serde_json::json!({
                "event_type": "group_participated", "schema_version": 1,
                "occurred_at": "2024-10-03T00:00:00+02:00",
                "payload": {"activity_id": "act-1", "school_brin6": "12AB00", "sector": "PO",
                            "groep": 7, "school_year": "2024/25",
                            "participants": {"girls": girls, "boys": 14}}
            })
        };
        let (mut first, mut again, mut other_hub) = (row(12), row(12), row(12));
        complete(
            EventKind::GroupParticipated,
            &mut first,
            &receipt("tec-deventer"),
        );
        complete(
            EventKind::GroupParticipated,
            &mut again,
            &receipt("tec-deventer"),
        );
        complete(
            EventKind::GroupParticipated,
            &mut other_hub,
            &receipt("tec-hengelo"),
        );
        assert_eq!(first["hub_id"], "tec-deventer");
        assert_eq!(first["sent_at"], "2024-10-08T14:00:00Z");
        assert_eq!(first["event_id"], again["event_id"]);
        assert_ne!(first["event_id"], other_hub["event_id"]);
        // The known answer: the hub, the kind and the key's values, joined by U+001F.
        let expected = Uuid::new_v5(
            &EVENT_ID_NAMESPACE,
            "tec-deventer\u{1f}group_participated\u{1f}act-1\u{1f}12AB00\u{1f}PO\u{1f}7\u{1f}\u{1f}"
                .as_bytes(),
        );
        assert_eq!(first["event_id"], expected.to_string());
        let id = Uuid::parse_str(first["event_id"].as_str().unwrap_or_default()).expect("a UUID");
        assert_eq!(id.get_version_num(), 5);
        crate::validate_event(&first).expect("a valid event");

        // What the row names, it keeps.
        let mut named = row(12);
        named["event_id"] = "c0b98e61-4497-4f48-8d15-510d8a4e624f".into();
        complete(
            EventKind::GroupParticipated,
            &mut named,
            &receipt("tec-deventer"),
        );
        assert_eq!(named["event_id"], "c0b98e61-4497-4f48-8d15-510d8a4e624f");
    }

    #[test]
    fn anonymous_answers_that_say_the_same_are_told_apart_by_their_repeat() {
        let answer = |score: f64| {
            serde_json::json!({
                "event_type": "survey_answered", "schema_version": 1,
                "occurred_at": "2024-10-08T12:05:00+02:00",
                "payload": {"activity_id": "act-1", "respondent_role": "pupil", "score": score,
                            "scale_max": 5}
            })
        };
        let id = |score: f64, repeat: usize| {
            let mut row = answer(score);
            let receipt = Receipt {
                repeat,
                ..receipt("tec-deventer")
            };
            complete(EventKind::SurveyAnswered, &mut row, &receipt);
            row["event_id"].clone()
        };
        assert_eq!(id(4.0, 0), id(4.0, 0));
        assert_ne!(id(4.0, 0), id(4.0, 1));
        assert_ne!(id(4.0, 0), id(3.0, 0));
        // A named answer is known by its person: the same again is a duplicate.
        let named = |repeat: usize| {
            let mut row = answer(4.0);
            row["payload"]["participant_ref"] = "TEC-P-000101".into();
            let receipt = Receipt {
                repeat,
                ..receipt("tec-deventer")
            };
            complete(EventKind::SurveyAnswered, &mut row, &receipt);
            row["event_id"].clone()
        };
        assert_eq!(named(0), named(1));
    }

    #[test]
    fn an_activity_happens_when_it_starts() {
        let mut row = serde_json::json!({
            "event_type": "activity_held", "schema_version": 1,
            "payload": {"activity_id": "act-1", "activity_type": "workshop", "title": "Solderen",
                        "starts_at": "2024-11-05T13:00:00+01:00", "ends_at": "2024-11-05T15:00:00+01:00",
                        "worlds": [6], "target_groups": ["vo"]}
        });
        complete(EventKind::ActivityHeld, &mut row, &receipt("tec-deventer"));
        assert_eq!(row["occurred_at"], "2024-11-05T13:00:00+01:00");
        crate::validate_event(&row).expect("a valid event");
    }
}
