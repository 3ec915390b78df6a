//! Shared words of Berth.
//!
//! Every other crate speaks in these types: an [`ImageRef`] names an image the way the Docker
//! CLI does, a [`Digest`] names content, a [`Platform`] picks one image out of an index. They are
//! parsed once, at the edge, and carried typed from then on, so that a string that was never
//! validated cannot reach the store or the wire.
#![deny(missing_docs)]

pub mod build;
mod digest;
mod path;
mod platform;
mod reference;
mod time;

pub use build::{BaseImage, BuildBackend, BuildError, LayerRef, RunOutcome, RunStep, StepMount};
pub use digest::{Digest, DigestError, DigestWriter};
pub use path::inside_root;
pub use platform::{Platform, PlatformError};
pub use reference::{ImageRef, RefError, DEFAULT_REGISTRY, DEFAULT_TAG};
pub use time::{rfc3339, unix_now};

/// Exit status of Berth itself failing, as Docker's CLI uses it.
pub const EXIT_BERTH_FAILED: i32 = 125;
