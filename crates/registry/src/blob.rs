//! Blobs: ranged downloads, existence checks, cross-repository mounts and streamed uploads.

use std::fmt;
use std::io::Read;

use berth_types::{Digest, ImageRef};

use crate::auth::{pull_scope, push_scope};
use crate::client::{Body, Client, Creds, Reply, Request};
use crate::error::RegistryError;
use crate::manifest::most_telling;
use crate::transport::{pull_endpoints, registry_endpoint, Endpoint};

/// A blob being downloaded. Reading it yields the bytes from `start` on.
///
/// The content is not verified here: the caller hashes it while writing it to disk, which
/// also covers the part of an interrupted download it already had.
pub struct BlobStream {
    /// Offset of the first byte this stream yields: the offset asked for, or 0 when the
    /// server ignored the range.
    pub start: u64,
    /// Size of the whole blob, when the server said.
    pub total: Option<u64>,
    reader: Box<dyn Read + Send + Sync>,
}

impl fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStream")
            .field("start", &self.start)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl Read for BlobStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }
}

/// Parses `Content-Range: bytes first-last/total` into (first, total).
fn content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, _) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((first.trim().parse().ok()?, total))
}

/// Resolves an upload `Location` (absolute, or relative to the request) and adds `digest`.
fn upload_url(request_url: &str, location: &str, digest: &Digest) -> Result<String, String> {
    let base = url::Url::parse(request_url).map_err(|e| e.to_string())?;
    let mut url = base.join(location).map_err(|e| e.to_string())?;
    url.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    Ok(url.to_string())
}

impl Client {
    /// Downloads a blob from `offset` on (mirrors first), following redirects to other hosts
    /// without the registry's credentials.
    pub fn blob(
        &self,
        r: &ImageRef,
        digest: &Digest,
        offset: u64,
    ) -> Result<BlobStream, RegistryError> {
        let mut errors = Vec::new();
        for ep in pull_endpoints(r.registry(), &self.opts) {
            match self.blob_at(&ep, r, digest, offset) {
                Ok(s) => return Ok(s),
                Err(e) => errors.push(e),
            }
        }
        Err(most_telling(errors))
    }

    fn blob_at(
        &self,
        ep: &Endpoint,
        r: &ImageRef,
        digest: &Digest,
        offset: u64,
    ) -> Result<BlobStream, RegistryError> {
        let reference = format!("{}@{digest}", r.name());
        let scopes = [pull_scope(r.repository())];
        let target = format!("/v2/{}/blobs/{digest}", r.repository());
        let mut headers = Vec::new();
        if offset > 0 {
            headers.push(("Range", format!("bytes={offset}-")));
        }
        let req = Request {
            method: "GET",
            target: &target,
            headers,
            scopes: &scopes,
            repository: r.repository(),
        };
        let reply = self.send(ep, &req, Body::Empty, Creds::Stored)?;
        let status = reply.resp.status();
        match status {
            200 => {
                let total = reply
                    .resp
                    .header("content-length")
                    .and_then(|v| v.trim().parse().ok());
                Ok(BlobStream {
                    start: 0,
                    total,
                    reader: reply.resp.into_reader(),
                })
            }
            206 => {
                let (start, total) = reply
                    .resp
                    .header("content-range")
                    .and_then(content_range)
                    .ok_or_else(|| RegistryError::InvalidResponse {
                        url: reply.url.clone(),
                        message: "206 without a valid Content-Range".to_string(),
                    })?;
                Ok(BlobStream {
                    start,
                    total,
                    reader: reply.resp.into_reader(),
                })
            }
            // Asking past the end (the caller already had everything): start over cleanly.
            416 if offset > 0 => self.blob_at(ep, r, digest, 0),
            _ => Err(self.unexpected(ep, reply, r.repository(), &reference)),
        }
    }

    /// Whether the registry has the blob in `r`'s repository (`HEAD`).
    pub fn blob_exists(&self, r: &ImageRef, digest: &Digest) -> Result<bool, RegistryError> {
        let ep = registry_endpoint(r.registry(), &self.opts);
        let scopes = [pull_scope(r.repository())];
        let target = format!("/v2/{}/blobs/{digest}", r.repository());
        let req = Request {
            method: "HEAD",
            target: &target,
            headers: Vec::new(),
            scopes: &scopes,
            repository: r.repository(),
        };
        let reply = self.send(&ep, &req, Body::Empty, Creds::Stored)?;
        match reply.resp.status() {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(self.unexpected(
                &ep,
                reply,
                r.repository(),
                &format!("{}@{digest}", r.name()),
            )),
        }
    }

    /// Asks the registry to link a blob from `from_repository` into `target`'s repository;
    /// true when it did (201), false when it would need an upload instead.
    pub fn mount_blob(
        &self,
        target: &ImageRef,
        digest: &Digest,
        from_repository: &str,
    ) -> Result<bool, RegistryError> {
        let ep = registry_endpoint(target.registry(), &self.opts);
        let scopes = [push_scope(target.repository()), pull_scope(from_repository)];
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from_repository)
            .finish();
        let path = format!("/v2/{}/blobs/uploads/?{query}", target.repository());
        let req = Request {
            method: "POST",
            target: &path,
            headers: Vec::new(),
            scopes: &scopes,
            repository: target.repository(),
        };
        let reply = self.send(&ep, &req, Body::Empty, Creds::Stored)?;
        match reply.resp.status() {
            201 => Ok(true),
            202 => {
                // The registry opened an upload session instead; close it rather than leak it.
                self.cancel_upload(&ep, &reply, &scopes, target.repository());
                Ok(false)
            }
            _ => Err(self.unexpected(
                &ep,
                reply,
                target.repository(),
                &format!("{}@{digest}", target.name()),
            )),
        }
    }

    fn cancel_upload(&self, ep: &Endpoint, reply: &Reply, scopes: &[String], repository: &str) {
        let Some(location) = reply.resp.header("location") else {
            return;
        };
        let Ok(url) = url::Url::parse(&reply.url).and_then(|b| b.join(location)) else {
            return;
        };
        let url = url.to_string();
        let req = Request {
            method: "DELETE",
            target: &url,
            headers: Vec::new(),
            scopes,
            repository,
        };
        let _ = self.send(ep, &req, Body::Empty, Creds::Stored);
    }

    /// Uploads a blob of `size` bytes read from `data`, streamed (monolithic POST + PUT); the
    /// registry checks it against `digest`.
    pub fn push_blob(
        &self,
        r: &ImageRef,
        digest: &Digest,
        size: u64,
        data: Box<dyn Read + Send>,
    ) -> Result<(), RegistryError> {
        let reference = format!("{}@{digest}", r.name());
        let ep = registry_endpoint(r.registry(), &self.opts);
        let scopes = [push_scope(r.repository())];
        let start = format!("/v2/{}/blobs/uploads/", r.repository());
        let req = Request {
            method: "POST",
            target: &start,
            headers: Vec::new(),
            scopes: &scopes,
            repository: r.repository(),
        };
        let reply = self.send(&ep, &req, Body::Empty, Creds::Stored)?;
        if reply.resp.status() != 202 {
            return Err(self.unexpected(&ep, reply, r.repository(), &reference));
        }
        let location =
            reply
                .resp
                .header("location")
                .ok_or_else(|| RegistryError::InvalidResponse {
                    url: reply.url.clone(),
                    message: "upload started without a Location header".to_string(),
                })?;
        let put_url = upload_url(&reply.url, location, digest).map_err(|message| {
            RegistryError::InvalidResponse {
                url: reply.url.clone(),
                message: format!("invalid upload location {location:?}: {message}"),
            }
        })?;
        let req = Request {
            method: "PUT",
            target: &put_url,
            headers: vec![("Content-Type", "application/octet-stream".to_string())],
            scopes: &scopes,
            repository: r.repository(),
        };
        let reply = self.send(&ep, &req, Body::Stream(Some(data), size), Creds::Stored)?;
        match reply.resp.status() {
            201 | 204 => Ok(()),
            _ => Err(self.unexpected(&ep, reply, r.repository(), &reference)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(content_range("bytes 100-199/1000"), Some((100, Some(1000))));
        assert_eq!(content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(content_range("bytes */1000"), None);
        assert_eq!(content_range("items 1-2/3"), None);
    }

    #[test]
    fn upload_locations() {
        let d = Digest::sha256_of(b"x");
        let enc = format!("digest=sha256%3A{}", d.hex());
        let req = "http://127.0.0.1:5000/v2/a/b/blobs/uploads/";
        assert_eq!(
            upload_url(req, "/v2/a/b/blobs/uploads/u1?_state=xyz", &d).unwrap(),
            format!("http://127.0.0.1:5000/v2/a/b/blobs/uploads/u1?_state=xyz&{enc}")
        );
        assert_eq!(
            upload_url(req, "https://up.example/x", &d).unwrap(),
            format!("https://up.example/x?{enc}")
        );
        assert_eq!(
            upload_url(req, "u2", &d).unwrap(),
            format!("http://127.0.0.1:5000/v2/a/b/blobs/uploads/u2?{enc}")
        );
    }
}
