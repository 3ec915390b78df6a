//! Berth's OCI distribution client: auth, manifests, platforms, verified blob streams.
//!
//! One [`Client`] serves every registry a command touches. It is `Send + Sync`: pulls share it
//! between threads behind an `Arc`, and the tokens it obtains are cached per registry and scope
//! so parallel layer downloads authenticate once.
//!
//! Credentials come from Docker's `config.json` (see [`credentials`]), including
//! `docker-credential-*` helpers, so a `docker login` done elsewhere works unchanged.
#![deny(missing_docs)]

pub mod auth;
mod blob;
mod client;
pub mod credentials;
mod download;
mod error;
mod manifest;
pub mod transport;

use std::collections::HashMap;
use std::path::PathBuf;

pub use blob::BlobStream;
pub use client::Client;
pub use download::{parse_http_date, Downloaded};
pub use error::RegistryError;
pub use manifest::{
    select_platform, Fetched, Resolved, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX,
    OCI_MANIFEST,
};

/// How the client reaches registries.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    /// Registry hosts (`127.0.0.1:5000`) reached over plain HTTP, or HTTPS without certificate
    /// verification.
    pub insecure: Vec<String>,
    /// False disables certificate verification and allows plain HTTP for every registry.
    pub tls_verify: bool,
    /// Registry host → mirror hosts tried first for pulls; the registry itself comes last.
    pub mirrors: HashMap<String, Vec<String>>,
    /// An explicit `config.json`; `None` means [`credentials::DockerConfig::default_path`].
    pub docker_config: Option<PathBuf>,
    /// The `User-Agent` header sent with every request.
    pub user_agent: String,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            tls_verify: true,
            mirrors: HashMap::new(),
            docker_config: None,
            user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}
