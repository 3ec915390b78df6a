//! `berth build`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::RegistryArgs;

/// Options of `berth build`.
#[derive(Debug, Args, Clone)]
pub struct BuildArgs {
    /// Name and optionally a tag (`NAME[:TAG]`); may be repeated.
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tag: Vec<String>,
    /// Name of the Dockerfile (default: `CONTEXT/Dockerfile`; `-` reads it from standard
    /// input).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_arg: Vec<String>,
    /// Build the stage of this name and the stages it needs, not the last one.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Always pull base images, even when the store has them.
    #[arg(long)]
    pub pull: bool,
    /// Build for this platform (`os/arch[/variant]`): base images are pulled for it; RUN
    /// steps only run when it is the host's, since Berth does not emulate.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// How to show progress: `plain` (every line), `tty` (step output replaced in place) or
    /// `auto` (`tty` on a terminal).
    #[arg(long, value_enum, default_value_t = Progress::Auto, value_name = "TYPE")]
    pub progress: Progress,
    /// Compression of the layers the build writes: `gzip` (default) or `zstd`.
    #[arg(long, value_enum, default_value_t = LayerCompression::Gzip, value_name = "TYPE")]
    pub compression: LayerCompression,
    /// Do not use the cache when building the image.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Suppress the build output and print the image id on success.
    #[arg(short, long)]
    pub quiet: bool,
    /// Set metadata for the image (`KEY=VALUE`).
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Write the image id to this file.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Network of the RUN steps that name none themselves: `default` (the host's), `host` or
    /// `none`.
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// Add a line to the RUN steps' `/etc/hosts` (`HOST:IP`).
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Remove intermediate containers: accepted, as Berth keeps none (`--rm=false` too).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "true|false")]
    pub rm: bool,
    /// Remove intermediate containers even after a failed step: accepted, as Berth keeps none.
    #[arg(long = "force-rm", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "true|false")]
    pub force_rm: bool,
    /// Also write the image as an archive: `type=oci-archive,dest=FILE` or
    /// `type=docker-archive,dest=FILE` (`oci` and `docker` are accepted too);
    /// `type=registry` pushes it, as `--push` does.
    #[arg(short = 'o', long, value_name = "type=TYPE,dest=FILE")]
    pub output: Option<String>,
    /// Push the image to its registry once built, under every `-t` name.
    #[arg(long)]
    pub push: bool,
    /// Expose a secret file (`src=`) or environment variable (`env=`) to
    /// `RUN --mount=type=secret,id=ID` (mounted at /run/secrets/ID; never stored in the image
    /// or the cache key).
    #[arg(long, value_name = "id=ID,src=FILE|env=VAR")]
    pub secret: Vec<String>,
    /// Registry options for pulling base images.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The build context directory, or `-` to read a tar archive of it (or a lone
    /// Dockerfile) from standard input.
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
}

/// `berth build --compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayerCompression {
    /// gzip, readable by every engine.
    Gzip,
    /// zstd: faster and smaller; needs a recent engine to pull.
    Zstd,
}

/// `berth build --progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    /// `tty` when standard error is a terminal, else `plain`.
    Auto,
    /// Every line of every step.
    Plain,
    /// Step lines kept, each step's output shown on one line that is rewritten.
    Tty,
}

/// `berth builder …`
#[derive(Debug, Subcommand)]
pub enum BuilderCommand {
    /// Remove build cache.
    Prune(BuilderPruneArgs),
}

/// `berth builder prune`
#[derive(Debug, Args, Clone)]
pub struct BuilderPruneArgs {
    /// Remove all build cache, not just the steps whose layers no image uses.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}
