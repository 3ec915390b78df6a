//! Plain HTTP(S) downloads outside the distribution protocol (the builder's `ADD URL`), over
//! the same agents as registry requests, so proxies and TLS behave alike.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::client::{authority, Client};
use crate::error::RegistryError;

/// What a finished download said about its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Bytes written.
    pub size: u64,
    /// The `Last-Modified` header, when the server sent one that parses.
    pub last_modified: Option<SystemTime>,
}

impl Client {
    /// Streams the body of `GET url` (`http` or `https`, redirects followed, proxies from the
    /// environment) into `out`. Any status but 2xx is [`RegistryError::Http`].
    pub fn download(&self, url: &str, out: &mut dyn Write) -> Result<Downloaded, RegistryError> {
        let invalid = |message: String| RegistryError::InvalidResponse {
            url: url.to_string(),
            message,
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid(format!("invalid URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("only http and https URLs can be downloaded".into()));
        }
        let host = authority(&parsed);
        // Certificates are always checked: `--insecure` names registries, not web servers.
        let agent = self.agents.get(parsed.scheme(), &host, false)?;
        let resp = match agent.get(parsed.as_str()).call() {
            Ok(resp) => resp,
            Err(ureq::Error::Status(status, resp)) => {
                return Err(RegistryError::Http {
                    status,
                    url: url.to_string(),
                    message: resp.status_text().to_string(),
                })
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(RegistryError::Download {
                    url: url.to_string(),
                    source: Box::new(t),
                })
            }
        };
        let last_modified = resp.header("last-modified").and_then(parse_http_date);
        let length: Option<u64> = resp.header("content-length").and_then(|l| l.parse().ok());
        let size = std::io::copy(&mut resp.into_reader(), out)
            .map_err(|e| RegistryError::io(format!("cannot download {url}"), e))?;
        if let Some(l) = length.filter(|l| *l != size) {
            return Err(invalid(format!("body ended after {size} of {l} bytes")));
        }
        Ok(Downloaded {
            size,
            last_modified,
        })
    }
}

/// An HTTP date in its preferred form (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 5.6.7).
/// The two obsolete forms are not read: servers have not sent them for decades, and a date
/// that does not parse only costs the file its modification time.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let f: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = f.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *sec > 60 || year < 1970 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + sec;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let at = |s| parse_http_date(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs());
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
        assert_eq!(at("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(at("Tue, 29 Feb 2000 12:00:00 GMT"), Some(951825600));
        assert_eq!(at("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 CET"), None);
        assert_eq!(at("Sun, 06 Foo 1994 08:49:37 GMT"), None);
        assert_eq!(at(""), None);
    }
}
