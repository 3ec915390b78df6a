//! Arguments of `run` and the container lifecycle commands.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::RegistryArgs;

/// Docker's flags also take `=true` or `=false` (`--rm=false`, `-t=false`), which a clap flag
/// refuses: each plain flag of `run`, `create` and `exec` takes an optional value instead, given
/// only after `=`, so `-it` and `--rm IMAGE` read as before.
fn go_style_bool(arg: clap::Arg) -> clap::Arg {
    if !matches!(arg.get_action(), clap::ArgAction::SetTrue) {
        return arg;
    }
    arg.action(clap::ArgAction::Set)
        .num_args(0..=1)
        .require_equals(true)
        .default_missing_value("true")
        .default_value("false")
        .hide_default_value(true)
        .value_name("true|false")
        .value_parser(clap::builder::BoolishValueParser::new())
}

/// `berth run`. Its `Default` is each field's zero value, which is not the command line's for
/// `pull` (`missing`), `sig_proxy` and `disable_content_trust` (both true).
#[derive(Debug, Args, Clone, Default)]
#[command(trailing_var_arg = true, disable_help_flag = true, mut_args = go_style_bool)]
pub struct RunArgs {
    /// Print help (`-h` is --hostname, as in Docker).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Image to run (name, id, an unpacked rootfs directory).
    pub image: String,
    /// Command and arguments (default: the image's ENTRYPOINT and CMD).
    #[arg(allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// Keep stdin open.
    #[arg(long, short = 'i')]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Run in the background and print the container id.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Attach to STDIN, STDOUT or STDERR (repeatable; default STDOUT and STDERR, and STDIN
    /// with -i).
    #[arg(long, short = 'a', value_name = "STREAM", value_parser = attach_stream)]
    pub attach: Vec<String>,
    /// Container name.
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (`K=V`, or `K` to copy it from this environment).
    #[arg(long, short = 'e')]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Bind mount a host path or a named volume: `SRC:DST[:ro|rw]`.
    #[arg(long, short = 'v')]
    pub volume: Vec<String>,
    /// Mount the binds and volumes of another container, at the same places:
    /// `CONTAINER[:ro|:rw]`.
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Mount: `type=bind|tmpfs|volume,source=…,target=…[,readonly]`.
    #[arg(long)]
    pub mount: Vec<String>,
    /// Mount a tmpfs: `PATH[:OPTIONS]`.
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Working directory inside the container.
    #[arg(long, short = 'w')]
    pub workdir: Option<String>,
    /// User inside the container: `name|uid[:group|gid]`.
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Override the image's ENTRYPOINT (`""` clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name.
    #[arg(long, short = 'h')]
    pub hostname: Option<String>,
    /// Mount the root filesystem read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Add a host device, `HOST[:CONTAINER[:PERMS]]`, or a CDI device, `vendor.com/class=name`.
    #[arg(long)]
    pub device: Vec<String>,
    /// NVIDIA GPUs from the job's allocation: `all`, a count, or `device=ID[,ID]`.
    #[arg(long)]
    pub gpus: Option<String>,
    /// MPI: `host` binds the host's MPI library, its dependencies and plug-ins in place of the
    /// image's, after checking that both have the same ABI.
    #[arg(long, value_name = "host|none")]
    pub mpi: Option<String>,
    /// Give the container every capability and no masked paths.
    #[arg(long)]
    pub privileged: bool,
    /// Add a capability.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop a capability.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Security options: `no-new-privileges[=true|false]`, `seccomp=FILE|unconfined`.
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Network: `none`, `host`, or `private` (loopback only).
    #[arg(long, alias = "net")]
    pub network: Option<String>,
    /// IPC namespace: `private` (the default), `shareable`, `host`, or `none` (no /dev/shm).
    #[arg(long)]
    pub ipc: Option<String>,
    /// Size of /dev/shm (`64m` unless given).
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// PID namespace: `host` or `private`.
    #[arg(long)]
    pub pid: Option<String>,
    /// UTS namespace: `host` (the host's hostname) or `private`.
    #[arg(long)]
    pub uts: Option<String>,
    /// Cgroup namespace: `host` or `private`.
    #[arg(long)]
    pub cgroupns: Option<String>,
    /// Add a line to /etc/hosts: `HOST:IP`.
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// A DNS server for /etc/resolv.conf (instead of the host's).
    #[arg(long)]
    pub dns: Vec<String>,
    /// A DNS search domain for /etc/resolv.conf.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// A DNS option for /etc/resolv.conf.
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// A supplementary group for the process: a name in the image's /etc/group, or a number.
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// A namespaced kernel parameter, `KEY=VALUE` (`net.*`, `fs.mqueue.*`, `kernel.shm*`, ...).
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// The container's NIS domain name.
    #[arg(long)]
    pub domainname: Option<String>,
    /// Restart policy: only `no`; there is no daemon to restart a container.
    #[arg(long)]
    pub restart: Option<String>,
    /// Publish a port (`HOST:CONTAINER`): only with `--network host`, where it is not needed.
    #[arg(long = "publish", short = 'p')]
    pub publish: Vec<String>,
    /// Publish every exposed port: only with `--network host`, where it changes nothing.
    #[arg(long = "publish-all", short = 'P')]
    pub publish_all: bool,
    /// Record a port (`80`, `53/udp`, `8000-8002`) as exposed, as the image's EXPOSE does.
    #[arg(long)]
    pub expose: Vec<String>,
    /// Skip image signature verification: accepted, as Berth verifies digests, not signatures.
    #[arg(long = "disable-content-trust", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub disable_content_trust: bool,
    /// Write the container id to this file.
    #[arg(long)]
    pub cidfile: Option<PathBuf>,
    /// Run a minimal init as PID 1 that reaps zombies and forwards signals.
    #[arg(long)]
    pub init: bool,
    /// Signal that stops the container (default: the image's STOPSIGNAL or SIGTERM).
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Seconds to wait after the stop signal before SIGKILL.
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<u64>,
    /// Set a label `K=V`.
    #[arg(long, short = 'l')]
    pub label: Vec<String>,
    /// Resource limit: `nofile=SOFT[:HARD]`.
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// CPU, memory and process limits (also what `update` changes).
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Adjust the out-of-memory killer's preference (-1000 to 1000).
    #[arg(long = "oom-score-adj", allow_negative_numbers = true)]
    pub oom_score_adj: Option<i32>,
    /// Read labels from a file of `KEY=VALUE` lines.
    #[arg(long = "label-file")]
    pub label_file: Vec<PathBuf>,
    /// Add an OCI annotation `KEY=VALUE` to the container's runtime spec.
    #[arg(long)]
    pub annotation: Vec<String>,
    /// How readily the kernel swaps the container's memory out, 0 to 100 (-1: the host's).
    #[arg(long = "memory-swappiness", allow_negative_numbers = true)]
    pub memory_swappiness: Option<i64>,
    /// Keep the out-of-memory killer away from the container's processes.
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Where a detached container's output goes: `json-file` (the default), `local` (the
    /// same here) or `none`.
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log option `max-size=SIZE` or `max-file=N`: rotate the log past that size, keeping
    /// that many files.
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Platform of the image to pull.
    #[arg(long)]
    pub platform: Option<String>,
    /// Pull policy: `missing`, `always` or `never`.
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Do not forward signals to the container.
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Run as the calling user with home, working directory and environment (the HPC profile).
    #[arg(long)]
    pub hpc: bool,
    /// Run profile: `docker` or `hpc`.
    #[arg(long, conflicts_with = "hpc")]
    pub profile: Option<String>,
    /// User namespace: `auto`, `keep-id` or `host`.
    #[arg(long)]
    pub userns: Option<String>,
    /// Suppress pull progress.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Registry connection options.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `berth exec`
#[derive(Debug, Args)]
#[command(trailing_var_arg = true, mut_args = go_style_bool)]
pub struct ExecArgs {
    /// Container name or id.
    pub container: String,
    /// Command and arguments.
    #[arg(required = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// Keep stdin open.
    #[arg(long, short = 'i')]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Run in the background.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Set an environment variable.
    #[arg(long, short = 'e')]
    pub env: Vec<String>,
    /// Read environment variables from a file of `KEY=VALUE` lines (`-e` wins).
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// Give the process every capability.
    #[arg(long)]
    pub privileged: bool,
    /// User inside the container.
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(long, short = 'w')]
    pub workdir: Option<String>,
}

/// `berth ps`
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers, not only running ones.
    #[arg(long, short = 'a')]
    pub all: bool,
    /// Only show ids.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Do not truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Output format: `table`, `json` or a Go-style template.
    #[arg(long)]
    pub format: Option<String>,
    /// Only containers that match (`id=`, `name=`, `label=`, `status=`, `exited=`, `ancestor=`).
    #[arg(long, short = 'f', value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Show the N last created containers, in any state.
    #[arg(long, short = 'n', value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub last: i64,
    /// Show the last created container, in any state.
    #[arg(long, short = 'l')]
    pub latest: bool,
    /// Show the size of each container's writable layer, and with its image's.
    #[arg(long, short = 's')]
    pub size: bool,
}

/// `berth stop` / `berth restart`
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Seconds to wait before killing.
    #[arg(long, short = 't', alias = "time")]
    pub timeout: Option<u64>,
    /// Signal to stop with (default: the container's stop signal).
    #[arg(long, short = 's')]
    pub signal: Option<String>,
}

/// `berth kill`
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Signal to send.
    #[arg(long, short = 's', default_value = "KILL")]
    pub signal: String,
}

/// `berth rm`
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Kill and remove running containers.
    #[arg(long, short = 'f')]
    pub force: bool,
    /// Also remove anonymous volumes.
    #[arg(long, short = 'v')]
    pub volumes: bool,
}

/// `berth logs`
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Container.
    pub container: String,
    /// Follow the output.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Number of lines from the end (`all` for everything).
    #[arg(long, short = 'n', default_value = "all")]
    pub tail: String,
    /// Show timestamps.
    #[arg(long, short = 't')]
    pub timestamps: bool,
    /// Show each line's attributes (`--log-opt labels=`, `env=`) before it.
    #[arg(long)]
    pub details: bool,
    /// Only lines from this time on: RFC 3339, Unix seconds, or a duration ago (`42m`).
    #[arg(long)]
    pub since: Option<String>,
    /// Only lines before this time, in the same forms as `--since`.
    #[arg(long)]
    pub until: Option<String>,
}

/// `berth attach`
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Container.
    pub container: String,
    /// Do not attach standard input (a detached container's is closed anyway).
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Pass the signals this command receives on to the container.
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Keys that detach (accepted: without standard input there is nothing to read them from;
    /// Ctrl-C with `--sig-proxy=false` detaches).
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
}

/// `berth commit`
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// The container whose changes become the new image's top layer.
    pub container: String,
    /// Name for the new image.
    pub reference: Option<String>,
    /// Commit message, recorded in the image history.
    #[arg(long, short = 'm')]
    pub message: Option<String>,
    /// Author, recorded in the image.
    #[arg(long, short = 'a')]
    pub author: Option<String>,
    /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL,
    /// EXPOSE).
    #[arg(long, short = 'c')]
    pub change: Vec<String>,
    /// Pause a running container while its files are read.
    #[arg(long, short = 'p', default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
}

/// `berth export`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The container whose file system is written.
    pub container: String,
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<std::path::PathBuf>,
}

/// The CPU, memory and process limits of `run` and `create`, which `update` changes.
#[derive(Debug, Args, Clone, Default)]
pub struct LimitArgs {
    /// Maximum number of processes (`-1`: no limit).
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Memory limit (`512m`, `2g`).
    #[arg(long, short = 'm')]
    pub memory: Option<String>,
    /// Limit on memory plus swap (`1g`), `-1` for unlimited swap; twice `--memory` if not given.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Soft memory limit the container is held to when the host runs short (`256m`).
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Number of CPUs (may be fractional).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPU time per period, in microseconds (`--cpu-quota 50000` is half a CPU).
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// Length of the CPU period, in microseconds (100000 unless given).
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// Relative CPU weight against other containers (1024 is everyone's default).
    #[arg(long = "cpu-shares", short = 'c')]
    pub cpu_shares: Option<i64>,
    /// CPUs the container may run on (`0-3,8`).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may allocate from (`0-1`).
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
}

/// `berth update`
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Containers, by name or id.
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// The new limits; those not given stay as they are.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Restart policy: only `no`.
    #[arg(long)]
    pub restart: Option<String>,
}

/// `berth rename`
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The container, by name or id.
    pub container: String,
    /// Its new name.
    pub new_name: String,
}

/// `berth start`
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Attach standard output and error, forward signals, and exit with the container's code.
    #[arg(long, short = 'a')]
    pub attach: bool,
    /// Attach the container's standard input.
    #[arg(long, short = 'i')]
    pub interactive: bool,
}

/// Commands that take a list of containers and nothing else.
#[derive(Debug, Args)]
pub struct ContainersArgs {
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `berth container inspect`
#[derive(Debug, Args)]
pub struct ContainerInspectArgs {
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Output format: `json` or a Go-style template.
    #[arg(long, short = 'f')]
    pub format: Option<String>,
    /// Add `SizeRw` and `SizeRootFs`: the writable layer's bytes, and with the image's.
    #[arg(long, short = 's')]
    pub size: bool,
}

/// `berth stats`
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Containers (default: all running).
    pub containers: Vec<String>,
    /// Print once and exit.
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Also containers that are not running (with zeros, as Docker shows them).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Full container ids.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Output format: `table`, `json` or a Go-style template.
    #[arg(long)]
    pub format: Option<String>,
}

/// `berth top`
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The container.
    pub container: String,
    /// Options for `ps` (default `-ef`), as `docker top` takes them.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_options: Vec<String>,
}

/// `berth cp`
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Keep the files' owners (uid and gid as the source has them).
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Follow a symbolic link given as the source.
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Print nothing but errors (cp prints nothing else anyway).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// `CONTAINER:PATH`, a host path, or `-` for a tar stream on stdin.
    pub source: String,
    /// `CONTAINER:PATH`, a host path, or `-` for a tar stream on stdout.
    pub destination: String,
}

/// `berth container …`
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// List containers.
    #[command(visible_alias = "list")]
    Ls(PsArgs),
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
    /// Display detailed information on containers.
    Inspect(ContainerInspectArgs),
    /// Remove stopped containers.
    Prune(crate::PruneArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Stop running containers.
    Stop(StopArgs),
    /// Send a signal to containers.
    Kill(KillArgs),
    /// Fetch the logs of a container.
    Logs(LogsArgs),
    /// Follow a running container's output, and pass it this command's signals, until it ends.
    Attach(AttachArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Block until containers stop, then print their exit codes.
    Wait(ContainersArgs),
    /// Pause all processes of containers.
    Pause(ContainersArgs),
    /// Unpause containers.
    Unpause(ContainersArgs),
}

/// `berth volume …`
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume.
    Create(VolumeNameArgs),
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls(VolumeLsArgs),
    /// Remove volumes.
    Rm(VolumeRmArgs),
    /// Display detailed information on volumes.
    Inspect(VolumeRmArgs),
}

/// `berth volume create`
#[derive(Debug, Args)]
pub struct VolumeNameArgs {
    /// Volume name (default: a random one).
    pub name: Option<String>,
}

/// `berth volume ls`
#[derive(Debug, Args)]
pub struct VolumeLsArgs {
    /// Only names.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Output format.
    #[arg(long)]
    pub format: Option<String>,
}

/// `berth volume rm` / `inspect`
#[derive(Debug, Args)]
pub struct VolumeRmArgs {
    /// Volumes.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Remove even when in use.
    #[arg(long, short = 'f')]
    pub force: bool,
}

/// A `-a` value, lower-cased: Docker takes any case.
fn attach_stream(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "stdin" | "stdout" | "stderr" => Ok(lower),
        _ => Err("valid streams are STDIN, STDOUT and STDERR".into()),
    }
}
