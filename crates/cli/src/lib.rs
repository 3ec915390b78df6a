//! Berth's command line, as data.
//!
//! Flag names, help text and environment variable names live here and nowhere else, spelled as
//! Docker spells them so that muscle memory and scripts carry over. Nothing in this crate does I/O
//! or validates beyond what clap parses: `berth::settings` turns these values, the config files and
//! the environment into resolved settings.
#![deny(missing_docs)]

mod build;
mod container;
mod env;
mod image;
mod oci;
mod operands;
mod quick;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use build::{BuildArgs, BuilderCommand, BuilderPruneArgs, LayerCompression, Progress};
pub use container::*;
pub use env::EnvVars;
pub use image::*;
pub use oci::*;

/// Top-level `berth` invocation.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Daemonless, rootless containers for HPC clusters, with Docker's command line",
    propagate_version = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Options that apply to every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted before or after any command.
#[derive(Debug, Default, clap::Args)]
pub struct GlobalArgs {
    /// Image store directory (default: /var/lib/berth for root, ~/.local/share/berth otherwise);
    /// under `berth oci`, the runtime's state directory (default: /run/berth/oci for root,
    /// $XDG_RUNTIME_DIR/berth/oci otherwise).
    #[arg(long, global = true, env = EnvVars::BERTH_ROOT, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Extra config file, read after /etc/berth/config.toml and ~/.config/berth/config.toml.
    #[arg(long, global = true, env = EnvVars::BERTH_CONFIG, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Docker credential file directory (holds config.json), as with docker --config.
    #[arg(long = "docker-config", global = true, env = EnvVars::DOCKER_CONFIG, value_name = "DIR")]
    pub docker_config: Option<PathBuf>,
    /// Print debug information on stderr.
    #[arg(long, short = 'D', global = true)]
    pub debug: bool,
}

/// Every `berth` command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
    /// List images.
    Images(ImagesArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Remove one or more images.
    Rmi(RmiArgs),
    /// Display detailed information on images.
    Inspect(InspectArgs),
    /// Log in to a registry.
    Login(LoginArgs),
    /// Log out from a registry.
    Logout(LogoutArgs),
    /// Save one or more images to a tar archive (streamed to stdout by default).
    Save(SaveArgs),
    /// Load images from a tar archive or stdin.
    Load(LoadArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(ImportArgs),
    /// Write an image as a single-file squashfs image that `berth run FILE` runs in place.
    Convert(ConvertArgs),
    /// Build an image from a Dockerfile.
    Build(BuildArgs),
    /// Manage the build cache.
    #[command(subcommand)]
    Builder(BuilderCommand),
    /// Run a command in a new container.
    Run(Box<RunArgs>),
    /// Create a new container without starting it.
    Create(Box<RunArgs>),
    /// Create a new image from a container's changes.
    Commit(CommitArgs),
    /// Export a container's file system as a tar archive.
    Export(ExportArgs),
    /// List the changes to files in a container's file system.
    Diff(ContainersArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// Change the resource limits of containers, running or not.
    Update(UpdateArgs),
    /// Start one or more created or stopped containers.
    Start(StartArgs),
    /// Stop, then start again, one or more containers.
    Restart(StopArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// List containers.
    Ps(PsArgs),
    /// Stop running containers (stop signal, then SIGKILL after the timeout).
    Stop(StopArgs),
    /// Send a signal to running containers.
    Kill(KillArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Fetch the logs of a container.
    Logs(LogsArgs),
    /// Follow a running container's output, and pass it this command's signals, until it ends.
    Attach(AttachArgs),
    /// Block until containers stop, then print their exit codes.
    Wait(ContainersArgs),
    /// Pause all processes of containers.
    Pause(ContainersArgs),
    /// Unpause containers.
    Unpause(ContainersArgs),
    /// Display the running processes of a container.
    Top(TopArgs),
    /// Display resource usage of containers.
    Stats(StatsArgs),
    /// List port mappings of a container.
    Port(ContainersArgs),
    /// Copy files between a container and the host.
    Cp(CpArgs),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Manage named volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// The OCI runtime command line (create, start, state, kill, delete, run), as runc's.
    Oci(OciArgs),
    /// Run as a detached container's monitor (internal).
    #[command(name = "__monitor", hide = true)]
    Monitor(MonitorArgs),
    /// Unpack a layer as root of a user namespace with the caller's subordinate ids (internal).
    #[command(name = "__unpack", hide = true)]
    Unpack(UnpackArgs),
    /// Remove a tree as root of a user namespace with the caller's subordinate ids (internal).
    #[command(name = "__rmtree", hide = true)]
    RmTree(RmTreeArgs),
    /// Keep a single-file image's file system alive for a while, through standard input
    /// (internal).
    #[command(name = "__linger", hide = true)]
    Linger(LingerArgs),
    /// Hold the user namespace an MPI job's containers share on this node (internal).
    #[command(name = "__userns", hide = true)]
    Userns(UsernsArgs),
    /// Manage Berth itself.
    #[command(subcommand)]
    System(SystemCommand),
    /// Display what Berth sees on this node: store, id mapping, cgroups, FUSE, CDI, Slurm.
    Info(InfoArgs),
    /// Show the Berth version information.
    Version(VersionArgs),
    /// Print a shell completion script.
    Completion(CompletionArgs),
}

/// `berth __monitor ID` (internal).
#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    /// Container id.
    pub id: String,
}

/// `berth __unpack BLOB DIFF_ID` (internal).
#[derive(Debug, clap::Args)]
pub struct UnpackArgs {
    /// The layer blob's digest.
    pub blob: String,
    /// The layer's diff id.
    pub diff_id: String,
}

/// `berth __rmtree PATH` (internal).
#[derive(Debug, clap::Args)]
pub struct RmTreeArgs {
    /// The tree to remove.
    pub path: PathBuf,
}

/// `berth __userns LOCK` (internal).
#[derive(Debug, clap::Args)]
pub struct UsernsArgs {
    /// The lock every container in the namespace holds shared.
    pub lock: PathBuf,
    /// Join this user namespace (`/proc/PID/ns/user`) instead of making one.
    #[arg(long, value_name = "NS")]
    pub join: Option<PathBuf>,
    /// Once no container holds the lock, wait this long for another before leaving.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub linger: u64,
}

/// `berth __linger MILLISECONDS FILE` (internal).
#[derive(Debug, clap::Args)]
pub struct LingerArgs {
    /// How long to hold the file system, in milliseconds.
    pub millis: u64,
    /// The image file, for `ps` to show.
    pub file: PathBuf,
    /// Then unmount this FUSE mount, unless another container holds it (its lock is standard
    /// input).
    #[arg(long, value_name = "DIR")]
    pub unmount: Option<PathBuf>,
}

/// `berth system …`
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show disk usage of the image store.
    Df(DfArgs),
    /// Display what Berth sees on this node.
    Info(InfoArgs),
    /// Remove stopped containers, unused images and build cache.
    Prune(PruneArgs),
}

/// `berth info` / `berth system info`
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Output format: `json` or a Go-style template such as '{{.IdMapping}}'.
    #[arg(long, short = 'f')]
    pub format: Option<String>,
}

/// `berth system df`
#[derive(Debug, clap::Args)]
pub struct DfArgs {
    /// Output format: `json` or a Go-style template.
    #[arg(long)]
    pub format: Option<String>,
}

/// `berth version`
#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// Output format: `json` or a Go-style template.
    #[arg(long, short = 'f')]
    pub format: Option<String>,
}

/// The exit status Docker's command line gives for what `e` reports: 125 for a bad flag
/// (unknown, missing its value, or a value it refuses), 1 for missing or extra arguments and
/// unknown commands, 0 for help and the version.
pub fn usage_exit_code(e: &clap::Error) -> i32 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
        // clap says "unexpected argument" for a stray operand too (`rename a b c`).
        ErrorKind::UnknownArgument => match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(arg)) if !arg.starts_with('-') => 1,
            _ => 125,
        },
        ErrorKind::InvalidValue
        | ErrorKind::ValueValidation
        | ErrorKind::NoEquals
        | ErrorKind::TooManyValues
        | ErrorKind::TooFewValues
        | ErrorKind::WrongNumberOfValues
        | ErrorKind::ArgumentConflict
        | ErrorKind::InvalidUtf8 => 125,
        _ => 1,
    }
}

/// `berth completion SHELL`
#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// Shell to generate the script for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

impl Cli {
    /// Parses the process's arguments as [`Parser::parse`] does. `run` and `exec`, whose start
    /// is timed in milliseconds, are first tried without clap for the common flags of `run`
    /// (see `quick`), then against a command tree holding only them: building the whole tree
    /// (every command and flag) costs more CPU than the rest of Berth's own work to start a
    /// container. Everything else, and anything that small tree refuses (help and errors
    /// included), goes through the whole tree, so what users see is the same. A mistake on the command line ends the process with Docker's status (see
    /// [`usage_exit_code`]).
    pub fn parse_args() -> Cli {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        quick::run(&args)
            .or_else(|| Cli::parse_quick(&args))
            .unwrap_or_else(|| {
                Cli::parse_whole(&args).unwrap_or_else(|e| {
                    use clap::error::ErrorKind;
                    let e = match e.kind() {
                        // `docker volume`: the group's help, on standard output, and success.
                        ErrorKind::MissingSubcommand
                        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                            let help = args.iter().cloned().chain(["--help".into()]);
                            Cli::try_parse_from(help).err().unwrap_or(e)
                        }
                        _ => e,
                    };
                    let _ = e.print();
                    std::process::exit(usage_exit_code(&e))
                })
            })
    }

    /// [`Cli::parse_args`] through the whole tree, options of `run`, `create` and `exec`
    /// ending at their image or container as in Docker (see `operands`).
    pub fn parse_whole(args: &[std::ffi::OsString]) -> Result<Cli, clap::Error> {
        use clap::CommandFactory;
        let mut args = args.to_vec();
        let named = |a: &std::ffi::OsString| a == "run" || a == "create" || a == "exec";
        if args.iter().skip(1).any(named) {
            operands::end_options_at_operand(&Cli::command(), &mut args);
        }
        Cli::try_parse_from(&args)
    }

    /// The quick path of [`Cli::parse_args`]; `None` where it does not apply.
    pub fn parse_quick(args: &[std::ffi::OsString]) -> Option<Cli> {
        use clap::{Args, FromArgMatches};
        if !args.iter().skip(1).any(|a| a == "run" || a == "exec") {
            return None;
        }
        let tree = clap::Command::new("berth")
            .disable_help_subcommand(true)
            .subcommand(RunArgs::augment_args(clap::Command::new("run")))
            .subcommand(ExecArgs::augment_args(clap::Command::new("exec")));
        let tree = GlobalArgs::augment_args(tree);
        let mut args = args.to_vec();
        operands::end_options_at_operand(&tree, &mut args);
        let m = tree.try_get_matches_from(&args).ok()?;
        let global = GlobalArgs::from_arg_matches(&m).ok()?;
        let command = match m.subcommand()? {
            ("run", sub) => Command::Run(Box::new(RunArgs::from_arg_matches(sub).ok()?)),
            ("exec", sub) => Command::Exec(ExecArgs::from_arg_matches(sub).ok()?),
            _ => return None,
        };
        Some(Cli { global, command })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_quick_parse_agrees_with_the_whole_tree() {
        let same: &[&[&str]] = &[
            &["berth", "run", "--rm", "img", "true"],
            &[
                "berth", "--root", "/x", "run", "-d", "--name", "n", "-e", "A=1", "-v", "/a:/b:ro",
                "--cpus", "2", "img", "sh", "-c", "echo hi",
            ],
            &["berth", "run", "--root", "/y", "--rm", "-it", "img"],
            &[
                "berth",
                "run",
                "-h",
                "host",
                "--network",
                "none",
                "img",
                "--rm",
                "-x",
            ],
            &["berth", "--debug", "run", "--hpc", "--gpus", "all", "img"],
            &["berth", "exec", "-i", "c", "true"],
            &["berth", "run", "--entrypoint", "sh", "img", "-c", "echo hi"],
            &["berth", "exec", "c", "-x"],
            &[
                "berth", "exec", "-u", "1000", "-w", "/tmp", "-e", "X=1", "c", "ls", "-la",
            ],
        ];
        for argv in same {
            let args: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
            let quick = Cli::parse_quick(&args).unwrap_or_else(|| panic!("{argv:?}"));
            let whole = Cli::parse_whole(&args).unwrap();
            assert_eq!(format!("{quick:?}"), format!("{whole:?}"), "{argv:?}");
            if let Some(read) = quick::run(&args) {
                assert_eq!(format!("{read:?}"), format!("{whole:?}"), "{argv:?}");
            }
        }
        let whole_only: &[&[&str]] = &[
            &["berth", "run", "--help"],
            &["berth", "run", "--version"],
            &["berth", "run", "--bogus", "img"],
            &["berth", "run"],
            &["berth", "ps", "-a"],
            &["berth", "container", "run", "img"],
            &["berth", "images", "run"],
        ];
        for argv in whole_only {
            let args: Vec<std::ffi::OsString> = argv.iter().map(Into::into).collect();
            assert!(Cli::parse_quick(&args).is_none(), "{argv:?}");
        }
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn docker_spellings_parse() {
        let c = Cli::try_parse_from(["berth", "pull", "-q", "--platform", "linux/amd64", "alpine"]);
        assert!(c.is_ok());
        let c = Cli::try_parse_from(["berth", "images", "--format", "{{.Repository}}"]).unwrap();
        assert!(matches!(c.command, Command::Images(_)));
        let c = Cli::try_parse_from(["berth", "push", "--tls-verify=false", "x"]).unwrap();
        match c.command {
            Command::Push(p) => assert_eq!(p.registry.tls_verify, Some(false)),
            _ => panic!(),
        }
    }

    #[test]
    fn runc_spellings_parse() {
        let c = Cli::try_parse_from([
            "berth",
            "oci",
            "--root",
            "/run/x",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "id1",
        ])
        .unwrap();
        assert_eq!(
            c.global.root.as_deref(),
            Some(std::path::Path::new("/run/x"))
        );
        match c.command {
            Command::Oci(OciArgs {
                command: OciCommand::Create(a),
                ..
            }) => assert_eq!((a.id.as_str(), a.bundle.to_str()), ("id1", Some("/b"))),
            _ => panic!(),
        }
        let c = Cli::try_parse_from(["berth", "oci", "--rootless=true", "kill", "-a", "x", "9"]);
        assert!(c.is_ok());
        let c = Cli::try_parse_from(["berth", "oci", "delete", "--force", "x"]);
        assert!(c.is_ok());
    }
}
