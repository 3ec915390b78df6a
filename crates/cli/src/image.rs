//! Arguments of the image commands (pull, push, images, save, load, …).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Options for commands that talk to a registry.
#[derive(Debug, Args, Default, Clone)]
pub struct RegistryArgs {
    /// Require HTTPS and verify certificates (false: allow plain HTTP and any certificate).
    #[arg(long = "tls-verify", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
}

/// `berth pull`
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image to pull: NAME[:TAG|@DIGEST].
    pub image: String,
    /// Suppress progress output; print only the image reference.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Platform to pull from a multi-platform image (os/arch[/variant]; default: this host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Registry connection options.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `berth push`
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Image to push: NAME[:TAG].
    pub image: String,
    /// Suppress progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Registry connection options.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `berth images` / `berth image ls`
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show images of this repository (and tag).
    pub repository: Option<String>,
    /// Only show image ids.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Show all images. Docker adds intermediate images of its legacy builder here; Berth keeps
    /// none (build steps live in the build cache), so the list is the same as without it.
    #[arg(long, short = 'a')]
    pub all: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Do not truncate ids.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Output format: `table`, `json` or a Go-style template such as '{{.Repository}}:{{.Tag}}'.
    #[arg(long)]
    pub format: Option<String>,
    /// Only images that match (`dangling=true|false`, `reference=PATTERN`, `label=KEY[=VALUE]`).
    #[arg(long, short = 'f', value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
}

/// `berth image …`
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images.
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Display detailed information on one or more images.
    Inspect(InspectArgs),
    /// Remove unused images.
    Prune(PruneArgs),
    /// Remove one or more images.
    Rm(RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
    /// Save images to a tar archive.
    Save(SaveArgs),
    /// Load images from a tar archive.
    Load(LoadArgs),
    /// Import a rootfs tarball as an image.
    Import(ImportArgs),
}

/// `berth image inspect` / `berth inspect`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Images to inspect.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Output format: `json` (default) or a Go-style template.
    #[arg(long, short = 'f')]
    pub format: Option<String>,
    /// Only objects of this type: `container`, `image` or `volume` (`inspect` alone).
    #[arg(long = "type", hide = true)]
    pub kind: Option<String>,
    /// Add the sizes of containers (`inspect` alone).
    #[arg(long, short = 's', hide = true)]
    pub size: bool,
}

/// `berth image prune`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all images no container uses, not just dangling ones.
    #[arg(long, short = 'a')]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(long, short = 'f')]
    pub force: bool,
    /// Only what matches: `until=TIME`, `label=KEY[=VALUE]`, `label!=KEY[=VALUE]`.
    #[arg(long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
}

/// `berth rmi`
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Images to remove.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Force removal: untag every name, and remove images that containers use.
    #[arg(long, short = 'f')]
    pub force: bool,
}

/// `berth tag`
#[derive(Debug, Args)]
pub struct TagArgs {
    /// Existing image (name, name:tag or id).
    pub source: String,
    /// New name.
    pub target: String,
}

/// `berth history`
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Image to show.
    pub image: String,
    /// Show full commands and ids.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image ids.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Sizes and dates in raw form.
    #[arg(long, short = 'H', default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    /// Output format: `table`, `json` or a Go-style template.
    #[arg(long)]
    pub format: Option<String>,
}

/// `berth login`
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry (default: docker.io).
    pub server: Option<String>,
    /// Username.
    #[arg(long, short = 'u')]
    pub username: Option<String>,
    /// Password (prefer --password-stdin).
    #[arg(long, short = 'p')]
    pub password: Option<String>,
    /// Read the password from stdin.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// Registry connection options.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `berth logout`
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry (default: docker.io).
    pub server: Option<String>,
}

/// Archive formats of `berth save`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// Docker's `docker save` layout (also read by podman).
    #[value(name = "docker-archive")]
    DockerArchive,
    /// An OCI image layout in a tar file.
    #[value(name = "oci-archive")]
    OciArchive,
}

/// `berth save`
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Images to save.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Write to this file instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Archive format.
    #[arg(long, value_enum, default_value = "docker-archive")]
    pub format: ArchiveFormat,
    /// Suppress progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `berth load`
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from this file instead of stdin.
    #[arg(long, short = 'i')]
    pub input: Option<PathBuf>,
    /// Suppress progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `berth convert`
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Image to convert: NAME[:TAG|@DIGEST]. One that is not in the store is fetched from its
    /// registry for the conversion only (its layers are not unpacked, nor is it added).
    pub image: String,
    /// The single-file image to write (conventionally `NAME.sqsh`); `berth run FILE` runs it.
    pub output: std::path::PathBuf,
    /// Compression of the squashfs file system: zstd, lz4, gzip or xz.
    #[arg(long, default_value = "zstd")]
    pub compression: String,
    /// Compression level: zstd 1-22 (default 3; higher is much slower to write, a little
    /// smaller, as fast to read), gzip 1-9 (default 9). lz4 and xz take none.
    #[arg(long, value_name = "N")]
    pub compression_level: Option<u32>,
    /// Suppress progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Platform to fetch when the image is not in the store (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// Registry connection options.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `berth import`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Rootfs tarball (plain, gzip or zstd), or `-` for stdin.
    pub file: String,
    /// Name for the new image.
    pub reference: Option<String>,
    /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE).
    #[arg(long, short = 'c')]
    pub change: Vec<String>,
    /// Commit message recorded in the image history.
    #[arg(long, short = 'm')]
    pub message: Option<String>,
    /// Platform recorded in the image (os/arch; default: this host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Print only the image id.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}
