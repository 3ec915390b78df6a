//! Sizes and times printed the way Docker prints them.

use std::time::{SystemTime, UNIX_EPOCH};

/// `7.8MB`, `123kB`: decimal units, three significant digits (Docker's `HumanSizeWithPrecision`).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", sig3(v), UNITS[i])
}

/// `1.324MiB`, `23.44GiB`: binary units, four significant digits (Docker's `BytesSize`, used
/// for memory).
pub fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    let s = if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 100.0 {
        format!("{v:.1}")
    } else if v >= 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    format!("{}{}", trim_zeros(s), UNITS[i])
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn sig3(v: f64) -> String {
    let s = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    trim_zeros(s)
}

/// Seconds since the epoch of an RFC 3339 timestamp (`2024-01-02T03:04:05.123Z`, offsets allowed).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, sec) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let m = o[1..3].parse::<i64>().ok()? * 3600 + o[4..6].parse::<i64>().ok()? * 60;
            if o.starts_with('-') {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset)
}

/// Nanoseconds since the epoch of an RFC 3339 timestamp, its fraction of a second included.
pub fn parse_rfc3339_nanos(s: &str) -> Option<i128> {
    let secs = parse_rfc3339(s)?;
    let frac = s.get(19..).and_then(|r| r.strip_prefix('.')).unwrap_or("");
    let digits: String = frac
        .chars()
        .take_while(char::is_ascii_digit)
        .take(9)
        .collect();
    let nanos = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse::<i128>().ok()?
    };
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// A point in time as `logs --since/--until` take it, in nanoseconds since the epoch: an
/// RFC 3339 timestamp, Unix seconds (`1700000000.5`), or a Go duration before `now`
/// (`42m`, `1h30m`, `1.5h`, `90s`).
pub fn parse_point_in_time(s: &str, now_nanos: i128) -> Option<i128> {
    if let Some(t) = parse_rfc3339_nanos(s) {
        return Some(t);
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Some((secs * 1e9) as i128);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let (unit, len) = [
            ("ms", 1e-3),
            ("us", 1e-6),
            ("ns", 1e-9),
            ("h", 3600.0),
            ("m", 60.0),
            ("s", 1.0),
        ]
        .iter()
        .find(|(u, _)| rest.starts_with(u))
        .map(|(u, f)| (*f, u.len()))?;
        total += value * unit;
        rest = &rest[len..];
    }
    Some(now_nanos - (total * 1e9) as i128)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

pub use berth_types::rfc3339;

/// RFC 3339 with nanoseconds of the current time, as Docker's log lines carry.
pub fn now_nanos() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let base = rfc3339(d.as_secs() as i64);
    format!("{}.{:09}Z", base.trim_end_matches('Z'), d.subsec_nanos())
}

pub use berth_types::unix_now as now;

/// `2 weeks ago`, `About an hour ago` (Docker's `HumanDuration` + " ago").
pub fn since(created: &str) -> String {
    let Some(t) = parse_rfc3339(created) else {
        return "N/A".into();
    };
    let secs = (now() - t).max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    let s = if secs < 1 {
        "Less than a second".to_string()
    } else if secs == 1 {
        "1 second".to_string()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if m == 1 {
        "About a minute".to_string()
    } else if m < 60 {
        format!("{m} minutes")
    } else if h == 1 {
        "About an hour".to_string()
    } else if h < 48 {
        format!("{h} hours")
    } else if d < 14 {
        format!("{d} days")
    } else if d < 60 {
        format!("{} weeks", d / 7)
    } else if d < 730 {
        format!("{} months", d / 30)
    } else {
        format!("{} years", d / 365)
    };
    format!("{s} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(size(0), "0B");
        assert_eq!(size(999), "999B");
        assert_eq!(size(7_800_000), "7.8MB");
        assert_eq!(size(123_456), "123kB");
        assert_eq!(size(1_234_567_890), "1.23GB");
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1_388_544), "1.324MiB");
        assert_eq!(binary_size(25_168_625_664), "23.44GiB");
        assert_eq!(binary_size(524_288), "512KiB");
        assert_eq!(binary_size(1023), "1023B");
    }

    #[test]
    fn points_in_time_as_docker_logs_takes_them() {
        let now = 1_700_000_000 * 1_000_000_000i128;
        assert_eq!(
            parse_rfc3339_nanos("2023-11-14T22:13:20.5Z"),
            Some(now + 500_000_000)
        );
        assert_eq!(parse_point_in_time("2023-11-14T22:13:20Z", 0), Some(now));
        assert_eq!(parse_point_in_time("1700000000", 0), Some(now));
        assert_eq!(
            parse_point_in_time("42m", now),
            Some(now - 42 * 60 * 1_000_000_000)
        );
        assert_eq!(
            parse_point_in_time("1h30m", now),
            Some(now - 5400 * 1_000_000_000)
        );
        assert_eq!(
            parse_point_in_time("1.5h", now),
            Some(now - 5400 * 1_000_000_000)
        );
        assert_eq!(parse_point_in_time("10x", now), None);
        assert_eq!(parse_point_in_time("m", now), None);
    }

    #[test]
    fn times_round_trip() {
        let t = parse_rfc3339("2024-02-29T12:34:56.789Z").unwrap();
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56Z");
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339("nope"), None);
    }
}
