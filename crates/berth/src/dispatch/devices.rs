//! `--device vendor.com/class=name` and `--gpus`: reads the CDI spec files and the NVIDIA
//! driver's traces on the host, lets berth-hpc decide what they mean, and turns the edits it
//! returns into binds and variables for the spec builder.
//!
//! A user namespace may not create device nodes, so a CDI device node is the host's node bound
//! at the container path, as `--device HOST:CONTAINER` does: its type and numbers are checked
//! against the spec, while its owner and mode stay the host's (a bind cannot change them).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use berth_cli::RunArgs;
use berth_hpc::{DeviceEdits, DeviceError, DeviceNode, Registry, SpecText};
use berth_oci::{MountKind, MountSpec};

use crate::settings::Settings;

/// What the requested devices add to the container.
#[derive(Default)]
pub struct Devices {
    /// Binds (device nodes, driver files) and tmpfs mounts.
    pub mounts: Vec<MountSpec>,
    /// `NAME=value` entries; the user's `-e` still wins over them.
    pub env: Vec<String>,
    /// OCI hooks the specs ask for, run by the runtime at their points.
    pub hooks: oci_spec::runtime::Hooks,
    pub warnings: Vec<String>,
}

/// Whether a `--device` value names a CDI device rather than a host path.
pub fn is_cdi(d: &str) -> bool {
    !d.starts_with('/') && d.contains('=')
}

/// The CDI devices among `--device` and the GPUs of `--gpus`, resolved. Spec files are only
/// read when one of them is asked for, so a plain `run` pays nothing.
pub fn resolve(s: &Settings, a: &RunArgs, caller_env: &[(String, String)]) -> Result<Devices> {
    let mut requests: Vec<String> = a.device.iter().filter(|d| is_cdi(d)).cloned().collect();
    if requests.is_empty() && a.gpus.is_none() {
        return Ok(Devices::default());
    }
    let dirs: Vec<String> = match &s.config.cdi_spec_dirs {
        Some(d) => d.iter().map(|p| p.display().to_string()).collect(),
        None => berth_hpc::CDI_SPEC_DIRS
            .iter()
            .map(|d| d.to_string())
            .collect(),
    };
    let (registry, mut warnings) = load(&dirs);
    // A device missing because its spec file was skipped should say so in the same line.
    let explain = |e: DeviceError, warnings: &[String]| -> anyhow::Error {
        match e {
            DeviceError::UnknownDevice { .. } if !warnings.is_empty() => {
                anyhow!("{e} (also: {})", warnings.join("; "))
            }
            e => e.into(),
        }
    };
    let mut edits = registry
        .resolve(&requests)
        .map_err(|e| explain(e, &warnings))?;
    if let Some(flag) = &a.gpus {
        let (names, gpu) = gpus(flag, &registry, &dirs, caller_env, &mut warnings)?;
        requests.extend(names);
        edits.extend(gpu);
    }
    let hooks = oci_hooks(&edits.hooks)?;
    let mut out = apply(edits, &mut warnings)?;
    out.hooks = hooks;
    out.warnings = warnings;
    Ok(out)
}

/// The specs' hooks as the runtime spec's, in order, each at its point. A hook program that
/// is missing is named with the spec file that asked for it, before anything starts.
fn oci_hooks(list: &[berth_hpc::Sourced<berth_hpc::Hook>]) -> Result<oci_spec::runtime::Hooks> {
    let mut hooks = oci_spec::runtime::Hooks::default();
    for h in list {
        let v = &h.value;
        // startContainer hooks run inside the container, where their path resolves.
        if v.hook_name != "startContainer" && !Path::new(&v.path).is_file() {
            bail!(
                "{}: {} hook {} does not exist on this host",
                h.source,
                v.hook_name,
                v.path
            );
        }
        let mut hook = oci_spec::runtime::Hook::default();
        hook.set_path(v.path.clone().into());
        hook.set_args(Some(v.args.clone()).filter(|a| !a.is_empty()));
        hook.set_env(Some(v.env.clone()).filter(|e| !e.is_empty()));
        hook.set_timeout(v.timeout);
        let slot = match v.hook_name.as_str() {
            #[allow(deprecated)]
            "prestart" => hooks.prestart_mut(),
            "createRuntime" => hooks.create_runtime_mut(),
            "createContainer" => hooks.create_container_mut(),
            "startContainer" => hooks.start_container_mut(),
            "poststart" => hooks.poststart_mut(),
            "poststop" => hooks.poststop_mut(),
            other => bail!("{}: unknown hook name {other:?}", h.source),
        };
        slot.get_or_insert_with(Vec::new).push(hook);
    }
    Ok(hooks)
}

/// Every spec file of `dirs`, parsed; unreadable and invalid files become warnings.
fn load(dirs: &[String]) -> (Registry, Vec<String>) {
    let listings: Vec<(String, Vec<String>)> = dirs
        .iter()
        .map(|d| {
            let names = fs::read_dir(d)
                .map(|rd| {
                    rd.flatten()
                        .filter_map(|e| e.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default();
            (d.clone(), names)
        })
        .collect();
    let mut warnings = Vec::new();
    let mut files = Vec::new();
    for (path, priority) in berth_hpc::spec_paths(&listings) {
        match fs::read_to_string(&path) {
            Ok(text) => files.push(SpecText {
                path,
                text,
                priority,
            }),
            Err(e) => warnings.push(format!("cannot read cdi spec {path}: {e}; skipped")),
        }
    }
    let registry = Registry::new(dirs, &files);
    warnings.extend(registry.warnings.iter().cloned());
    (registry, warnings)
}

/// `--gpus`: NVIDIA's CDI devices when a spec for them exists, the driver's files otherwise.
/// Returns the CDI names used (for messages) and the edits.
fn gpus(
    flag: &str,
    registry: &Registry,
    dirs: &[String],
    env: &[(String, String)],
    warnings: &mut Vec<String>,
) -> Result<(Vec<String>, DeviceEdits)> {
    use berth_hpc::NVIDIA_GPU_KIND as KIND;
    let request = berth_hpc::parse_gpus(flag)?;
    let cgroup = fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|c| berth_hpc::devices_list_path(&c))
        .and_then(|p| fs::read_to_string(p).ok())
        .and_then(|l| berth_hpc::devices_list_gpus(&l));
    if registry.has_kind(KIND) {
        let mut host: Vec<u32> = registry
            .names(KIND)
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        host.sort_unstable();
        let host: Vec<String> = host.iter().map(u32::to_string).collect();
        let alloc = berth_hpc::allocation(&host, cgroup.as_deref(), env);
        let ids = berth_hpc::select_gpus(&request, &alloc, &host, flag)?;
        let names: Vec<String> = ids.iter().map(|i| format!("{KIND}={i}")).collect();
        let mut edits = registry.resolve(&names)?;
        edits.env.extend(berth_hpc::gpu_env(&ids, flag));
        return Ok((names, edits));
    }
    let facts = driver_facts();
    let host = facts.gpu_indices();
    if host.is_empty() {
        bail!(
            "--gpus {flag}: no NVIDIA GPU on this host (no {KIND} cdi spec in {} and no /dev/nvidia0…)",
            dirs.join(", ")
        );
    }
    let alloc = berth_hpc::allocation(&host, cgroup.as_deref(), env);
    let ids = berth_hpc::select_gpus(&request, &alloc, &host, flag)?;
    let edits = berth_hpc::nvidia_driver(&ids, &facts, flag)?;
    if !edits
        .mounts
        .iter()
        .any(|m| m.value.host_path.contains("libcuda.so"))
    {
        warnings.push(format!(
            "--gpus {flag}: libcuda.so is not in the ldconfig cache; CUDA programs will not find the driver"
        ));
    }
    let names = ids.iter().map(|i| format!("/dev/nvidia{i}")).collect();
    Ok((names, edits))
}

/// The NVIDIA device nodes in `/dev`, the ldconfig cache and the driver's programs.
fn driver_facts() -> berth_hpc::DriverFacts {
    let nodes = fs::read_dir("/dev")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("nvidia"))
                .map(|n| format!("/dev/{n}"))
                .collect()
        })
        .unwrap_or_default();
    let ldconfig = ["/sbin/ldconfig", "/usr/sbin/ldconfig", "ldconfig"]
        .iter()
        .find_map(|l| {
            let out = std::process::Command::new(l).arg("-p").output().ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .unwrap_or_default();
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs: Vec<&str> = path
        .split(':')
        .chain(["/usr/bin", "/usr/sbin", "/bin", "/sbin"])
        .filter(|d| d.starts_with('/'))
        .collect();
    let binaries = berth_hpc::NVIDIA_BINARIES
        .iter()
        .filter_map(|b| {
            dirs.iter()
                .map(|d| format!("{d}/{b}"))
                .find(|p| Path::new(p).is_file())
        })
        .collect();
    berth_hpc::DriverFacts {
        nodes,
        ldconfig,
        binaries,
    }
}

/// The edits as mounts and variables, each checked against the host.
fn apply(edits: DeviceEdits, warnings: &mut Vec<String>) -> Result<Devices> {
    let mut out = Devices::default();
    let mut push = |m: MountSpec| {
        if !out.mounts.iter().any(|o| o.target == m.target) {
            out.mounts.push(m);
        }
    };
    for n in &edits.device_nodes {
        check_node(&n.value, &n.source)?;
        push(MountSpec {
            kind: MountKind::Bind,
            source: n.value.host_path.clone(),
            target: n.value.path.clone(),
            readonly: !n.value.permissions.contains('w'),
            options: Vec::new(),
        });
    }
    for m in &edits.mounts {
        let v = &m.value;
        let kind = match v.kind.as_deref() {
            None | Some("bind") | Some("none") => MountKind::Bind,
            Some("tmpfs") => MountKind::Tmpfs,
            Some(other) => bail!(
                "{}: mount type {other:?} for {} is not supported",
                m.source,
                v.container_path
            ),
        };
        if kind == MountKind::Bind && !Path::new(&v.host_path).exists() {
            bail!(
                "{}: mount source {} does not exist on this host",
                m.source,
                v.host_path
            );
        }
        let readonly = v.options.iter().any(|o| o == "ro");
        let options = v
            .options
            .iter()
            .filter(|o| !matches!(o.as_str(), "bind" | "rbind" | "ro" | "rw"))
            .cloned()
            .collect();
        push(MountSpec {
            kind,
            source: v.host_path.clone(),
            target: v.container_path.clone(),
            readonly,
            options,
        });
    }
    out.env = edits
        .env
        .iter()
        .map(|e| format!("{}={}", e.value.0, e.value.1))
        .collect();
    // Supplementary groups are ids inside the user namespace, where the host's device groups
    // are not mapped: adding them would not grant access, so say so instead.
    for g in &edits.additional_gids {
        warnings.push(format!(
            "{}: additional gid {} not added (host groups are not mapped into the user namespace)",
            g.source, g.value
        ));
    }
    for s in &edits.intel_rdt {
        warnings.push(format!("{s}: intelRdt settings ignored"));
    }
    Ok(out)
}

/// The host node exists and is what the spec says it is.
fn check_node(n: &DeviceNode, source: &str) -> Result<()> {
    let host = &n.host_path;
    let m = match fs::metadata(host) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{source}: device node {host} does not exist on this host")
        }
        Err(e) => bail!("{source}: device node {host}: {e}"),
    };
    let t = m.file_type();
    let actual = if t.is_char_device() {
        "c"
    } else if t.is_block_device() {
        "b"
    } else if t.is_fifo() {
        "p"
    } else {
        bail!("{source}: {host} is not a device node")
    };
    let wanted = n.kind.as_deref().map(|k| if k == "u" { "c" } else { k });
    if wanted.is_some_and(|w| w != actual) {
        bail!(
            "{source}: {host} is a {actual} device, the spec says {}",
            wanted.unwrap_or_default()
        );
    }
    let (major, minor) = dev_numbers(m.rdev());
    if n.major.is_some_and(|x| x != major) || n.minor.is_some_and(|x| x != minor) {
        bail!(
            "{source}: {host} is {actual} {major}:{minor}, the spec says {}:{}",
            n.major.map_or("*".into(), |x| x.to_string()),
            n.minor.map_or("*".into(), |x| x.to_string())
        );
    }
    Ok(())
}

/// Major and minor of a `st_rdev`, in glibc's encoding of `dev_t`.
fn dev_numbers(rdev: u64) -> (i64, i64) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major as i64, minor as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_null_is_char_1_3() {
        let m = fs::metadata("/dev/null").unwrap();
        assert_eq!(dev_numbers(m.rdev()), (1, 3));
        assert!(is_cdi("nvidia.com/gpu=0"));
        assert!(!is_cdi("/dev/a=b"));
        assert!(!is_cdi("/dev/fuse"));
    }
}
