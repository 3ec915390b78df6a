//! The few fields of manifests, indexes and configs this crate reads.
//!
//! Reading goes through these lenient structs rather than `oci-spec`'s strict ones: the bytes are
//! stored unchanged anyway, and archives from Docker, Podman and older tools carry fields and
//! media types that a strict parse would refuse for no benefit.

use std::collections::HashMap;

use berth_types::Digest;
use serde::Deserialize;

use crate::error::ArchiveError;

/// OCI image manifest.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema-2 manifest.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub(crate) const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker uncompressed layer.
pub(crate) const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker gzip layer.
pub(crate) const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// `org.opencontainers.image.ref.name`: a tag, or for some tools a whole reference.
pub(crate) const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// `io.containerd.image.name`: the full reference, as Docker and containerd write it.
pub(crate) const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

/// A content descriptor.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub(crate) media_type: String,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    #[serde(default)]
    pub(crate) annotations: HashMap<String, String>,
    #[serde(default)]
    pub(crate) platform: Option<PlatformJson>,
}

/// A descriptor's platform.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct PlatformJson {
    #[serde(default)]
    pub(crate) architecture: String,
    #[serde(default)]
    pub(crate) os: String,
    #[serde(default)]
    pub(crate) variant: Option<String>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Deserialize)]
pub(crate) struct Manifest {
    #[serde(rename = "mediaType", default)]
    pub(crate) media_type: Option<String>,
    pub(crate) config: Descriptor,
    #[serde(default)]
    pub(crate) layers: Vec<Descriptor>,
}

/// An image index or manifest list.
#[derive(Debug, Deserialize)]
pub(crate) struct Index {
    #[serde(default)]
    pub(crate) manifests: Vec<Descriptor>,
}

/// The part of an image config that ties it to its layers.
#[derive(Debug, Deserialize)]
pub(crate) struct Config {
    pub(crate) rootfs: RootFs,
}

/// `rootfs` of an image config.
#[derive(Debug, Deserialize)]
pub(crate) struct RootFs {
    #[serde(default)]
    pub(crate) diff_ids: Vec<Digest>,
}

/// Parses `bytes` as `T`, naming `entry` of `file` in the error.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    file: &str,
    entry: &str,
) -> Result<T, ArchiveError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ArchiveError::invalid(file, entry, format!("invalid json: {e}")))
}

/// Whether a media type names an index rather than a single manifest.
pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}
