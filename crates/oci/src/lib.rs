//! From an image and a command line to an OCI runtime spec.
//!
//! `berth run` gathers three things: the image's configuration (entrypoint, command, environment,
//! user, working directory), the options the user typed, and a profile. [`build`] turns them into
//! one [`oci_spec::runtime::Spec`], which the runtime then follows to the letter. Nothing here
//! reads a file, asks the kernel or touches the network: the image's `/etc/passwd` and
//! `/etc/group` arrive as text in [`ImageFiles`], the caller's identity and environment arrive in
//! [`Caller`]. That keeps every rule below a pure function, tested as a table of cases, and lets
//! `berth run --dry-run` print exactly what would run.
//!
//! # Two profiles
//!
//! The **docker** profile reproduces `docker run`: root inside (mapped to the caller), new mount,
//! pid, ipc, uts, network and cgroup namespaces, the image's `USER` honoured, Docker's default
//! capabilities, masked paths and mounts. Where Docker's behaviour is documented (how
//! `--entrypoint` and a command combine, which variable wins, what `--env-file` accepts, how
//! `-u name:group` resolves) the code follows it, case by case.
//!
//! The **hpc** profile makes a container behave like the caller's own process on a cluster node:
//! the caller's uid, gid and groups (mapped to themselves), only user and mount namespaces (the
//! host's pid, network, ipc and hostname, so MPI, shared memory and the scheduler see a normal
//! process), the caller's environment passed through minus a denylist
//! ([`HPC_ENV_DENYLIST`]), `$HOME`, the working directory, `/tmp` and `/var/tmp` bound in as
//! Apptainer does, and the site's mounts. Flags override either profile: `--network none`,
//! `--pid=private`, `--hostname` or `--userns=auto` give back the corresponding isolation.
//!
//! # What the runtime is told
//!
//! The spec is complete: mounts in the order they must happen, id mappings, namespaces,
//! capabilities, masked paths. Two things go beyond the spec's own fields: the
//! [`KEEP_GROUPS_ANNOTATION`] (crun's name for "do not call `setgroups`"), which the caller's
//! identity needs because its supplementary groups cannot be named inside a user namespace, and
//! [`Built::files`], small files such as an `/etc/passwd` that knows the caller, to be placed
//! over the image's. Anything surprising is reported in [`Built::warnings`], never printed here.
#![deny(missing_docs)]

mod command;
mod env;
mod mounts;
mod security;
mod user;
mod userns;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;

use oci_spec::runtime::{Linux, LinuxNamespace, Process, Root, Spec};

pub use env::{parse_env_file, DEFAULT_PATH, HPC_ENV_DENYLIST};
pub use security::{all_capabilities, ALL_CAPS, DEFAULT_CAPS, MASKED_PATHS, READONLY_PATHS};
pub use user::{resolve_user, ResolvedUser};
pub use userns::{id_mappings, IdMappings};

/// Annotation asking the runtime to keep the process's supplementary groups instead of calling
/// `setgroups`. The name is crun's, so a spec written here means the same to crun.
pub const KEEP_GROUPS_ANNOTATION: &str = "run.oci.keep_original_groups";

/// Which set of defaults applies (see the crate documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// Docker's semantics: isolated, root inside.
    #[default]
    Docker,
    /// The caller's own process, in the image's filesystem.
    Hpc,
}

/// `--network`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// A new network namespace with only loopback.
    Private,
    /// Docker's `--network none`; here the same as [`NetworkMode::Private`].
    None,
    /// The host's network namespace.
    Host,
}

/// `--ipc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpcMode {
    /// A new ipc namespace with its own `/dev/shm` (Docker's default).
    Private,
    /// Docker's `shareable`: here the same as [`IpcMode::Private`].
    Shareable,
    /// The host's ipc namespace and `/dev/shm`.
    Host,
    /// A new ipc namespace and no `/dev/shm` at all.
    None,
}

/// `--userns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsernsMode {
    /// Root inside, mapped to the caller; other ids to the caller's subordinate ranges.
    Auto,
    /// The caller's uid and gid inside, mapped to themselves.
    KeepId,
    /// No user namespace; only for a root caller.
    Host,
}

/// One contiguous range of an id mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRange {
    /// First id inside the container.
    pub container: u32,
    /// First id on the host it stands for.
    pub host: u32,
    /// How many ids.
    pub size: u32,
}

/// Who runs the container, as the caller found out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Login name.
    pub user_name: String,
    /// Home directory (from the host's passwd entry).
    pub home: String,
    /// Current working directory.
    pub cwd: String,
    /// Environment, in order.
    pub env: Vec<(String, String)>,
    /// Subordinate uids from `/etc/subuid`: `(start, count)`.
    pub subuids: Option<(u32, u32)>,
    /// Subordinate gids from `/etc/subgid`: `(start, count)`.
    pub subgids: Option<(u32, u32)>,
}

/// Kinds of mounts a user asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountKind {
    /// `-v /host:/ctr`, `--mount type=bind`.
    Bind,
    /// `--tmpfs /ctr`, `--mount type=tmpfs`.
    Tmpfs,
    /// A named volume, already resolved to a host directory by the caller.
    Volume,
}

/// One mount asked for by the user or the site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec {
    /// What kind of mount.
    pub kind: MountKind,
    /// Host path (volumes resolved by the caller); ignored for tmpfs.
    pub source: String,
    /// Absolute path inside the container.
    pub target: String,
    /// Read-only.
    pub readonly: bool,
    /// Further mount options (`nosuid`, `size=1g`, `rshared`…); they override the defaults.
    pub options: Vec<String>,
}

/// Everything `berth run` was asked, after parsing and after reading the caller's state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunOptions {
    /// `--hpc` or the configured profile.
    pub profile: Profile,
    /// Arguments after the image name.
    pub command: Vec<String>,
    /// `--entrypoint`; `Some(vec![])` (from `--entrypoint ""`) clears the image's.
    pub entrypoint: Option<Vec<String>>,
    /// `-e` and `--env-file`, already `KEY=VALUE`. A bare `KEY` unsets it, as in Docker.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-h`.
    pub hostname: Option<String>,
    /// `-t`.
    pub tty: bool,
    /// `-i`; attaching stdin is the runtime's business, the spec does not change.
    pub stdin_open: bool,
    /// `--read-only`.
    pub read_only: bool,
    /// `--privileged`.
    pub privileged: bool,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--security-opt no-new-privileges[=bool]`; unset means "unless privileged".
    pub no_new_privileges: Option<bool>,
    /// `-v`, `--mount`, `--tmpfs`, in the order given.
    pub mounts: Vec<MountSpec>,
    /// `--network`; unset means the profile's default.
    pub network: Option<NetworkMode>,
    /// `--userns`; unset means the profile's default.
    pub userns: Option<UsernsMode>,
    /// `--ulimit name=soft:hard`, as `(name, soft, hard)`.
    pub ulimits: Vec<(String, u64, u64)>,
    /// `--pid=host` (`Some(true)`) or `--pid=private` (`Some(false)`).
    pub pid_host: Option<bool>,
    /// `--ipc`; unset means the profile's default (Docker's private, the hpc profile's host).
    pub ipc: Option<IpcMode>,
    /// `--shm-size` in bytes; unset means Docker's 64 MiB.
    pub shm_size: Option<u64>,
    /// `--uts=host` (`Some(true)`) or `--uts=private` (`Some(false)`).
    pub uts_host: Option<bool>,
    /// `--cgroupns=host` (`Some(true)`) or `--cgroupns=private` (`Some(false)`).
    pub cgroupns_host: Option<bool>,
    /// `--group-add`: group names (from the image's `/etc/group`) or numbers.
    pub group_add: Vec<String>,
    /// Who runs it.
    pub caller: Caller,
    /// The site's mounts, applied in the hpc profile.
    pub site_mounts: Vec<MountSpec>,
    /// Contributed variables (from `berth-hpc`), set only where nobody else set them.
    pub extra_env: Vec<(String, String)>,
    /// The container's full id.
    pub container_id: String,
}

/// The contents of the image's account files, when it has them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageFiles {
    /// `/etc/passwd`.
    pub passwd: Option<String>,
    /// `/etc/group`.
    pub group: Option<String>,
}

/// A small file the runtime places over the image's (bind-mounted from the bundle).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Absolute path inside the container.
    pub container_path: String,
    /// The whole contents.
    pub contents: String,
}

/// What [`build`] produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// The runtime spec; `root.path` is `rootfs`, relative to the bundle.
    pub spec: Spec,
    /// Files to place into the container (an `/etc/passwd` naming the caller, when needed).
    pub files: Vec<GeneratedFile>,
    /// Things the user should hear about, one line each.
    pub warnings: Vec<String>,
    /// The entrypoint part of the process's arguments (empty when there is none).
    pub entrypoint: Vec<String>,
    /// The command part, after the entrypoint.
    pub cmd: Vec<String>,
}

/// Why a spec could not be built. Each message names the input at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OciError {
    /// Neither the image nor the command line gave anything to run.
    #[error("no command specified")]
    NoCommand,
    /// An environment entry with an empty name.
    #[error("invalid environment variable {0:?}: the name is empty")]
    InvalidEnv(String),
    /// A line of an `--env-file` was refused.
    #[error("{file}:{line}: {reason}")]
    EnvFile {
        /// The file, as named on the command line.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// `-u name` or `USER name` with no such entry in the image's `/etc/passwd`.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    /// `--group-add` where the process keeps the caller's own groups.
    #[error("--group-add {0}: the container keeps the caller's own groups (hpc profile, --userns=keep-id)")]
    GroupAddWithOwnGroups(String),
    /// `-u user:name` with no such entry in the image's `/etc/group`.
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    /// A numeric uid or gid outside what the kernel accepts.
    #[error("invalid user {0:?}: uids and gids must be in range 0-2147483647")]
    IdOutOfRange(String),
    /// The resolved user or group has no id inside the user namespace.
    #[error("{what} {id} is not mapped into the container's user namespace: {hint}")]
    Unmapped {
        /// `uid` or `gid`.
        what: &'static str,
        /// The id.
        id: u32,
        /// What would map it.
        hint: String,
    },
    /// `--userns=host` from an unprivileged caller.
    #[error(
        "--userns=host needs root: uid {0} cannot create a container without a user namespace"
    )]
    UsernsHostNeedsRoot(u32),
    /// A capability name Berth does not know.
    #[error("unknown capability {name:?} in {flag}")]
    UnknownCapability {
        /// The name as given.
        name: String,
        /// `--cap-add` or `--cap-drop`.
        flag: &'static str,
    },
    /// An `--ulimit` name Docker does not know.
    #[error("unknown ulimit {0:?}")]
    UnknownUlimit(String),
    /// An `--ulimit` whose soft limit exceeds its hard limit.
    #[error("ulimit {name}: soft limit {soft} is greater than hard limit {hard}")]
    UlimitSoftAboveHard {
        /// The limit's name.
        name: String,
        /// Soft limit.
        soft: u64,
        /// Hard limit.
        hard: u64,
    },
    /// A working directory that is not absolute.
    #[error("invalid working directory {0:?}: it must be an absolute path")]
    RelativeWorkdir(String),
    /// A mount target that is not absolute.
    #[error("invalid mount target {0:?}: it must be an absolute path")]
    RelativeMountTarget(String),
}

/// Builds the runtime spec for one container.
///
/// `config` is the image's configuration, `opts` what the user asked and who they are, `files`
/// the image's account files. See the crate documentation for the rules; each is tested in the
/// module that applies it.
pub fn build(
    config: &oci_spec::image::ImageConfiguration,
    opts: &RunOptions,
    files: &ImageFiles,
) -> Result<Built, OciError> {
    let image = config.config().clone().unwrap_or_default();
    let mut warnings = Vec::new();

    let (entrypoint, cmd) = command::entrypoint_and_cmd(&image, opts)?;
    let args: Vec<String> = entrypoint.iter().chain(&cmd).cloned().collect();
    let cwd = command::workdir(&image, opts)?;

    let userns = opts.userns.unwrap_or(match opts.profile {
        Profile::Docker => UsernsMode::Auto,
        Profile::Hpc => UsernsMode::KeepId,
    });
    let maps = id_mappings(userns, &opts.caller)?;
    let namespaces = userns::namespaces(opts, maps.is_some());
    let hostname = namespaces
        .contains(&userns::Ns::Uts)
        .then(|| command::hostname(opts));

    let mut ident = user::identity(&image, opts, userns, files)?;
    user::add_groups(&mut ident, &opts.group_add, files)?;
    let additional_gids =
        userns::check_identity(&ident, maps.as_ref(), &opts.caller, &mut warnings)?;

    let env = env::environment(&image, opts, &ident.home, hostname.as_deref())?;
    let mount_list = mounts::mounts(
        opts,
        &mounts::Isolation::of(&namespaces, maps.as_ref(), opts.privileged),
        &mut warnings,
    )?;
    let caps = security::capabilities(opts, ident.uid)?;
    let rlimits = security::rlimits(&opts.ulimits)?;

    let mut process = Process::default();
    process.set_terminal(Some(opts.tty));
    process.set_console_size(None);
    let mut user = oci_spec::runtime::User::default();
    user.set_uid(ident.uid);
    user.set_gid(ident.gid);
    user.set_additional_gids((!additional_gids.is_empty()).then_some(additional_gids));
    process.set_user(user);
    process.set_args(Some(args));
    process.set_env(Some(env));
    process.set_cwd(PathBuf::from(cwd));
    process.set_capabilities(Some(caps));
    process.set_rlimits((!rlimits.is_empty()).then_some(rlimits));
    process.set_no_new_privileges(Some(opts.no_new_privileges.unwrap_or(!opts.privileged)));

    let mut linux = Linux::default();
    linux.set_resources(None);
    linux.set_namespaces(Some(
        namespaces
            .iter()
            .map(|ns| {
                let mut n = LinuxNamespace::default();
                n.set_typ(ns.oci());
                n
            })
            .collect(),
    ));
    if let Some(maps) = &maps {
        linux.set_uid_mappings(Some(maps.uids.iter().map(userns::oci_range).collect()));
        linux.set_gid_mappings(Some(maps.gids.iter().map(userns::oci_range).collect()));
    }
    let (masked, readonly) = security::masked_paths(opts.privileged);
    linux.set_masked_paths(Some(masked));
    linux.set_readonly_paths(Some(readonly));

    let mut root = Root::default();
    root.set_path(PathBuf::from("rootfs"));
    root.set_readonly(Some(opts.read_only));

    let mut annotations = HashMap::new();
    if ident.keep_groups {
        annotations.insert(KEEP_GROUPS_ANNOTATION.to_string(), "1".to_string());
    }

    let mut spec = Spec::default();
    spec.set_version(oci_spec::runtime::VERSION.to_string());
    spec.set_root(Some(root));
    spec.set_mounts(Some(mount_list));
    spec.set_process(Some(process));
    spec.set_hostname(hostname);
    spec.set_annotations((!annotations.is_empty()).then_some(annotations));
    spec.set_linux(Some(linux));

    Ok(Built {
        spec,
        files: ident.files,
        warnings,
        entrypoint,
        cmd,
    })
}
