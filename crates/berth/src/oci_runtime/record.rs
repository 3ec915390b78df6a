//! A container's state under the runtime's root: `ROOT/ID/state.json`, rewritten atomically by
//! whoever changes it, and read without locks. What a record claims is checked against the
//! live processes, so a killed monitor or a reboot never leaves a phantom "running" container.

use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::ContainerState;
use serde::{Deserialize, Serialize};

use crate::dispatch::host;
use crate::humanize;

/// The control socket a created container's monitor listens on, inside `ROOT/ID`.
pub const CONTROL_SOCKET: &str = "control.sock";

/// What the runtime remembers about a container.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub bundle: PathBuf,
    /// `creating`, `created`, `running` or `stopped`, as last written.
    pub status: ContainerState,
    /// The container's process (0 until it exists) and its start time, against pid reuse.
    pub pid: i32,
    pub pid_start: u64,
    /// The process that waits for the container and records its end.
    pub monitor_pid: i32,
    pub monitor_start: u64,
    pub boot_id: String,
    pub created: String,
    pub exit_code: Option<i32>,
    pub annotations: Option<HashMap<String, String>>,
    /// The cgroup directories holding `linux.resources`, if any.
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
}

/// Checks a container id as runc does: letters, digits and `_ + - .`, not `.` or `..`.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if !ok {
        bail!("invalid container id {id:?}: use letters, digits, '_', '+', '-' and '.'");
    }
    Ok(())
}

/// The state directory used when `--root` is not given: runc's `/run/runc` for root,
/// `$XDG_RUNTIME_DIR` otherwise (decision 1 of the design).
pub fn default_root() -> PathBuf {
    crate::dispatch::runtime_dir().join("oci")
}

/// `ROOT/ID`.
pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

impl Record {
    /// A fresh record for a container being created by this process.
    pub fn new(id: &str, bundle: &Path, annotations: Option<HashMap<String, String>>) -> Record {
        let me = std::process::id() as i32;
        Record {
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            status: ContainerState::Creating,
            monitor_pid: me,
            monitor_start: host::start_time(me).unwrap_or(0),
            boot_id: host::boot_id(),
            created: humanize::rfc3339(humanize::now()),
            annotations,
            ..Default::default()
        }
    }

    /// Reads `ROOT/ID/state.json`; a missing one reads as "does not exist".
    pub fn load(root: &Path, id: &str) -> Result<Record> {
        check_id(id)?;
        let path = dir(root, id).join("state.json");
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .with_context(|| format!("container {id}: {} is not valid", path.display())),
            Err(e) if e.kind() == ErrorKind::NotFound => bail!(NotExist(id.to_string())),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the record (temporary file, then rename, so readers never see half of it).
    pub fn save(&self, root: &Path) -> Result<()> {
        let d = dir(root, &self.id);
        let tmp = d.join(format!(".state.json.{}", std::process::id()));
        fs::write(&tmp, serde_json::to_vec(self)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, d.join("state.json"))
            .with_context(|| format!("cannot write {}", d.join("state.json").display()))
    }

    /// Records that the container's process now exists.
    pub fn set_pid(&mut self, pid: i32) {
        self.pid = pid;
        self.pid_start = host::start_time(pid).unwrap_or(0);
    }

    /// The status as it is now: what the record says, unless the process it names has gone.
    pub fn status(&self) -> ContainerState {
        let this_boot = self.boot_id == host::boot_id();
        match self.status {
            ContainerState::Creating
                if this_boot && alive(self.monitor_pid, self.monitor_start) =>
            {
                ContainerState::Creating
            }
            s @ (ContainerState::Created | ContainerState::Running)
                if this_boot && alive(self.pid, self.pid_start) =>
            {
                s
            }
            _ => ContainerState::Stopped,
        }
    }

    /// Whether the monitor that wrote this record is still running.
    pub fn monitor_alive(&self) -> bool {
        self.boot_id == host::boot_id() && alive(self.monitor_pid, self.monitor_start)
    }
}

/// The state of a container that has no record.
#[derive(Debug)]
pub struct NotExist(pub String);

impl std::fmt::Display for NotExist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "container {} does not exist", self.0)
    }
}

impl std::error::Error for NotExist {}

/// `/proc/PID/stat`: the state letter and the parent pid.
fn stat(pid: i32) -> Option<(char, i32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let mut rest = s[s.rfind(')')? + 2..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` is the process that started at `start` and has not exited (a zombie, not yet
/// reaped by its monitor, has).
pub fn alive(pid: i32, start: u64) -> bool {
    pid > 0
        && host::start_time(pid) == Some(start)
        && stat(pid).is_some_and(|(s, _)| s != 'Z' && s != 'X')
}

/// Every process of the container whose first process is `pid`: all processes of its pid
/// namespace when it has its own, else `pid` and its descendants.
pub fn processes(pid: i32) -> Vec<i32> {
    let ns = |p: &str| fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let theirs = ns(&pid.to_string());
    let all: Vec<i32> = fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if theirs.is_some() && theirs != ns("self") {
        return all
            .into_iter()
            .filter(|p| ns(&p.to_string()) == theirs)
            .collect();
    }
    let parents: Vec<(i32, i32)> = all
        .iter()
        .filter_map(|&p| stat(p).map(|(_, pp)| (p, pp)))
        .collect();
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}
