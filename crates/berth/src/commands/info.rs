//! `berth info`: what Berth sees on this node, as `docker info` shows its daemon, plus what
//! decides how containers run here (id mapping, cgroups, FUSE, CDI, Slurm).

use std::path::Path;

use anyhow::Result;
use berth_cli::InfoArgs;
use serde_json::{json, Value};

use crate::dispatch::host::{effective_status, Caller};
use crate::printer::Printer;
use crate::settings::Settings;

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Whether a program is on `PATH`.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// Whether this process may open `path` for reading and writing.
fn accessible(path: &str) -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .is_ok()
}

fn cgroups() -> Value {
    match berth_cgroups::detect() {
        Ok(berth_cgroups::Layout::V2 { .. }) => json!("v2"),
        Ok(berth_cgroups::Layout::V1 { .. }) => json!("v1"),
        Ok(berth_cgroups::Layout::Hybrid { .. }) => json!("hybrid (v1 controllers, v2 mounted)"),
        Err(e) => json!(format!("unavailable: {e}")),
    }
}

/// Everything `info` reports, as JSON with Docker's names where Docker has the field.
fn gather(s: &Settings) -> Result<Value> {
    let store = s.open_store()?;
    let images = store.images()?.len();
    let containers = store.containers()?;
    let running = containers
        .iter()
        .filter(|c| {
            store
                .container_state(&c.id)
                .is_ok_and(|st| effective_status(&st) == "running")
        })
        .count();
    let caller = Caller::current();
    let range =
        |r: Option<(u32, u32)>| r.map(|(start, count)| json!({"Start": start, "Count": count}));
    let id_mapping = match (caller.uid, caller.subuids, caller.subgids) {
        (0, ..) => "root",
        (_, Some(_), Some(_)) => "subordinate ids (newuidmap/newgidmap)",
        _ => "single id (no /etc/subuid and /etc/subgid range)",
    };
    let cdi_dirs: Vec<String> = match &s.config.cdi_spec_dirs {
        Some(d) => d.iter().map(|p| p.display().to_string()).collect(),
        None => berth_hpc::CDI_SPEC_DIRS
            .iter()
            .map(|d| d.to_string())
            .collect(),
    };
    let cdi_files = cdi_dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|rd| rd.flatten())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.ends_with(".json") || n.ends_with(".yaml")
        })
        .count();
    let slurm = std::env::var("SLURM_JOB_ID").ok().map(|job| {
        json!({
            "JobId": job,
            "StepId": std::env::var("SLURM_STEP_ID").ok(),
            "Node": std::env::var("SLURMD_NODENAME").ok(),
        })
    });
    Ok(json!({
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "OperatingSystem": os_name(),
        "KernelVersion": kernel(),
        "Architecture": berth_types::Platform::host().architecture,
        "NCPU": caller.cpus_allowed.len(),
        "MemTotal": memory_bytes(),
        "Images": images,
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersStopped": containers.len() - running,
        "StoreRoot": store.paths().root().display().to_string(),
        "SharedStores": s.config.shared_stores.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "Profile": s.config.profile.clone().unwrap_or_else(|| "docker".into()),
        "Rootless": caller.uid != 0,
        "User": {"Name": caller.name, "Uid": caller.uid, "Gid": caller.gid},
        "IdMapping": id_mapping,
        "SubordinateUids": range(caller.subuids),
        "SubordinateGids": range(caller.subgids),
        "Cgroups": cgroups(),
        "SingleFileImages": {
            "Mksquashfs": on_path("mksquashfs"),
            "SquashfuseLl": on_path("squashfuse_ll"),
            "DevFuseAccessible": accessible("/dev/fuse"),
            "LoopDevices": caller.uid == 0 && Path::new("/dev/loop-control").exists(),
        },
        "CdiSpecDirs": cdi_dirs,
        "CdiSpecFiles": cdi_files,
        "MpiLibraryDir": s.config.mpi_library_dir.as_ref().map(|p| p.display().to_string()),
        "Slurm": slurm,
    }))
}

/// Prints `v` as indented `Key: value` lines, nested objects one level deeper.
fn text(v: &Value, indent: usize, out: &mut String) {
    let Some(map) = v.as_object() else { return };
    for (k, val) in map {
        let pad = " ".repeat(indent);
        match val {
            Value::Object(_) => {
                out.push_str(&format!("{pad}{k}:\n"));
                text(val, indent + 1, out);
            }
            Value::Array(a) if a.is_empty() => out.push_str(&format!("{pad}{k}: none\n")),
            Value::Array(a) => {
                let items: Vec<String> = a
                    .iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), String::from))
                    .collect();
                out.push_str(&format!("{pad}{k}: {}\n", items.join(", ")));
            }
            Value::Null => out.push_str(&format!("{pad}{k}: none\n")),
            Value::String(s) => out.push_str(&format!("{pad}{k}: {s}\n")),
            other => out.push_str(&format!("{pad}{k}: {other}\n")),
        }
    }
}

pub fn run(s: &Settings, a: &InfoArgs) -> Result<u8> {
    let info = gather(s)?;
    let p = Printer::new(false);
    match a.format.as_deref() {
        None => {
            let mut out = String::new();
            text(&info, 0, &mut out);
            p.raw(&out);
        }
        Some(f) => p.rows(Some(f), "", std::slice::from_ref(&info))?,
    }
    Ok(0)
}
