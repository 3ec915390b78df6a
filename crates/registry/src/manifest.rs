//! Manifests: fetching with verification, index platform selection, and pushing.

use std::io::Read;

use berth_types::{Digest, ImageRef, Platform};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use crate::auth::{pull_scope, push_scope};
use crate::client::{Body, Client, Creds, Request};
use crate::error::RegistryError;
use crate::transport::{pull_endpoints, registry_endpoint, Endpoint};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Registries refuse manifests over 4 MiB; leave room for ones that do not.
const MAX_MANIFEST: u64 = 16 << 20;

/// A manifest or index exactly as the registry served it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The digest of `bytes` (verified against the reference or the registry's header).
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// The raw bytes, which are what the digest covers.
    pub bytes: Vec<u8>,
}

/// The manifest a reference resolves to for one platform.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The index or manifest list, when the reference named one.
    pub index: Option<Fetched>,
    /// The single-platform image manifest (OCI or Docker schema 2).
    pub manifest: Fetched,
    /// `manifest` parsed.
    pub parsed: ImageManifest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Manifest,
    Index,
}

/// What the bytes are, from the Content-Type header or, when it is generic, the JSON itself.
fn classify(content_type: Option<&str>, bytes: &[u8]) -> Result<(Kind, String), String> {
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty());
    let by_type = |t: &str| match t {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(Kind::Manifest),
        OCI_INDEX | DOCKER_MANIFEST_LIST => Some(Kind::Index),
        _ => None,
    };
    if let Some(h) = &header {
        if let Some(k) = by_type(h) {
            return Ok((k, h.clone()));
        }
        if h == DOCKER_SCHEMA1 || h == DOCKER_SCHEMA1_SIGNED {
            return Err(h.clone());
        }
    }
    let json: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    if let Some(t) = json.get("mediaType").and_then(|m| m.as_str()) {
        return match by_type(t) {
            Some(k) => Ok((k, t.to_string())),
            None => Err(t.to_string()),
        };
    }
    if json.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
        return Err(DOCKER_SCHEMA1.to_string());
    }
    if json.get("manifests").is_some_and(|m| m.is_array()) {
        return Ok((Kind::Index, OCI_INDEX.to_string()));
    }
    if json.get("config").is_some() && json.get("layers").is_some() {
        return Ok((Kind::Manifest, OCI_MANIFEST.to_string()));
    }
    Err(header.unwrap_or_else(|| "unknown".to_string()))
}

fn digest_with(algorithm_of: &Digest, bytes: &[u8]) -> Digest {
    let mut w = algorithm_of.writer();
    w.update(bytes);
    w.finish()
}

/// The index entry for `platform`: an exact variant match wins over one that leaves it open.
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    platform: &Platform,
    reference: &str,
) -> Result<&'a Descriptor, RegistryError> {
    let mut loose = None;
    let mut available = Vec::new();
    for d in index.manifests() {
        let Some(p) = d.platform() else { continue };
        let is_manifest = match d.media_type() {
            MediaType::ImageManifest => true,
            MediaType::Other(t) => t == DOCKER_MANIFEST,
            _ => false,
        };
        let (os, arch) = (p.os().to_string(), p.architecture().to_string());
        let variant = p.variant().as_deref();
        if !is_manifest || os == "unknown" {
            // Attestations and other artifacts are published with an `unknown` platform.
            continue;
        }
        let name = match variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        };
        if !available.contains(&name) {
            available.push(name);
        }
        if platform.matches(&os, &arch, variant) {
            if platform.variant.as_deref() == variant {
                return Ok(d);
            }
            loose = loose.or(Some(d));
        }
    }
    loose.ok_or_else(|| RegistryError::NoPlatform {
        reference: reference.to_string(),
        platform: platform.to_string(),
        available,
    })
}

impl Client {
    /// Fetches the manifest `r` names; an index is resolved to `platform`'s manifest.
    ///
    /// Mirrors configured for the registry are tried first.
    pub fn resolve(&self, r: &ImageRef, platform: &Platform) -> Result<Resolved, RegistryError> {
        let mut errors = Vec::new();
        for ep in pull_endpoints(r.registry(), &self.opts) {
            match self.resolve_at(&ep, r, platform) {
                Ok(res) => return Ok(res),
                Err(e) => errors.push(e),
            }
        }
        Err(most_telling(errors))
    }

    fn resolve_at(
        &self,
        ep: &Endpoint,
        r: &ImageRef,
        platform: &Platform,
    ) -> Result<Resolved, RegistryError> {
        let (kind, top) = self.fetch_manifest(ep, r, &r.reference())?;
        let display = r.to_string();
        if kind == Kind::Manifest {
            let parsed = parse_manifest(&top.bytes, &display)?;
            return Ok(Resolved {
                index: None,
                manifest: top,
                parsed,
            });
        }
        let index: ImageIndex =
            serde_json::from_slice(&top.bytes).map_err(|e| RegistryError::InvalidResponse {
                url: display.clone(),
                message: format!("invalid image index: {e}"),
            })?;
        let entry = select_platform(&index, platform, &display)?;
        let digest: Digest =
            entry
                .digest()
                .to_string()
                .parse()
                .map_err(|e| RegistryError::InvalidResponse {
                    url: display.clone(),
                    message: format!("index entry has an invalid digest: {e}"),
                })?;
        let child = r.with_digest(digest.clone());
        let (kind, manifest) = self.fetch_manifest(ep, &child, &digest.to_string())?;
        if kind != Kind::Manifest {
            return Err(RegistryError::UnsupportedManifest {
                reference: child.to_string(),
                media_type: manifest.media_type,
            });
        }
        let parsed = parse_manifest(&manifest.bytes, &child.to_string())?;
        Ok(Resolved {
            index: Some(top),
            manifest,
            parsed,
        })
    }

    fn fetch_manifest(
        &self,
        ep: &Endpoint,
        r: &ImageRef,
        reference: &str,
    ) -> Result<(Kind, Fetched), RegistryError> {
        let display = r.to_string();
        let scopes = [pull_scope(r.repository())];
        let target = format!("/v2/{}/manifests/{reference}", r.repository());
        let accept = [
            OCI_MANIFEST,
            OCI_INDEX,
            DOCKER_MANIFEST,
            DOCKER_MANIFEST_LIST,
        ]
        .join(", ");
        let req = Request {
            method: "GET",
            target: &target,
            headers: vec![("Accept", accept)],
            scopes: &scopes,
            repository: r.repository(),
        };
        let reply = self.send(ep, &req, Body::Empty, Creds::Stored)?;
        if reply.resp.status() != 200 {
            return Err(self.unexpected(ep, reply, r.repository(), &display));
        }
        let content_type = reply.resp.header("content-type").map(str::to_string);
        let header_digest = reply
            .resp
            .header("docker-content-digest")
            .map(str::to_string);
        let mut bytes = Vec::new();
        reply
            .resp
            .into_reader()
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| RegistryError::io(format!("reading manifest of {display}"), e))?;
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(RegistryError::InvalidResponse {
                url: reply.url,
                message: format!("manifest larger than {MAX_MANIFEST} bytes"),
            });
        }
        let digest = match reference.parse::<Digest>() {
            Ok(expected) => {
                let actual = digest_with(&expected, &bytes);
                if actual != expected {
                    return Err(RegistryError::DigestMismatch {
                        reference: display,
                        expected,
                        actual,
                    });
                }
                expected
            }
            Err(_) => {
                let digest = Digest::sha256_of(&bytes);
                if let Some(claimed) = header_digest.and_then(|h| h.trim().parse::<Digest>().ok()) {
                    let actual = digest_with(&claimed, &bytes);
                    if actual != claimed {
                        return Err(RegistryError::DigestMismatch {
                            reference: display,
                            expected: claimed,
                            actual,
                        });
                    }
                }
                digest
            }
        };
        let (kind, media_type) =
            classify(content_type.as_deref(), &bytes).map_err(|media_type| {
                RegistryError::UnsupportedManifest {
                    reference: display.clone(),
                    media_type,
                }
            })?;
        Ok((
            kind,
            Fetched {
                digest,
                media_type,
                bytes,
            },
        ))
    }

    /// PUTs `bytes` unchanged under `r`'s tag (or digest); returns their digest.
    pub fn put_manifest(
        &self,
        r: &ImageRef,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let display = r.to_string();
        let digest = match (r.tag(), r.digest()) {
            (None, Some(expected)) => {
                let actual = digest_with(expected, bytes);
                if &actual != expected {
                    return Err(RegistryError::DigestMismatch {
                        reference: display,
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            _ => Digest::sha256_of(bytes),
        };
        let reference = match r.tag() {
            Some(t) => t.to_string(),
            None => digest.to_string(),
        };
        let ep = registry_endpoint(r.registry(), &self.opts);
        let scopes = [push_scope(r.repository())];
        let target = format!("/v2/{}/manifests/{reference}", r.repository());
        let req = Request {
            method: "PUT",
            target: &target,
            headers: vec![("Content-Type", media_type.to_string())],
            scopes: &scopes,
            repository: r.repository(),
        };
        let reply = self.send(&ep, &req, Body::Bytes(bytes), Creds::Stored)?;
        if !(200..300).contains(&reply.resp.status()) {
            return Err(self.unexpected(&ep, reply, r.repository(), &display));
        }
        if let Some(claimed) = reply
            .resp
            .header("docker-content-digest")
            .and_then(|h| h.trim().parse::<Digest>().ok())
        {
            if claimed.algorithm() == digest.algorithm() && claimed != digest {
                return Err(RegistryError::DigestMismatch {
                    reference: display,
                    expected: digest,
                    actual: claimed,
                });
            }
        }
        Ok(digest)
    }
}

fn parse_manifest(bytes: &[u8], reference: &str) -> Result<ImageManifest, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::InvalidResponse {
        url: reference.to_string(),
        message: format!("invalid image manifest: {e}"),
    })
}

/// Of the errors from each endpoint, the one to show: the registry's own (the last), unless it
/// could not be reached and a mirror said something more useful.
pub(crate) fn most_telling(mut errors: Vec<RegistryError>) -> RegistryError {
    let last = errors.pop().unwrap_or_else(|| RegistryError::Unreachable {
        address: "registry".to_string(),
        source: "no endpoint".into(),
    });
    if matches!(last, RegistryError::Unreachable { .. }) {
        if let Some(pos) = errors
            .iter()
            .position(|e| !matches!(e, RegistryError::Unreachable { .. }))
        {
            return errors.swap_remove(pos);
        }
    }
    last
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
