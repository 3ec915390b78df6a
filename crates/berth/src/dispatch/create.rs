//! `run`/`create`: from flags, image config, profile and host facts to a container record
//! holding the OCI runtime spec it will run with. Nothing here starts a process.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_cli::RunArgs;
use berth_oci::{ImageFiles, MountKind, MountSpec, NetworkMode, Profile, RunOptions, UsernsMode};
use berth_store::{ContainerRecord, ImageRecord, Store};
use serde_json::json;

use super::host::{random_id, random_name, Caller};
use super::run_flags::{
    check_readable, cpus, daemon_flags, labels, parse_add_host, parse_bytes, parse_device,
    parse_host_or_private, parse_ipc, parse_mount, parse_volume, resolv_conf, spec_extras,
};
use crate::humanize;
use crate::settings::{Settings, WritableLayer};

/// Files the container sees instead of the host's (`/proc/cpuinfo` filtered to its CPUs…).
pub struct Generated {
    pub host_path: PathBuf,
    pub contents: String,
}

/// The image a container is created from: a store image, a single-file image (mounted by
/// then) or a root file system directory.
pub struct ImageInput {
    /// The config digest (for a file or directory: the digest of its config, or of its path).
    pub id: berth_types::Digest,
    pub config: oci_spec::image::ImageConfiguration,
    /// Read-only layers, top-most first.
    pub lower_dirs: Vec<PathBuf>,
    /// Entries added to the record's `HostConfig` (how a single-file image is mounted).
    pub host_config: serde_json::Map<String, serde_json::Value>,
}

impl ImageInput {
    /// An image of the store, its layers as they are unpacked there.
    pub fn from_store(store: &Store, img: &ImageRecord) -> Result<ImageInput> {
        Ok(ImageInput {
            id: img.id.clone(),
            config: store.config(img)?,
            lower_dirs: img
                .layers
                .iter()
                .rev()
                .map(|d| store.layer_path(d))
                .collect(),
            host_config: serde_json::Map::new(),
        })
    }
}

pub struct Created {
    pub record: ContainerRecord,
    pub warnings: Vec<String>,
}

pub fn profile(s: &Settings, a: &RunArgs) -> Result<Profile> {
    let name = if a.hpc {
        "hpc".to_string()
    } else {
        a.profile
            .clone()
            .or_else(|| s.config.profile.clone())
            .unwrap_or_else(|| "docker".into())
    };
    match name.as_str() {
        "docker" => Ok(Profile::Docker),
        "hpc" => Ok(Profile::Hpc),
        other => bail!("unknown profile {other:?}: expected docker or hpc"),
    }
}

pub fn create(s: &Settings, store: &Store, img: &ImageInput, a: &RunArgs) -> Result<Created> {
    let caller = Caller::current();
    let id = random_id();
    let name = a.name.clone().unwrap_or_else(|| random_name(&id));
    if !valid_name(&name) {
        bail!("invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
    let config = &img.config;
    let lower_dirs = img.lower_dirs.clone();
    let files = ImageFiles {
        passwd: image_file(&lower_dirs, "etc/passwd"),
        group: image_file(&lower_dirs, "etc/group"),
    };
    let mut warnings = Vec::new();
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for v in &a.volume {
        mounts.push(parse_volume(store, v, &mut volumes)?);
    }
    for m in &a.mount {
        mounts.push(parse_mount(store, m, &mut volumes)?);
    }
    for t in &a.tmpfs {
        let (target, opts) = t.split_once(':').unwrap_or((t, ""));
        mounts.push(MountSpec {
            kind: MountKind::Tmpfs,
            source: "tmpfs".into(),
            target: target.into(),
            readonly: false,
            options: opts
                .split(',')
                .filter(|o| !o.is_empty())
                .map(String::from)
                .collect(),
        });
    }
    let inherited: Vec<_> =
        super::shared_mounts::volumes_from(store, &a.volumes_from, &mut volumes)?
            .into_iter()
            .filter(|m| !mounts.iter().any(|own| own.target == m.target))
            .collect();
    mounts.extend(inherited);
    // CDI devices and --gpus (berth-hpc decides, dispatch/devices.rs binds).
    let devices = super::devices::resolve(s, a, &caller.env)?;
    warnings.extend(devices.warnings);
    let device_hooks = devices.hooks;
    for d in a.device.iter().filter(|d| !super::devices::is_cdi(d)) {
        mounts.push(parse_device(d)?);
    }
    mounts.extend(devices.mounts);
    for m in &mounts {
        if matches!(m.kind, MountKind::Bind) {
            check_readable(Path::new(&m.source))?;
        }
    }
    let mut env = devices.env;
    env.extend(super::run_flags::read_env_files(&a.env_file)?);
    for e in &a.env {
        match e.split_once('=') {
            Some(_) => env.push(e.clone()),
            None => {
                if let Ok(v) = std::env::var(e) {
                    env.push(format!("{e}={v}"));
                }
            }
        }
    }
    // --mpi=host and what an MPI launcher left for its rank (berth-hpc decides, mpi.rs binds).
    let image_env = config
        .config()
        .as_ref()
        .and_then(|c| c.env().clone())
        .unwrap_or_default();
    let mpi = super::mpi::resolve(
        a.mpi.as_deref(),
        a.userns.as_deref() != Some("host"),
        s.config.mpi_library_dir.as_deref(),
        &store.paths().root().join("cache"),
        &lower_dirs,
        &image_env,
        &env,
        &caller.env,
    )?;
    warnings.extend(mpi.warnings);
    mounts.extend(mpi.mounts);
    env.extend(mpi.env);
    let profile = profile(s, a)?;
    let network = match a.network.as_deref() {
        None => None,
        Some("none") => Some(NetworkMode::None),
        Some("host") => Some(NetworkMode::Host),
        Some("private") | Some("bridge") | Some("default") => Some(NetworkMode::Private),
        Some(other) => bail!("invalid --network {other:?}: expected none, host or private"),
    };
    let userns = match a.userns.as_deref() {
        None | Some("") => None,
        Some("auto") => Some(UsernsMode::Auto),
        Some("keep-id") => Some(UsernsMode::KeepId),
        Some("host") => Some(UsernsMode::Host),
        Some(other) => bail!("invalid --userns {other:?}: expected auto, keep-id or host"),
    };
    let mut no_new_privileges = None;
    let mut seccomp = Seccomp::Default;
    for o in &a.security_opt {
        match o.as_str() {
            "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true" => {
                no_new_privileges = Some(true)
            }
            "no-new-privileges=false" | "no-new-privileges:false" => {
                no_new_privileges = Some(false)
            }
            s if s.starts_with("seccomp=") || s.starts_with("seccomp:") => {
                seccomp = match &s["seccomp=".len()..] {
                    "unconfined" => Seccomp::Unconfined,
                    file => Seccomp::File(
                        file.to_string(),
                        fs::read_to_string(file)
                            .with_context(|| format!("cannot read seccomp profile {file}"))?,
                    ),
                }
            }
            other => bail!("invalid --security-opt {other:?}"),
        }
    }
    let mut ulimits = Vec::new();
    for u in &a.ulimit {
        let (k, v) = u
            .split_once('=')
            .with_context(|| format!("invalid --ulimit {u:?}: expected NAME=SOFT[:HARD]"))?;
        let (soft, hard) = v.split_once(':').unwrap_or((v, v));
        let num = |x: &str| -> Result<u64> {
            if x == "-1" || x == "unlimited" {
                return Ok(u64::MAX);
            }
            x.parse()
                .with_context(|| format!("invalid --ulimit {u:?}: {x:?} is not a number"))
        };
        ulimits.push((k.to_string(), num(soft)?, num(hard)?));
    }

    // CPU visibility (and the Slurm environment) as data from berth-hpc.
    let cpu_limit = cpus(&a.limits)?;
    let online = fs::read_to_string(berth_hpc::CPU_ONLINE_PATH).unwrap_or_default();
    let whole_host = berth_hpc::narrows_nothing(
        &caller.cpus_allowed,
        a.limits.cpuset_cpus.as_deref(),
        cpu_limit,
        &online,
    );
    let mut env_keys: Vec<String> = config
        .config()
        .as_ref()
        .and_then(|c| c.env().clone())
        .unwrap_or_default()
        .iter()
        .chain(env.iter())
        .filter_map(|e| e.split('=').next().map(String::from))
        .collect();
    if profile_passes_env(&profile) {
        env_keys.extend(caller.env.iter().map(|(k, _)| k.clone()));
    }
    let visibility = if whole_host {
        Default::default()
    } else {
        berth_hpc::cpu_visibility(
            &caller.cpus_allowed,
            a.limits.cpuset_cpus.as_deref(),
            cpu_limit,
            &fs::read_to_string(berth_hpc::CPUINFO_PATH).unwrap_or_default(),
            &env_keys,
        )?
    };
    let slurm = berth_hpc::slurm(&caller.env);
    let dir = store.paths().container_dir(&id);
    let mut generated = Vec::new();
    let mut extra_mounts = Vec::new();
    for f in &visibility.files {
        let host_path = dir.join(
            f.value
                .container_path
                .trim_start_matches('/')
                .replace('/', "_"),
        );
        extra_mounts.push(MountSpec {
            kind: MountKind::Bind,
            source: host_path.display().to_string(),
            target: f.value.container_path.clone(),
            readonly: true,
            options: Vec::new(),
        });
        generated.push(Generated {
            host_path,
            contents: f.value.contents.clone(),
        });
    }
    let extra_env: Vec<(String, String)> = visibility
        .env
        .iter()
        .chain(slurm.env.iter())
        .map(|e| e.value.clone())
        .chain(mpi.extra_env)
        .collect();
    warnings.extend(visibility.warnings.iter().cloned());
    let affinity = visibility.cpus.as_ref().map(|c| c.value.clone());

    // Site mounts (config `site_mounts`) apply in the hpc profile; a path missing on this
    // node is skipped with a warning rather than failing every job.
    let mut site_mounts = Vec::new();
    for m in &s.config.site_mounts {
        let src = m.split(':').next().unwrap_or_default();
        if !Path::new(src).exists() {
            warnings.push(format!(
                "site mount {m:?} skipped: {src} does not exist on this node"
            ));
            continue;
        }
        let spec = if m.contains(':') {
            m.clone()
        } else {
            format!("{m}:{m}")
        };
        let mut ignored = Vec::new();
        site_mounts.push(
            parse_volume(store, &spec, &mut ignored)
                .with_context(|| format!("site_mounts entry {m:?}"))?,
        );
    }
    if a.uts.as_deref() == Some("host") && a.hostname.as_deref().is_some_and(|h| !h.is_empty()) {
        bail!("conflicting options: --hostname and --uts=host");
    }
    let opts = RunOptions {
        profile,
        command: a.command.clone(),
        entrypoint: a.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                Vec::new()
            } else {
                vec![e.clone()]
            }
        }),
        env,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        tty: a.tty,
        stdin_open: a.interactive,
        read_only: a.read_only,
        privileged: a.privileged,
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        no_new_privileges,
        mounts: extra_mounts.into_iter().chain(mounts).collect(),
        network,
        userns,
        ulimits,
        pid_host: parse_host_or_private("pid", a.pid.as_deref())?,
        ipc: parse_ipc(a.ipc.as_deref())?,
        // Docker's rule: 0 means the default size.
        shm_size: a
            .shm_size
            .as_deref()
            .map(|v| parse_bytes(v).with_context(|| format!("invalid --shm-size {v:?}")))
            .transpose()?
            .filter(|n| *n > 0),
        uts_host: parse_host_or_private("uts", a.uts.as_deref())?,
        cgroupns_host: parse_host_or_private("cgroupns", a.cgroupns.as_deref())?,
        group_add: a.group_add.clone(),
        caller: berth_oci::Caller {
            uid: caller.uid,
            gid: caller.gid,
            groups: caller.groups.clone(),
            user_name: caller.name.clone(),
            home: caller.home.clone(),
            cwd: caller.cwd.clone(),
            env: caller.env.clone(),
            subuids: caller.subuids,
            subgids: caller.subgids,
        },
        site_mounts,
        extra_env,
        container_id: id.clone(),
    };
    let mut built = berth_oci::build(config, &opts, &files)?;
    warnings.extend(std::mem::take(&mut built.warnings));
    spec_extras(&mut built.spec, a)?;
    daemon_flags(&built.spec, a, &mut warnings)?;
    // Files the spec builder generated (an /etc/passwd naming the caller) are bound like ours.
    let mut spec_mounts = built.spec.mounts().clone().unwrap_or_default();
    for f in &built.files {
        let host_path = dir.join(f.container_path.trim_start_matches('/').replace('/', "_"));
        spec_mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination(&f.container_path)
                .source(&host_path)
                .typ("bind")
                .options(vec![
                    "rbind".to_string(),
                    "ro".to_string(),
                    "rprivate".to_string(),
                ])
                .build()?,
        );
        generated.push(Generated {
            host_path,
            contents: f.contents.clone(),
        });
    }
    // /etc/hostname, /etc/hosts and /etc/resolv.conf as Docker provides them, unless the
    // user mounts their own there.
    let hostname = built
        .spec
        .hostname()
        .clone()
        .unwrap_or_else(super::host::hostname);
    let host_net = !built
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .iter()
        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network);
    let mut hosts = if host_net {
        fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n")
    };
    for h in &a.add_host {
        hosts.push_str(&parse_add_host(h)?);
        hosts.push('\n');
    }
    let resolv = resolv_conf(
        &fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        &a.dns,
        &a.dns_search,
        &a.dns_option,
    );
    let etc = [
        ("/etc/hostname", format!("{hostname}\n")),
        ("/etc/hosts", hosts),
        ("/etc/resolv.conf", resolv),
    ];
    for (target, contents) in etc {
        if spec_mounts
            .iter()
            .any(|m| m.destination() == Path::new(target))
        {
            continue;
        }
        let host_path = dir.join(target.trim_start_matches('/').replace('/', "_"));
        spec_mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination(target)
                .source(&host_path)
                .typ("bind")
                .options(vec!["rbind".to_string(), "rprivate".to_string()])
                .build()?,
        );
        generated.push(Generated {
            host_path,
            contents,
        });
    }
    built.spec.set_mounts(Some(spec_mounts));
    // Docker's rule: a privileged container runs unconfined, whatever the options say.
    let mut default_seccomp = None;
    if !a.privileged {
        let mut caps: Vec<String> = built
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.capabilities().as_ref())
            .and_then(|c| c.effective().as_ref())
            .map(|e| e.iter().map(|c| c.to_string()).collect())
            .unwrap_or_default();
        match &seccomp {
            Seccomp::Unconfined => {}
            // Resolved at each start, while the container's root is mounted (see
            // ContainerRecord::default_seccomp). HPC codes bind memory to NUMA nodes (mbind,
            // set_mempolicy), which Docker's profile only allows with CAP_SYS_NICE; the hpc
            // profile allows that group.
            Seccomp::Default => {
                if matches!(opts.profile, Profile::Hpc) {
                    caps.push("CAP_SYS_NICE".into());
                }
                default_seccomp = Some(caps);
            }
            Seccomp::File(file, text) => {
                let filter = berth_runtime::seccomp_from_docker_json(text, &caps)
                    .with_context(|| format!("seccomp profile {file}"))?;
                let mut linux = built.spec.linux().clone().unwrap_or_default();
                linux.set_seccomp(Some(filter));
                built.spec.set_linux(Some(linux));
            }
        }
    }
    if device_hooks != Default::default() {
        built.spec.set_hooks(Some(device_hooks));
    }
    let shared_userns = super::shared_userns::prepare(&mut built.spec, &caller.env, &a.env);
    let spec = serde_json::to_value(&built.spec)?;
    let image_cfg = serde_json::to_value(config.config())?;
    let stop_signal = a
        .stop_signal
        .clone()
        .or_else(|| image_cfg["StopSignal"].as_str().map(String::from))
        .unwrap_or_else(|| "SIGTERM".into());
    if berth_runtime::signal_by_name(&stop_signal).is_none() {
        bail!("invalid --stop-signal {stop_signal:?}");
    }
    let memory = a.limits.memory.as_deref().map(parse_bytes).transpose()?;
    let attach = super::run_flags::attached(a)?;
    let mut record = ContainerRecord {
        id: id.clone(),
        name,
        image: img.id.clone(),
        image_name: a.image.clone(),
        created: humanize::now_nanos(),
        config: json!({
            "Hostname": built.spec.hostname().clone().unwrap_or_default(),
            "User": a.user.clone().or_else(|| image_cfg["User"].as_str().map(String::from)).unwrap_or_default(),
            "Tty": a.tty,
            "OpenStdin": a.interactive,
            "AttachStdin": attach.0,
            "AttachStdout": attach.1,
            "AttachStderr": attach.2,
            "Env": built.spec.process().as_ref().and_then(|p| p.env().clone()),
            "Entrypoint": (!built.entrypoint.is_empty()).then_some(&built.entrypoint),
            "Cmd": (!built.cmd.is_empty()).then_some(&built.cmd),
            "Image": a.image,
            "WorkingDir": built.spec.process().as_ref().map(|p| p.cwd().display().to_string()),
            "Labels": labels(a)?,
            "StopSignal": stop_signal,
            "StopTimeout": a.stop_timeout.unwrap_or(10),
            "ExposedPorts": super::run_flags::exposed_ports(&image_cfg["ExposedPorts"], &a.expose)?,
        }),
        host_config: json!({
            "AutoRemove": a.rm,
            "Binds": a.volume,
            "VolumesFrom": (!a.volumes_from.is_empty()).then_some(&a.volumes_from),
            "Tmpfs": a.tmpfs.iter().map(|t| t.split_once(':').unwrap_or((t, ""))).collect::<std::collections::BTreeMap<_, _>>(),
            "ReadonlyRootfs": a.read_only,
            "Privileged": a.privileged,
            "NetworkMode": a.network.clone().unwrap_or_else(|| "private".into()),
            "Memory": memory.unwrap_or(0),
            "NanoCpus": cpu_limit.map(|c| (c * 1e9) as u64).unwrap_or(0),
            "CpusetCpus": a.limits.cpuset_cpus.clone().unwrap_or_default(),
            "PidsLimit": a.limits.pids_limit,
            "CpuAffinity": affinity,
            "Profile": if matches!(opts.profile, Profile::Hpc) { "hpc" } else { "docker" },
            "Init": a.init,
            "LogConfig": super::logging::log_config(a.log_driver.as_deref(), &a.log_opt)?,
            (super::shared_userns::HOST_CONFIG_KEY): shared_userns,
        }),
        lower_dirs,
        spec,
        volumes,
        layer_in_memory: layer_in_memory(s, a, &opts.profile, &mut warnings),
        default_seccomp,
    };
    let limits = super::limits::host_config(a, memory, &mut warnings)?;
    if let Some(h) = record.host_config.as_object_mut() {
        h.extend(limits.into_iter().map(|(k, v)| (k.to_string(), v)));
        h.extend(super::run_flags::host_config_extras(a, opts.shm_size));
        h.extend(img.host_config.clone());
    }
    let files: Vec<(&str, &[u8])> = generated
        .iter()
        .filter_map(|g| Some((g.host_path.file_name()?.to_str()?, g.contents.as_bytes())))
        .collect();
    store.create_container(&record, &files)?;
    Ok(Created { record, warnings })
}

/// `--security-opt seccomp=...`.
enum Seccomp {
    /// Docker's default profile.
    Default,
    /// No filter.
    Unconfined,
    /// A profile file in Docker's format: its path and contents.
    File(String, String),
}

/// Whether the container's writable layer lives in memory: for `--rm` containers only (it
/// cannot outlive a stop), by the `writable_layer` setting or else by the profile.
fn layer_in_memory(
    s: &Settings,
    a: &RunArgs,
    profile: &Profile,
    warnings: &mut Vec<String>,
) -> bool {
    let setting = s.config.writable_layer;
    let wanted = match setting {
        Some(WritableLayer::Memory) => true,
        Some(WritableLayer::Disk) => false,
        None => matches!(profile, Profile::Hpc),
    };
    if !a.rm || !wanted {
        return false;
    }
    if !berth_runtime::layer_in_memory_supported() {
        if setting.is_some() {
            warnings.push(
                "writable_layer = \"memory\" needs Linux 6.6 or later: the writable layer is on disk"
                    .into(),
            );
        }
        return false;
    }
    true
}

fn profile_passes_env(p: &Profile) -> bool {
    matches!(p, Profile::Hpc)
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|x| x.is_ascii_alphanumeric() || matches!(x, '_' | '.' | '-'))
}

/// A file of the image, looked up top layer first; a whiteout hides it.
fn image_file(lower: &[PathBuf], rel: &str) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    for dir in lower {
        let p = dir.join(rel);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_char_device() => return None,
            Ok(m) if m.is_file() => return fs::read_to_string(&p).ok(),
            _ => continue,
        }
    }
    None
}
