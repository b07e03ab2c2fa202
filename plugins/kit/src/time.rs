//! Exact RFC 3339 `date-time` parsing (§5.6), normalized to UTC.
//!
//! ```text
//! date-time = full-date "T" full-time
//! full-date = 4DIGIT "-" 2DIGIT "-" 2DIGIT          ; month 01-12, day valid for month/year
//! full-time = 2DIGIT ":" 2DIGIT ":" 2DIGIT ["." 1*DIGIT] ("Z" / ("+" / "-") 2DIGIT ":" 2DIGIT)
//! ```
//!
//! Decisions where the RFC leaves a choice:
//! * `T` and `Z` may be lower case (`t`, `z`): the RFC's note in §5.6 allows it, and ABNF
//!   literals are case-insensitive. The space separator the note also mentions is **not**
//!   accepted (it is not part of the grammar).
//! * Hours 00–23, minutes 00–59, seconds 00–59; a leap second `60` is accepted only when the
//!   instant is 23:59:60 in UTC (where leap seconds happen) and, as in Unix time, it maps to
//!   the following second (`…T23:59:60.5Z` = next day `00:00:00.5Z`).
//! * Offsets: hours 00–23, minutes 00–59; `-00:00` (unknown local offset) is UTC.
//! * The fraction may have any number of digits; digits past nanoseconds are truncated.
//! * Years 0000–9999 (4 digits, as the grammar says); earlier than 1970 gives negative seconds.

use crate::Timestamp;

/// Parses an RFC 3339 date-time into a UTC [`Timestamp`], or says what is wrong with it.
pub fn parse_rfc3339(s: &str) -> Result<Timestamp, &'static str> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return Err("is not an RFC 3339 date-time (too short)");
    }
    let (year, month, day) = full_date(b)?;
    if b[10] != b'T' && b[10] != b't' {
        return Err("is not an RFC 3339 date-time (expected 'T' between date and time)");
    }
    let (hour, minute, second) = partial_time(b)?;
    let (nanos, after_fraction) = fraction(b, 19)?;
    let (offset_secs, end) = utc_offset(b, after_fraction)?;
    if end != b.len() {
        return Err("has trailing characters after the date-time");
    }

    let days = days_from_civil(i64::from(year), month, day);
    let local = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second.min(59));
    let mut seconds = local - offset_secs;
    if second == 60 {
        if seconds.rem_euclid(86_400) != 86_399 {
            return Err("has a leap second (60) that is not at 23:59:60 UTC");
        }
        seconds += 1;
    }
    Ok(Timestamp {
        seconds,
        nanoseconds: nanos,
    })
}

/// `YYYY-MM-DD` at the start: year, month and a day valid for that month.
fn full_date(b: &[u8]) -> Result<(u32, u32, u32), &'static str> {
    let year = digits(b, 0, 4).ok_or("has an invalid year")?;
    if b[4] != b'-' || b[7] != b'-' {
        return Err("is not an RFC 3339 date-time (expected YYYY-MM-DD)");
    }
    let month = digits(b, 5, 2).ok_or("has an invalid month")?;
    let day = digits(b, 8, 2).ok_or("has an invalid day")?;
    if !(1..=12).contains(&month) {
        return Err("has an invalid month (must be 01-12)");
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("has an invalid day for its month");
    }
    Ok((year, month, day))
}

/// `hh:mm:ss` at offset 11; the second may be a leap second (60).
fn partial_time(b: &[u8]) -> Result<(u32, u32, u32), &'static str> {
    if b[13] != b':' || b[16] != b':' {
        return Err("is not an RFC 3339 date-time (expected hh:mm:ss)");
    }
    let hour = digits(b, 11, 2).ok_or("has an invalid hour")?;
    let minute = digits(b, 14, 2).ok_or("has an invalid minute")?;
    let second = digits(b, 17, 2).ok_or("has an invalid second")?;
    if hour > 23 {
        return Err("has an invalid hour (must be 00-23)");
    }
    if minute > 59 {
        return Err("has an invalid minute (must be 00-59)");
    }
    if second > 60 {
        return Err("has an invalid second (must be 00-59, or 60 for a leap second)");
    }
    Ok((hour, minute, second))
}

/// An optional `.digits` at `i`: nanoseconds (digits past 9 truncated) and
/// the index after it.
fn fraction(b: &[u8], mut i: usize) -> Result<(u32, usize), &'static str> {
    let mut nanos: u32 = 0;
    if b.get(i) != Some(&b'.') {
        return Ok((nanos, i));
    }
    i += 1;
    let start = i;
    while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
        if i - start < 9 {
            nanos = nanos * 10 + u32::from(d - b'0');
        }
        i += 1;
    }
    if i == start {
        return Err("has an empty fraction of a second");
    }
    for _ in (i - start)..9 {
        nanos *= 10;
    }
    Ok((nanos, i))
}

/// `Z` or `±hh:mm` at `i`: the offset in seconds east of UTC and the index
/// after it.
fn utc_offset(b: &[u8], i: usize) -> Result<(i64, usize), &'static str> {
    match b.get(i) {
        Some(b'Z' | b'z') => Ok((0, i + 1)),
        Some(&sign @ (b'+' | b'-')) => {
            if b.len() < i + 6 || b[i + 3] != b':' {
                return Err("has an invalid UTC offset (expected +hh:mm or -hh:mm)");
            }
            let oh = digits(b, i + 1, 2).ok_or("has an invalid UTC offset")?;
            let om = digits(b, i + 4, 2).ok_or("has an invalid UTC offset")?;
            if oh > 23 || om > 59 {
                return Err("has an invalid UTC offset (hours 00-23, minutes 00-59)");
            }
            let off = i64::from(oh * 3600 + om * 60);
            Ok((if sign == b'-' { -off } else { off }, i + 6))
        }
        _ => Err("has no UTC offset (expected 'Z' or +hh:mm / -hh:mm)"),
    }
}

/// `n` ASCII digits at `b[at..at + n]` as a number.
fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let slice = b.get(at..at + n)?;
    slice.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> (i64, u32) {
        let t = parse_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        (t.seconds, t.nanoseconds)
    }

    #[test]
    fn utc_and_fractions() {
        assert_eq!(ts("1970-01-01T00:00:00Z"), (0, 0));
        assert_eq!(ts("2024-03-01T12:34:56.789Z"), (1_709_296_496, 789_000_000));
        assert_eq!(ts("2024-03-01T12:34:56.1Z"), (1_709_296_496, 100_000_000));
        assert_eq!(
            ts("2024-03-01T12:34:56.123456789Z"),
            (1_709_296_496, 123_456_789)
        );
        // digits beyond nanoseconds are truncated, not rounded
        assert_eq!(
            ts("2024-03-01T12:34:56.9999999999Z"),
            (1_709_296_496, 999_999_999)
        );
        assert_eq!(ts("1969-12-31T23:59:59.5Z"), (-1, 500_000_000));
        assert_eq!(ts("0000-01-01T00:00:00Z"), (-62_167_219_200, 0));
        assert_eq!(ts("9999-12-31T23:59:59Z"), (253_402_300_799, 0));
    }

    #[test]
    fn offsets_normalize_to_utc() {
        assert_eq!(ts("2024-03-01T14:34:56+02:00"), ts("2024-03-01T12:34:56Z"));
        assert_eq!(
            ts("2024-03-01T07:04:56.5-05:30"),
            ts("2024-03-01T12:34:56.5Z")
        );
        assert_eq!(ts("2024-03-01T00:30:00+01:00"), ts("2024-02-29T23:30:00Z"));
        assert_eq!(ts("2024-03-01T12:00:00-00:00"), ts("2024-03-01T12:00:00Z"));
        assert_eq!(ts("2024-03-01t12:00:00z"), ts("2024-03-01T12:00:00Z"));
    }

    #[test]
    fn calendar_rules() {
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_ok());
        assert!(parse_rfc3339("2000-02-29T00:00:00Z").is_ok());
        for bad in [
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2024-01-00T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:60:00Z",
            "2024-01-01T23:59:61Z",
            "2024-01-01T12:00:60Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn leap_second_at_end_of_utc_day() {
        assert_eq!(ts("2016-12-31T23:59:60Z"), ts("2017-01-01T00:00:00Z"));
        assert_eq!(
            ts("2017-01-01T00:59:60.25+01:00"),
            (1_483_228_800, 250_000_000)
        );
    }

    #[test]
    fn malformed() {
        for bad in [
            "invalid-timestamp",
            "",
            "2024-03-01",
            "2024-03-01T12:34:56",
            "2024-03-01 12:34:56Z",
            "2024-03-01T12:34:56.Z",
            "2024-03-01T12:34Z",
            "2024-3-01T12:34:56Z",
            "24-03-01T12:34:56Z",
            "+2024-03-01T12:34:56Z",
            "2024-03-01T12:34:56+0200",
            "2024-03-01T12:34:56+02",
            "2024-03-01T12:34:56+24:00",
            "2024-03-01T12:34:56+02:60",
            "2024-03-01T12:34:56ZZ",
            "2024-03-01T12:34:56Z ",
            " 2024-03-01T12:34:56Z",
            "2024-03-01T12:34:5６Z",
            "2024-03-01T12:34:56,5Z",
            "2024-03-01X12:34:56Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
