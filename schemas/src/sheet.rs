//! Plain sheets: rows as a hub coordinator keeps them, without the envelope. What a
//! row leaves out is filled in from where it is known: the hub from the token, the
//! schema version as the current one, `sent_at` as the time of receipt, and
//! `occurred_at` from the kind's date. A row without its own `event_id` is known by
//! its kind's natural key: the same row sent again saying the same is a duplicate,
//! and saying something else a correction, a new version of the row that names the
//! one it replaces. Its event id is derived (UUID version 5) from the row, what it
//! says and the version it replaces, so a version sent twice is the same event.
//! Dates and times are read as Dutch spreadsheets write them (`3-10-2024`,
//! `03-10-2024 09:00`, Excel's serial numbers), in Europe/Amsterdam.

use chrono::{
    DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone, Timelike, Utc,
};
use chrono_tz::Europe::Amsterdam;
use serde_json::Value;
use uuid::Uuid;

use crate::EventKind;

/// The namespace of the row keys, digests and event ids techmon derives (UUID
/// version 5).
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x446160ef_77b9_4379_ab15_a56c83d66311);

/// What a row is known by, per kind: the fields (JSON Pointers) that say which
/// activity, class, person or organisation it is about. The same values again are the
/// same row. Documented in docs/hubs.md ("Plain sheets").
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
        // by how many the same came before it in the sheet (see `row_key`).
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
    /// How many anonymous answers with the same key came before this one in the
    /// sheet: two pupils may give the same answer, and are two answers.
    pub repeat: usize,
}

/// Fills in what a plain row of `kind` left out of its envelope (see the module).
/// A row that names them keeps its own. Returns the row's key when the row names no
/// `event_id`: it gets one with [`identify`] once the row's latest version is known.
pub fn complete(kind: EventKind, record: &mut Value, receipt: &Receipt) -> Option<Uuid> {
    let fields = record.as_object_mut()?;
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
    record
        .get("event_id")
        .is_none()
        .then(|| row_key(kind, record, receipt))
}

/// What a row says, as a digest: the row without its ids and the time it was sent,
/// serialised with its fields in name order (serde_json's maps are sorted).
pub fn content_digest(record: &Value) -> Uuid {
    let mut says = record.clone();
    if let Some(fields) = says.as_object_mut() {
        for field in ["event_id", "replaces", "sent_at"] {
            fields.remove(field);
        }
    }
    Uuid::new_v5(&EVENT_ID_NAMESPACE, says.to_string().as_bytes())
}

/// What a version's event id is made from: the row, what it says, and the version it
/// replaces (so a row that goes back to what it said before is a new version).
pub fn version_name(row: Uuid, digest: Uuid, replaces: Option<Uuid>) -> [u8; 48] {
    let mut name = [0; 48];
    name[..16].copy_from_slice(row.as_bytes());
    name[16..32].copy_from_slice(digest.as_bytes());
    name[32..].copy_from_slice(replaces.unwrap_or_default().as_bytes());
    name
}

/// The event id of a version: UUID version 5 of its [`version_name`].
pub fn version_event_id(name: &[u8; 48]) -> Uuid {
    Uuid::new_v5(&EVENT_ID_NAMESPACE, name)
}

/// Gives a plain row its event id, and the version it replaces.
pub fn identify(record: &mut Value, event_id: Uuid, replaces: Option<Uuid>) {
    if let Some(fields) = record.as_object_mut() {
        fields.insert("event_id".into(), Value::from(event_id.to_string()));
        match replaces {
            Some(earlier) => fields.insert("replaces".into(), Value::from(earlier.to_string())),
            None => fields.remove("replaces"),
        };
    }
}

/// Whether `record` is an anonymous survey answer: known by what it says and by how
/// many with the same key came before it in the sheet (its [`Receipt::repeat`]).
pub fn is_anonymous_answer(kind: EventKind, record: &Value) -> bool {
    kind == EventKind::SurveyAnswered && record.pointer("/payload/participant_ref").is_none()
}

/// What else an anonymous survey answer is known by: what it says. With how many the
/// same came before it, a sheet sent again in another order, or in parts, gives the
/// same ids.
const ANONYMOUS_ANSWER: &[&str] = &["/payload/score", "/payload/scale_max", "/payload/comment"];

/// The key of a row without an event id: UUID version 5 of the hub, the kind and the
/// values of the kind's natural key (for an anonymous survey answer also what it
/// says and its repeat).
fn row_key(kind: EventKind, record: &Value, receipt: &Receipt) -> Uuid {
    let anonymous = is_anonymous_answer(kind, record);
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

/// The serial number a spreadsheet stores for a time or date written as
/// [`spreadsheet_time`] reads it (the time of day as the fraction): what a workbook
/// holds in a date cell.
pub fn spreadsheet_serial(cell: &str) -> Option<f64> {
    let local = dutch_date_time(cell)?;
    let since_epoch = local.and_utc().timestamp() as f64 / 86_400.0;
    Some(since_epoch + EXCEL_UNIX_EPOCH)
}

/// A spreadsheet's serial number written as a Dutch spreadsheet shows it: a day as
/// `3-10-2024`, a time of day as `3-10-2024 09:00` (with seconds when it has them).
pub fn serial_text(serial: f64) -> Option<String> {
    let time = excel_serial(&serial.to_string())?;
    let format = if time.time() == NaiveTime::MIN {
        "%-d-%-m-%Y"
    } else if time.second() == 0 {
        "%-d-%-m-%Y %H:%M"
    } else {
        "%-d-%-m-%Y %H:%M:%S"
    };
    Some(time.format(format).to_string())
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
        assert_eq!(serial_text(45568.375).as_deref(), Some("3-10-2024 09:00"));
        assert_eq!(serial_text(45568.0).as_deref(), Some("3-10-2024"));
        assert_eq!(
            spreadsheet_time(&serial_text(45601.5625).expect("a time")),
            spreadsheet_time("45601.5625")
        );
        // The serial a workbook stores reads back as the same time.
        assert_eq!(spreadsheet_serial("03-10-2024 09:00"), Some(45568.375));
        for cell in ["3-10-2024", "5-11-2024 13:30", "31-12-1999 23:59:59"] {
            let serial = spreadsheet_serial(cell).expect("a serial").to_string();
            assert_eq!(spreadsheet_time(&serial), spreadsheet_time(cell), "{cell}");
        }
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
    fn a_plain_row_gets_its_envelope_and_the_same_row_the_same_key() {
        let row = |girls: u32| {
            serde_json::json!({
                "event_type": "group_participated", "schema_version": 1,
                "occurred_at": "2024-10-03T00:00:00+02:00",
                "payload": {"activity_id": "act-1", "school_brin6": "12AB00", "sector": "PO",
                            "groep": 7, "school_year": "2024/25",
                            "participants": {"girls": girls, "boys": 14}}
            })
        };
        let complete_for = |hub: &str, girls: u32| {
            let mut record = row(girls);
            let key = complete(EventKind::GroupParticipated, &mut record, &receipt(hub));
            (key.expect("a plain row has a key"), record)
        };
        let (key, first) = complete_for("tec-deventer", 12);
        assert_eq!(first["hub_id"], "tec-deventer");
        assert_eq!(first["sent_at"], "2024-10-08T14:00:00Z");
        assert!(
            first.get("event_id").is_none(),
            "given once its version is known"
        );
        assert_eq!(complete_for("tec-deventer", 12).0, key);
        assert_ne!(complete_for("tec-hengelo", 12).0, key);
        // The known answer: the hub, the kind and the key's values, joined by U+001F.
        let expected = Uuid::new_v5(
            &EVENT_ID_NAMESPACE,
            "tec-deventer\u{1f}group_participated\u{1f}act-1\u{1f}12AB00\u{1f}PO\u{1f}7\u{1f}\u{1f}"
                .as_bytes(),
        );
        assert_eq!(key, expected);

        // Other numbers: the same row saying something else.
        let (corrected_key, corrected) = complete_for("tec-deventer", 13);
        assert_eq!(corrected_key, key);
        assert_ne!(content_digest(&corrected), content_digest(&first));
        // What it says, whatever the order of its fields and whenever it was sent.
        let mut reordered: serde_json::Map<String, Value> = serde_json::Map::new();
        for (field, value) in first.as_object().expect("an object").iter().rev() {
            reordered.insert(field.clone(), value.clone());
        }
        let mut later = Value::Object(reordered);
        later["sent_at"] = "2024-12-01T10:00:00Z".into();
        assert_eq!(content_digest(&later), content_digest(&first));

        // A row going back to what it said before is a version of its own.
        let (a, b) = (content_digest(&first), content_digest(&corrected));
        let v1 = version_event_id(&version_name(key, a, None));
        let v2 = version_event_id(&version_name(key, b, Some(v1)));
        let v3 = version_event_id(&version_name(key, a, Some(v2)));
        assert_eq!(v1.get_version_num(), 5);
        assert!(v1 != v2 && v2 != v3 && v1 != v3);
        let mut identified = first.clone();
        identify(&mut identified, v3, Some(v2));
        let event = crate::validate_event(&identified).expect("a valid event");
        assert_eq!((event.event_id, event.replaces), (v3, Some(v2)));

        // What the row names, it keeps, and it has no key.
        let mut named = row(12);
        named["event_id"] = "c0b98e61-4497-4f48-8d15-510d8a4e624f".into();
        let key = complete(
            EventKind::GroupParticipated,
            &mut named,
            &receipt("tec-deventer"),
        );
        assert_eq!(key, None);
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
        let key = |mut row: Value, repeat: usize| {
            let receipt = Receipt {
                repeat,
                ..receipt("tec-deventer")
            };
            complete(EventKind::SurveyAnswered, &mut row, &receipt)
        };
        assert_eq!(key(answer(4.0), 0), key(answer(4.0), 0));
        assert_ne!(key(answer(4.0), 0), key(answer(4.0), 1));
        assert_ne!(key(answer(4.0), 0), key(answer(3.0), 0));
        // A named answer is known by its person: the same again is the same row.
        let named = |score: f64, repeat: usize| {
            let mut row = answer(score);
            row["payload"]["participant_ref"] = "TEC-P-000101".into();
            key(row, repeat)
        };
        assert_eq!(named(4.0, 0), named(4.0, 1));
        assert_eq!(
            named(4.0, 0),
            named(3.0, 0),
            "another score corrects the answer"
        );
    }

    #[test]
    fn an_activity_happens_when_it_starts() {
        let mut row = serde_json::json!({
            "event_type": "activity_held", "schema_version": 1,
            "payload": {"activity_id": "act-1", "activity_type": "workshop", "title": "Solderen",
                        "starts_at": "2024-11-05T13:00:00+01:00", "ends_at": "2024-11-05T15:00:00+01:00",
                        "worlds": [6], "target_groups": ["vo"]}
        });
        let key = complete(EventKind::ActivityHeld, &mut row, &receipt("tec-deventer"));
        assert_eq!(row["occurred_at"], "2024-11-05T13:00:00+01:00");
        identify(&mut row, key.expect("a key"), None);
        crate::validate_event(&row).expect("a valid event");
    }
}
