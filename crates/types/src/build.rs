//! What the Dockerfile builder needs from the rest of Berth, as traits.
//!
//! The builder decides what each step does; the engine behind [`BuildBackend`] knows where
//! images come from, where layers live and how a container runs. Keeping that behind a trait lets
//! the builder stay free of the registry, store and runtime, and be tested with a fake.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Digest;

/// Any error the engine reports; the builder adds which step it was.
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// One layer of an image: its uncompressed digest and the stored blob it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// Digest of the stored (compressed) blob.
    pub blob: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// The blob's media type.
    pub media_type: String,
}

/// A base image as the builder sees it.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// The image id (digest of its config).
    pub id: Digest,
    /// The OCI image configuration as JSON.
    pub config: serde_json::Value,
    /// Its layers, bottom first.
    pub layers: Vec<LayerRef>,
}

/// One `RUN` step to execute in a container.
#[derive(Debug, Clone)]
pub struct RunStep {
    /// The stage's layers, bottom first: the container's read-only lower directories.
    pub layers: Vec<LayerRef>,
    /// The stage's image configuration (JSON) at this step: Env, WorkingDir and User apply.
    pub config: serde_json::Value,
    /// The command to execute, as argv.
    pub argv: Vec<String>,
    /// Extra `KEY=VALUE` environment (build arguments in scope).
    pub env: Vec<String>,
    /// The empty directory that receives the step's changes (the overlay upper directory).
    pub upper: PathBuf,
    /// An empty work directory on the same file system as `upper`.
    pub work: PathBuf,
    /// `RUN --network=`: `None` means the host network, as Berth builds use by default.
    pub network: Option<String>,
    /// Files bound read-only into the container: `(absolute path inside, contents)`, such as
    /// the script of a `RUN <<EOF` heredoc that starts with `#!`.
    pub files: Vec<(String, Vec<u8>)>,
    /// Host paths bound into the container (`RUN --mount`): caches, bind sources, secrets.
    pub mounts: Vec<StepMount>,
}

/// A host file or directory bound into a step's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepMount {
    /// The host path.
    pub source: PathBuf,
    /// The absolute path inside the container.
    pub target: String,
    /// Whether the container may not write through it.
    pub readonly: bool,
}

/// How a step's process ended, and how ids inside mapped to ids on the host.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    /// Exit status of the command (128+N when killed by signal N).
    pub exit_code: i32,
    /// `(container id, host id, count)` ranges of the user namespace's uid map.
    pub uid_map: Vec<(u32, u32, u32)>,
    /// The same for group ids.
    pub gid_map: Vec<(u32, u32, u32)>,
}

/// The engine a build runs against: image lookup, containers for `RUN`, layer storage and
/// image commit.
pub trait BuildBackend {
    /// The image `reference` names for `platform` (`os/arch[/variant]`, the host's when
    /// `None`), pulled first when it is not present.
    fn base_image(&self, reference: &str, platform: Option<&str>) -> Result<BaseImage, BuildError>;
    /// Where the unpacked contents of a layer are, to read files from (`COPY --from`).
    fn layer_dir(&self, diff_id: &Digest) -> PathBuf;
    /// Whether a layer (its blob and its unpacked contents) is still present.
    fn has_layer(&self, layer: &LayerRef) -> bool;
    /// A new empty directory for temporary build data, on the same file system as the layers.
    fn scratch_dir(&self) -> Result<PathBuf, BuildError>;
    /// Runs a step to its end; its stdout and stderr go to `output` in chunks as they come.
    fn run(
        &self,
        step: &RunStep,
        output: &(dyn Fn(&[u8]) + Sync),
    ) -> Result<RunOutcome, BuildError>;
    /// Stores the compressed layer `file` (hashing to `blob`, its tar to `diff_id`, of
    /// `media_type`) and unpacks it so that later steps may use it as a lower directory.
    fn add_layer(
        &self,
        file: &Path,
        blob: &Digest,
        diff_id: &Digest,
        media_type: &str,
    ) -> Result<LayerRef, BuildError>;
    /// Stores `config` and a manifest over `layers`, and records the image under `tags`.
    /// Returns the image id.
    fn commit(
        &self,
        config: &[u8],
        layers: &[LayerRef],
        tags: &[String],
    ) -> Result<Digest, BuildError>;
    /// Streams the body of `url` (`http://` or `https://`; redirects followed, proxies from the
    /// environment) into `out`, and returns the server's `Last-Modified` time when it sent one.
    /// A status other than success is an error naming the URL and the status.
    fn download(
        &self,
        url: &str,
        out: &mut dyn std::io::Write,
    ) -> Result<Option<std::time::SystemTime>, BuildError>;
    /// The JSON file that maps step cache keys to their results.
    fn cache_index(&self) -> PathBuf;
    /// One line for the build log saying how `RUN` steps map ids (subordinate ids, or a single
    /// id with ownership changes faked), or `None` to say nothing.
    fn run_mode(&self) -> Option<String> {
        None
    }
}
