//! `berth build`.

use std::path::PathBuf;

use clap::Args;

use crate::RegistryArgs;

/// Options of `berth build`.
#[derive(Debug, Args, Clone)]
pub struct BuildArgs {
    /// Name and optionally a tag (`NAME[:TAG]`); may be repeated.
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tag: Vec<String>,
    /// Name of the Dockerfile (default: `CONTEXT/Dockerfile`).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_arg: Vec<String>,
    /// Build the stage of this name and the stages it needs, not the last one.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
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
    /// Registry options for pulling base images.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The build context directory.
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
}
