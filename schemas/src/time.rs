//! RFC 3339 times. Every event carries at least two, each checked by the schema and
//! read again into the event, so the common shape is parsed by hand: chrono's
//! parser was a few per cent of the transform. Anything else goes to chrono, which
//! decides.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use serde::Deserialize;

/// An RFC 3339 time, as `chrono::DateTime::parse_from_rfc3339` reads it.
pub fn parse_rfc3339(s: &str) -> Option<DateTime<FixedOffset>> {
    common_shape(s).or_else(|| DateTime::parse_from_rfc3339(s).ok())
}

/// Whether [`parse_rfc3339`] reads `s`, without making the time: the schema checks
/// every time of every event before the event is read.
pub fn is_rfc3339(s: &str) -> bool {
    CommonShape::read(s.as_bytes()).is_some() || DateTime::parse_from_rfc3339(s).is_ok()
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with a valid date and time and no
/// leap second; `None` for anything else, which chrono then reads.
fn common_shape(s: &str) -> Option<DateTime<FixedOffset>> {
    let time = CommonShape::read(s.as_bytes())?;
    // Cannot fail: the parts are in range, and any offset under a day is one.
    let clock = NaiveTime::from_hms_nano_opt(time.hour, time.minute, time.second, time.nanos)?;
    FixedOffset::east_opt(time.offset_seconds)?
        .from_local_datetime(&time.date.and_time(clock))
        .single()
}

/// The parts of a time of the common shape, each in range.
struct CommonShape {
    date: NaiveDate,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    offset_seconds: i32,
}

impl CommonShape {
    fn read(b: &[u8]) -> Option<Self> {
        if b.len() < 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let date = date_prefix(b)?;
        let two = |i: usize| two_digits(b[i], b[i + 1]);
        let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
        let mut rest = &b[19..];
        let mut nanos = 0;
        if let [b'.', fraction @ ..] = rest {
            let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            // Digits beyond nanoseconds are read and dropped, as chrono does.
            let mut scale = 100_000_000;
            for c in &fraction[..digits] {
                nanos += u32::from(c - b'0') * scale;
                scale /= 10;
            }
            rest = &fraction[digits..];
        }
        let offset_seconds = match rest {
            [b'Z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let (hours, minutes) = (two_digits(*h1, *h2)?, two_digits(*m1, *m2)?);
                if hours > 23 || minutes > 59 {
                    return None;
                }
                let seconds = i32::try_from(hours * 3600 + minutes * 60).ok()?;
                if *sign == b'-' { -seconds } else { seconds }
            }
            _ => return None,
        };
        (hour < 24 && minute < 60 && second < 60).then_some(Self {
            date,
            hour,
            minute,
            second,
            nanos,
            offset_seconds,
        })
    }
}

/// The day `YYYY-MM-DD` at the start of `b`, if it exists.
pub(crate) fn date_prefix(b: &[u8]) -> Option<NaiveDate> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let two = |i: usize| two_digits(b[i], b[i + 1]);
    let year = i32::try_from(two(0)? * 100 + two(2)?).ok()?;
    NaiveDate::from_ymd_opt(year, two(5)?, two(8)?)
}

/// Two ASCII digits as a number.
fn two_digits(tens: u8, units: u8) -> Option<u32> {
    let digit = |c: u8| {
        let d = c.wrapping_sub(b'0');
        (d < 10).then_some(u32::from(d))
    };
    Some(digit(tens)? * 10 + digit(units)?)
}

/// Reads a time field of an event with [`parse_rfc3339`].
pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<FixedOffset>, D::Error> {
    Rfc3339::deserialize(deserializer).map(|t| t.0)
}

/// A time field, for visitors that read one with `next_value`.
pub(crate) struct Rfc3339(pub DateTime<FixedOffset>);

impl<'de> Deserialize<'de> for Rfc3339 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Rfc3339;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an RFC 3339 time")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Rfc3339, E> {
                parse_rfc3339(s)
                    .map(Rfc3339)
                    .ok_or_else(|| E::custom("not an RFC 3339 time"))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_shape_reads_as_chrono_reads_it_and_the_rest_is_left_to_chrono() {
        let times = [
            "2024-10-03T09:30:00+02:00",
            "2024-10-03T09:30:00Z",
            "2024-10-03T09:30:00-05:30",
            "2024-10-03T09:30:00.5+02:00",
            "2024-10-03T09:30:00.123456789Z",
            "2024-10-03T09:30:00.1234567891234Z",
            "2024-02-29T23:59:59-00:00",
            "0001-01-01T00:00:00+23:59",
        ];
        for time in times {
            let chrono = DateTime::parse_from_rfc3339(time).ok();
            assert!(chrono.is_some(), "{time}");
            assert_eq!(common_shape(time), chrono, "{time}");
            assert_eq!(parse_rfc3339(time), chrono, "{time}");
            assert!(is_rfc3339(time), "{time}");
        }
        // Valid RFC 3339 that only chrono reads; and times nobody reads.
        for (time, valid) in [
            ("2024-10-03t09:30:00+02:00", true),
            ("2024-10-03 09:30:00+02:00", true),
            ("2016-12-31T23:59:60Z", true),
            ("2023-02-29T09:30:00+02:00", false),
            ("2024-10-03T24:00:00+02:00", false),
            ("2024-10-03T09:60:00+02:00", false),
            ("2024-10-03T09:30:00+24:00", false),
            ("2024-10-03T09:30:00.+02:00", false),
            ("2024-10-03T09:30:00+0200", false),
            ("2024-10-03T09:30:00", false),
            ("2024-10-03T09:3a:00Z", false),
            ("２０２４-10-03T09:30:00Z", false),
        ] {
            assert_eq!(common_shape(time), None, "{time}");
            let chrono = DateTime::parse_from_rfc3339(time).ok();
            assert_eq!(chrono.is_some(), valid, "{time}");
            assert_eq!(parse_rfc3339(time), chrono, "{time}");
            assert_eq!(is_rfc3339(time), valid, "{time}");
        }
    }
}

/// The calendar date in the Netherlands (Europe/Amsterdam) at `time`, whatever
/// offset it was sent with: `2024-07-31T22:30:00Z` is 1 August there. The offset is
/// the EU's: UTC+2 from 01:00 UTC on the last Sunday of March to 01:00 UTC on the
/// last Sunday of October, else UTC+1 (the rule since 1996).
pub fn dutch_date<Zone: TimeZone>(time: &DateTime<Zone>) -> NaiveDate {
    let utc = time.with_timezone(&Utc);
    let year = utc.year();
    let summer_starts = last_sunday_at_one_utc(year, 3);
    let summer_ends = last_sunday_at_one_utc(year, 10);
    let hours = if (summer_starts..summer_ends).contains(&utc) {
        2
    } else {
        1
    };
    (utc + chrono::Duration::hours(hours)).date_naive()
}

/// 01:00 UTC on the last Sunday of `month` (March or October) of `year`.
fn last_sunday_at_one_utc(year: i32, month: u32) -> DateTime<Utc> {
    // Both months have 31 days.
    let last = NaiveDate::from_ymd_opt(year, month, 31).unwrap_or_default();
    let back = last.weekday().num_days_from_sunday();
    let sunday = last - chrono::Duration::days(i64::from(back));
    debug_assert_eq!(sunday.weekday(), Weekday::Sun);
    Utc.from_utc_datetime(&sunday.and_hms_opt(1, 0, 0).unwrap_or_default())
}

#[cfg(test)]
mod dutch_date_tests {
    use super::*;

    fn at(s: &str) -> NaiveDate {
        dutch_date(&parse_rfc3339(s).expect("a time"))
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("a date")
    }

    #[test]
    fn the_date_in_the_netherlands_whatever_the_offset() {
        // Summer time (UTC+2): 22:30 UTC on 31 July is 00:30 on 1 August.
        assert_eq!(at("2024-07-31T22:30:00Z"), d(2024, 8, 1));
        assert_eq!(at("2024-07-31T21:59:59Z"), d(2024, 7, 31));
        assert_eq!(at("2024-07-31T23:30:00-05:00"), d(2024, 8, 1));
        // Winter time (UTC+1).
        assert_eq!(at("2024-12-31T23:00:00Z"), d(2025, 1, 1));
        assert_eq!(at("2024-12-31T22:59:59Z"), d(2024, 12, 31));
        // The switches of 2024: 31 March and 27 October, at 01:00 UTC.
        assert_eq!(at("2024-03-31T00:59:59Z"), d(2024, 3, 31));
        assert_eq!(at("2024-03-31T22:00:00Z"), d(2024, 4, 1));
        assert_eq!(at("2024-10-27T22:59:59Z"), d(2024, 10, 27));
        assert_eq!(at("2024-10-27T23:00:00Z"), d(2024, 10, 28));
        assert_eq!(at("2024-10-26T22:00:00Z"), d(2024, 10, 27));
        // An offset already Dutch changes nothing.
        assert_eq!(at("2024-08-01T00:30:00+02:00"), d(2024, 8, 1));
    }
}
