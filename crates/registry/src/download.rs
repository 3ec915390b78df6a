//! Plain HTTP(S) downloads outside the distribution protocol (the builder's `ADD URL`), over
//! the same agents as registry requests, so proxies and TLS behave alike.

use std::io::Write;
use std::time::SystemTime;

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

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 5.6.7); one that does not parse
/// only costs the file its modification time.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn http_dates() {
        let at = |s| parse_http_date(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs());
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
        assert_eq!(at("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(at("Tue, 29 Feb 2000 12:00:00 GMT"), Some(951825600));
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 CET"), None);
        assert_eq!(at("Sun, 06 Foo 1994 08:49:37 GMT"), None);
        assert_eq!(at(""), None);
    }
}
