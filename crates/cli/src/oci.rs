//! `berth oci …`: the OCI runtime command line, spelled as runc and crun spell it, so that
//! Slurm's `oci.conf` and other callers of a runtime can use Berth in their place.

use std::path::PathBuf;

use clap::Subcommand;

/// `berth oci VERB`. The global `--root` names the runtime's state directory here, as with runc.
#[derive(Debug, clap::Args)]
pub struct OciArgs {
    /// Accepted for runc compatibility; Berth runs rootless by construction, with or without it.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// The runtime operation.
    #[command(subcommand)]
    pub command: OciCommand,
}

/// The operations of the OCI runtime command line.
#[derive(Debug, Subcommand)]
pub enum OciCommand {
    /// Create a container from a bundle; its process waits before running the program.
    Create(OciCreateArgs),
    /// Run the program of a created container.
    Start(OciIdArgs),
    /// Print a container's state as runtime-spec JSON.
    State(OciIdArgs),
    /// Send a signal (default SIGTERM) to a container's process.
    Kill(OciKillArgs),
    /// Remove a stopped (or, with --force, any) container.
    Delete(OciDeleteArgs),
    /// Create and start a container, and wait for it unless detached.
    Run(OciRunArgs),
    /// Keep a created container's process (internal).
    #[command(name = "__monitor", hide = true)]
    Monitor(OciCreateArgs),
}

/// `berth oci create`
#[derive(Debug, clap::Args)]
pub struct OciCreateArgs {
    /// The bundle directory (holding config.json).
    #[arg(long, short = 'b', value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container process's pid to this file.
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is true.
    #[arg(long = "console-socket", value_name = "SOCK")]
    pub console_socket: Option<PathBuf>,
    /// Container id.
    pub id: String,
}

/// `berth oci run`
#[derive(Debug, clap::Args)]
pub struct OciRunArgs {
    /// What create takes.
    #[command(flatten)]
    pub create: OciCreateArgs,
    /// Return once the program runs, leaving the container to a background monitor.
    #[arg(long, short = 'd')]
    pub detach: bool,
}

/// `berth oci start|state ID`
#[derive(Debug, clap::Args)]
pub struct OciIdArgs {
    /// Container id.
    pub id: String,
}

/// `berth oci kill`
#[derive(Debug, clap::Args)]
pub struct OciKillArgs {
    /// Signal every process of the container, not only its first.
    #[arg(long, short = 'a')]
    pub all: bool,
    /// Container id.
    pub id: String,
    /// Signal name or number.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

/// `berth oci delete`
#[derive(Debug, clap::Args)]
pub struct OciDeleteArgs {
    /// Kill the container if it still runs, and succeed when it does not exist.
    #[arg(long, short = 'f')]
    pub force: bool,
    /// Container id.
    pub id: String,
}
