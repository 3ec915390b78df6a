//! The one error type of the distribution client.

use std::path::PathBuf;

use berth_types::Digest;

/// Everything that can go wrong talking to a registry or reading credentials.
///
/// Messages are one line and name the input that failed, so the command line can print them
/// as they are.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No connection could be made (DNS, refused, TLS handshake, timeout).
    #[error("cannot reach registry {address}: {source}")]
    Unreachable {
        /// The registry address or URL that was tried.
        address: String,
        /// What the network stack said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A plain download (not from a registry) could not connect or broke off.
    #[error("cannot download {url}: {source}")]
    Download {
        /// The URL.
        url: String,
        /// What the network stack said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The registry refused the credentials, or the repository does not exist for this user.
    #[error("{}", unauthorized_message(registry, repository))]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// Repository that was asked for; empty when logging in.
        repository: String,
    },
    /// The manifest or blob does not exist.
    #[error("{reference}: not found")]
    NotFound {
        /// The reference or `repository@digest` that was asked for.
        reference: String,
    },
    /// Content did not hash to the digest that named it.
    #[error("digest mismatch for {reference}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being fetched or pushed.
        reference: String,
        /// The digest the content should have.
        expected: Digest,
        /// The digest the content has.
        actual: Digest,
    },
    /// An image index has no manifest for the requested platform.
    #[error(
        "{reference}: no image for platform {platform} (available: {})",
        if available.is_empty() { "none".to_string() } else { available.join(", ") }
    )]
    NoPlatform {
        /// The reference that named the index.
        reference: String,
        /// The platform that was asked for.
        platform: String,
        /// The platforms the index offers.
        available: Vec<String>,
    },
    /// A manifest of a kind Berth does not read (Docker schema 1, artifacts, ...).
    #[error("{reference}: unsupported manifest type {media_type:?}")]
    UnsupportedManifest {
        /// The reference whose manifest was refused.
        reference: String,
        /// Its media type.
        media_type: String,
    },
    /// The registry answered with an unexpected HTTP status.
    #[error("{url}: HTTP {status}: {message}")]
    Http {
        /// The status code.
        status: u16,
        /// The URL requested.
        url: String,
        /// The registry's own explanation, when it gave one.
        message: String,
    },
    /// The registry answered with something that is not what the protocol says.
    #[error("{url}: invalid response: {message}")]
    InvalidResponse {
        /// The URL requested.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// A local read or write failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file or URL.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A Docker config file could not be read, parsed or written.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A `docker-credential-*` helper failed.
    #[error("credential helper docker-credential-{helper}: {message}")]
    CredentialHelper {
        /// The helper's name, without the `docker-credential-` prefix.
        helper: String,
        /// Its error output, or why it could not be run.
        message: String,
    },
    /// The TLS client could not be set up.
    #[error("cannot set up TLS: {message}")]
    Tls {
        /// The TLS library's message.
        message: String,
    },
}

fn unauthorized_message(registry: &str, repository: &str) -> String {
    if repository.is_empty() {
        format!("{registry}: unauthorized: incorrect username or password")
    } else {
        format!(
            "access to {repository} on {registry} denied: not logged in, wrong credentials, \
             or the repository does not exist"
        )
    }
}

impl RegistryError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> RegistryError {
        RegistryError::Io {
            context: context.into(),
            source,
        }
    }
}
