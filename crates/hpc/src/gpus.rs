//! `--gpus`: which NVIDIA GPUs a container gets, and what it needs to use them.
//!
//! With NVIDIA's CDI spec on the node (`nvidia.com/gpu`, written by `nvidia-ctk cdi generate`)
//! the chosen GPUs are CDI devices and [`crate::Registry`] supplies the edits. Without it,
//! [`nvidia_driver`] builds them from what the caller found on the host: the driver's device
//! nodes and the libraries `ldconfig -p` lists, bound read-only.
//!
//! Either way the choice is made from the job's allocation only ([`allocation`]): under Slurm
//! a GPU the step was not given never appears in the container, and asking for one by id is
//! an error that names the allocation and where it came from (decision 9: never widen what the
//! scheduler gave).

use crate::{DeviceEdits, DeviceError, DeviceMount, DeviceNode, Sourced};

/// The CDI kind of NVIDIA's GPUs.
pub const NVIDIA_GPU_KIND: &str = "nvidia.com/gpu";

/// Driver device nodes every CUDA program needs besides `/dev/nvidiaN`; those missing on the
/// host (`nvidia-modeset` on compute nodes, `nvidia-uvm` before its module loads) are left out.
pub const NVIDIA_CONTROL_NODES: &[&str] = &[
    "/dev/nvidiactl",
    "/dev/nvidia-uvm",
    "/dev/nvidia-uvm-tools",
    "/dev/nvidia-modeset",
];

/// Driver libraries bound into the container: the CUDA driver API, NVML (for `nvidia-smi` and
/// monitoring), and the JIT compilers CUDA loads for PTX. The CUDA runtime and toolkit belong
/// to the image; these must match the host's kernel module and so come from the host.
pub const NVIDIA_LIBRARIES: &[&str] = &[
    "libcuda.so",
    "libnvidia-ml.so",
    "libnvidia-ptxjitcompiler.so",
    "libnvidia-nvvm.so",
];

/// Driver programs bound into the container's `/usr/bin`.
pub const NVIDIA_BINARIES: &[&str] = &["nvidia-smi"];

/// The major number of NVIDIA's character devices.
const NVIDIA_MAJOR: u32 = 195;

/// What `--gpus` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuRequest {
    /// `all`: every GPU of the allocation.
    All,
    /// `N` or `count=N`: the first N of the allocation.
    Count(usize),
    /// `device=ID[,ID]`: these, by index or UUID.
    Ids(Vec<String>),
}

/// Reads `--gpus` as Docker does: `all`, `N`, `count=N`, `device=0,2`, `"device=0,2"`, with
/// `capabilities=…` and `driver=nvidia` accepted and otherwise ignored.
pub fn parse_gpus(flag: &str) -> Result<GpuRequest, DeviceError> {
    let invalid = |reason: &str| DeviceError::InvalidGpus {
        flag: flag.to_string(),
        reason: reason.to_string(),
    };
    let mut request = None;
    let mut in_ids = false;
    for field in csv_fields(flag) {
        let field = field.trim();
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None if in_ids => {
                if let Some(GpuRequest::Ids(ids)) = &mut request {
                    ids.push(field.to_string());
                }
                continue;
            }
            None => ("count", field),
        };
        in_ids = false;
        match key {
            "count" if value == "all" => request = Some(GpuRequest::All),
            "count" => match value.parse::<usize>() {
                Ok(0) | Err(_) => {
                    return Err(invalid("expected all, a count above 0, or device=ID[,ID]"))
                }
                Ok(n) => request = Some(GpuRequest::Count(n)),
            },
            "device" => {
                let ids: Vec<String> = value
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                request = Some(GpuRequest::Ids(ids));
                in_ids = true;
            }
            "driver" if value == "nvidia" => {}
            "driver" => return Err(invalid("only the nvidia driver is supported")),
            "capabilities" | "options" => {}
            _ => return Err(invalid(&format!("unknown field {key:?}"))),
        }
    }
    match request {
        Some(GpuRequest::Ids(ids)) if ids.is_empty() => Err(invalid("device= names no GPU")),
        Some(r) => Ok(r),
        None => Err(invalid("expected all, a count, or device=ID[,ID]")),
    }
}

/// Splits on commas outside double quotes and drops the quotes, as Docker's CSV reading does.
fn csv_fields(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().expect("never empty").push(c),
        }
    }
    out.into_iter().filter(|f| !f.trim().is_empty()).collect()
}

/// The GPUs the caller may hand on to a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// GPU ids (indices, or UUIDs where the scheduler uses them), in order.
    pub ids: Vec<String>,
    /// Whether something narrower than the host decided them.
    pub restricted: bool,
    /// What decided them, in words a user recognises.
    pub source: String,
}

/// Works out the caller's GPUs from, in order of precedence:
/// - `cgroup_minors`: the NVIDIA minors a cgroup v1 devices controller allows (see
///   [`devices_list_gpus`]); a `CUDA_VISIBLE_DEVICES` set beside it counts from 0 within
///   them, as Slurm numbers GPUs when it constrains devices;
/// - `SLURM_STEP_GPUS`, then `SLURM_JOB_GPUS`: the step's or job's GPUs, by host index;
/// - `CUDA_VISIBLE_DEVICES`: indices or UUIDs; empty or `NoDevFiles` means none;
/// - otherwise every GPU of `host` (indices).
pub fn allocation(
    host: &[String],
    cgroup_minors: Option<&[u32]>,
    env: &[(String, String)],
) -> Allocation {
    let var = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let list = |v: &str| -> Vec<String> {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s != "NoDevFiles")
            .collect()
    };
    if let Some(minors) = cgroup_minors {
        let ids: Vec<String> = host
            .iter()
            .filter(|h| h.parse::<u32>().is_ok_and(|m| minors.contains(&m)))
            .cloned()
            .collect();
        if let Some(cvd) = var("CUDA_VISIBLE_DEVICES") {
            let local = list(cvd);
            if local.iter().all(|l| l.parse::<usize>().is_ok()) {
                let ids = local
                    .iter()
                    .filter_map(|l| ids.get(l.parse::<usize>().ok()?).cloned())
                    .collect();
                return Allocation {
                    ids,
                    restricted: true,
                    source: "CUDA_VISIBLE_DEVICES within the devices cgroup".into(),
                };
            }
        }
        return Allocation {
            ids,
            restricted: true,
            source: "the devices cgroup".into(),
        };
    }
    for name in ["SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES"] {
        if let Some(v) = var(name) {
            return Allocation {
                ids: list(v),
                restricted: true,
                source: name.to_string(),
            };
        }
    }
    Allocation {
        ids: host.to_vec(),
        restricted: false,
        source: "the GPUs of this host".into(),
    }
}

/// The GPU ids `request` picks from `alloc`, checked against `host` (the indices present).
/// `flag` is `--gpus` as given, for messages.
pub fn select_gpus(
    request: &GpuRequest,
    alloc: &Allocation,
    host: &[String],
    flag: &str,
) -> Result<Vec<String>, DeviceError> {
    let fail = |reason: String| DeviceError::GpusUnavailable {
        flag: flag.to_string(),
        reason,
    };
    let numeric = |id: &str| id.parse::<u32>().is_ok();
    let avail: Vec<String> = alloc
        .ids
        .iter()
        .filter(|id| !numeric(id) || host.contains(id))
        .cloned()
        .collect();
    let have = || {
        if avail.is_empty() {
            format!("none from {}", alloc.source)
        } else {
            format!("{} from {}", avail.join(","), alloc.source)
        }
    };
    match request {
        GpuRequest::All if avail.is_empty() => Err(fail(format!("no GPU available ({})", have()))),
        GpuRequest::All => Ok(avail),
        GpuRequest::Count(n) if *n > avail.len() => Err(fail(format!(
            "asks for {n} GPUs but {} are available ({})",
            avail.len(),
            have()
        ))),
        GpuRequest::Count(n) => Ok(avail[..*n].to_vec()),
        GpuRequest::Ids(ids) => {
            let mut out = Vec::new();
            for id in ids {
                if alloc.restricted && !avail.contains(id) {
                    return Err(fail(format!(
                        "GPU {id} is outside this job's allocation ({})",
                        have()
                    )));
                }
                if numeric(id) && !host.contains(id) {
                    return Err(fail(format!("GPU {id} does not exist ({})", have())));
                }
                if !out.contains(id) {
                    out.push(id.clone());
                }
            }
            Ok(out)
        }
    }
}

/// The variables that tell CUDA and NVIDIA's tools which GPUs the container has. Inside,
/// CUDA numbers the GPUs it can open from 0, so `CUDA_VISIBLE_DEVICES` counts `0..n-1`
/// whatever the host ids are; `NVIDIA_VISIBLE_DEVICES` keeps the host ids.
pub fn gpu_env(ids: &[String], flag: &str) -> Vec<Sourced<(String, String)>> {
    let source = format!("--gpus {flag}");
    let local: Vec<String> = (0..ids.len()).map(|i| i.to_string()).collect();
    vec![
        Sourced::new(
            ("NVIDIA_VISIBLE_DEVICES".to_string(), ids.join(",")),
            &source,
        ),
        Sourced::new(
            ("CUDA_VISIBLE_DEVICES".to_string(), local.join(",")),
            &source,
        ),
    ]
}

/// What the caller found of the NVIDIA driver on the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DriverFacts {
    /// Device nodes present: `/dev/nvidia0`…, `/dev/nvidiactl`…
    pub nodes: Vec<String>,
    /// The output of `ldconfig -p`.
    pub ldconfig: String,
    /// Paths of the [`NVIDIA_BINARIES`] found on the host.
    pub binaries: Vec<String>,
}

impl DriverFacts {
    /// The GPU indices whose `/dev/nvidiaN` node is present, in numeric order.
    pub fn gpu_indices(&self) -> Vec<String> {
        let mut n: Vec<u32> = self
            .nodes
            .iter()
            .filter_map(|p| p.strip_prefix("/dev/nvidia")?.parse().ok())
            .collect();
        n.sort_unstable();
        n.into_iter().map(|i| i.to_string()).collect()
    }
}

/// The edits for GPUs `ids` (host indices, from [`select_gpus`]) without a CDI spec: their
/// nodes, the driver's control nodes, its libraries and programs read-only at their host
/// paths, and [`gpu_env`].
pub fn nvidia_driver(
    ids: &[String],
    facts: &DriverFacts,
    flag: &str,
) -> Result<DeviceEdits, DeviceError> {
    let source = format!("--gpus {flag}");
    let node = |path: &str, permissions: &str| DeviceNode {
        path: path.to_string(),
        host_path: path.to_string(),
        kind: Some("c".into()),
        major: None,
        minor: None,
        file_mode: None,
        permissions: permissions.to_string(),
        uid: None,
        gid: None,
    };
    let mut out = DeviceEdits::default();
    for id in ids {
        if id.parse::<u32>().is_err() {
            return Err(DeviceError::GpusUnavailable {
                flag: flag.to_string(),
                reason: format!("GPU {id} is not an index, and ids other than indices need NVIDIA's CDI spec ({NVIDIA_GPU_KIND})"),
            });
        }
        let path = format!("/dev/nvidia{id}");
        out.device_nodes
            .push(Sourced::new(node(&path, "rwm"), &source));
    }
    for c in NVIDIA_CONTROL_NODES {
        if facts.nodes.iter().any(|n| n == c) {
            out.device_nodes.push(Sourced::new(
                node(c, "rwm"),
                "the NVIDIA driver's control nodes",
            ));
        }
    }
    let ro = || vec!["ro".to_string(), "nosuid".to_string(), "nodev".to_string()];
    for (soname, path) in driver_libraries(&facts.ldconfig) {
        out.mounts.push(Sourced::new(
            DeviceMount {
                host_path: path.clone(),
                container_path: path,
                kind: None,
                options: ro(),
            },
            format!("{soname} in the ldconfig cache (ldconfig -p)"),
        ));
    }
    for b in &facts.binaries {
        let name = b.rsplit('/').next().unwrap_or(b);
        out.mounts.push(Sourced::new(
            DeviceMount {
                host_path: b.clone(),
                container_path: format!("/usr/bin/{name}"),
                kind: None,
                options: ro(),
            },
            format!("{b} on the host"),
        ));
    }
    out.env = gpu_env(ids, flag);
    Ok(out)
}

/// The 64-bit [`NVIDIA_LIBRARIES`] entries of `ldconfig -p` output, `(soname, path)`.
pub fn driver_libraries(ldconfig: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in ldconfig.lines() {
        let Some((left, path)) = line.split_once("=>") else {
            continue;
        };
        let left = left.trim();
        let (soname, arch) = match left.split_once(' ') {
            Some((s, a)) => (s.trim(), a.trim()),
            None => (left, ""),
        };
        // `(libc6,x86-64)`, `(libc6,AArch64)`, `(libc6,64bit)`: 32-bit entries say only `libc6`.
        let is_64 = arch.contains("64");
        let wanted = NVIDIA_LIBRARIES
            .iter()
            .any(|l| soname == *l || soname.starts_with(&format!("{l}.")));
        let path = path.trim().to_string();
        if is_64 && wanted && path.starts_with('/') && !out.iter().any(|(_, p)| *p == path) {
            out.push((soname.to_string(), path));
        }
    }
    out
}

/// The path of the caller's cgroup v1 devices list, from the text of `/proc/self/cgroup`;
/// `None` under cgroup v2, whose device filter is a BPF program that cannot be read back.
pub fn devices_list_path(proc_self_cgroup: &str) -> Option<String> {
    proc_self_cgroup.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        controllers.split(',').any(|c| c == "devices").then(|| {
            format!(
                "/sys/fs/cgroup/devices{}/devices.list",
                path.trim_end_matches('/')
            )
        })
    })
}

/// The NVIDIA GPU minors a cgroup v1 `devices.list` allows, or `None` when it allows every
/// one (`a *:* rwm`, `c 195:* rwm`).
pub fn devices_list_gpus(devices_list: &str) -> Option<Vec<u32>> {
    let mut minors = Vec::new();
    for line in devices_list.lines() {
        let mut f = line.split_whitespace();
        let (Some(kind), Some(numbers)) = (f.next(), f.next()) else {
            continue;
        };
        let Some((major, minor)) = numbers.split_once(':') else {
            continue;
        };
        let major_ok = major == "*" || major.parse() == Ok(NVIDIA_MAJOR);
        if !(kind == "a" || kind == "c") || !major_ok {
            continue;
        }
        if kind == "a" || minor == "*" {
            return None;
        }
        // 254 and 255 are the modeset and control nodes, not GPUs.
        if let Ok(m) = minor.parse::<u32>() {
            if m < 254 {
                minors.push(m);
            }
        }
    }
    minors.sort_unstable();
    minors.dedup();
    Some(minors)
}

#[cfg(test)]
#[path = "gpus_tests.rs"]
mod tests;
