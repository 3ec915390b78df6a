//! Facts about the calling process and this host, read from `/proc` and `/etc` (no syscalls):
//! who the caller is, which CPUs it may use, whether a recorded monitor is still alive.

use std::fs;

use berth_store::ContainerState;

/// The caller as `/proc/self/status` and the passwd database describe it.
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub name: String,
    pub home: String,
    pub cwd: String,
    pub env: Vec<(String, String)>,
    pub subuids: Option<(u32, u32)>,
    pub subgids: Option<(u32, u32)>,
    pub cpus_allowed: Vec<usize>,
}

fn status_field(status: &str, key: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
}

impl Caller {
    pub fn current() -> Caller {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let ids = |k: &str| -> Vec<u32> {
            status_field(&status, k)
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        };
        // Effective ids: the second column of Uid:/Gid:.
        let uid = ids("Uid:").get(1).copied().unwrap_or(0);
        let gid = ids("Gid:").get(1).copied().unwrap_or(0);
        let groups = ids("Groups:");
        let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
        let entry = passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 7 && f[2].parse::<u32>().ok() == Some(uid))
                .then(|| (f[0].to_string(), f[5].to_string()))
        });
        let name = std::env::var("USER")
            .ok()
            .filter(|u| entry.as_ref().is_none_or(|(n, _)| n == u))
            .or_else(|| entry.as_ref().map(|(n, _)| n.clone()))
            .unwrap_or_else(|| uid.to_string());
        let home = std::env::var("HOME")
            .ok()
            .or_else(|| entry.as_ref().map(|(_, h)| h.clone()))
            .unwrap_or_else(|| "/".into());
        let cwd = std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "/".into());
        let cpus = status_field(&status, "Cpus_allowed_list:").unwrap_or_default();
        Caller {
            uid,
            gid,
            groups,
            subuids: subordinate("/etc/subuid", &name, uid),
            subgids: subordinate("/etc/subgid", &name, uid),
            name,
            home,
            cwd,
            env: std::env::vars().collect(),
            cpus_allowed: berth_hpc::parse_cpu_list(&cpus).unwrap_or_default(),
        }
    }
}

/// The caller's first range in `/etc/subuid`-style files, by name or uid.
fn subordinate(file: &str, name: &str, uid: u32) -> Option<(u32, u32)> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        if f.len() != 3 || (f[0] != name && f[0] != uid.to_string()) {
            return None;
        }
        Some((f[1].parse().ok()?, f[2].parse().ok()?))
    })
}

pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Start time of a process in clock ticks since boot (field 22 of `/proc/PID/stat`).
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the monitor that wrote `st` is still the process it was, on this host and boot.
/// A zombie does not count: a killed monitor whose parent has not reaped it yet monitors
/// nothing (and its container died with it).
pub fn monitor_alive(st: &ContainerState) -> bool {
    st.monitor_pid > 0
        && st.boot_id == boot_id()
        && st.hostname == hostname()
        && start_time(st.monitor_pid) == Some(st.monitor_start)
        && !is_zombie(st.monitor_pid)
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X")
    })
}

/// The status to show: a record claiming `running` whose monitor is gone is `exited`.
pub fn effective_status(st: &ContainerState) -> String {
    match st.status.as_str() {
        "running" | "paused" if !monitor_alive(st) => "exited".into(),
        s => s.to_string(),
    }
}

/// 64 random hex characters for a container id.
pub fn random_id() -> String {
    let mut buf = [0u8; 32];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A Docker-style `adjective_noun` name from the id's bytes.
pub fn random_name(id: &str) -> String {
    const ADJ: [&str; 16] = [
        "brave", "calm", "eager", "fond", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nifty", "proud", "quiet", "sharp", "tender", "vivid",
    ];
    const NOUN: [&str; 16] = [
        "curie",
        "darwin",
        "euler",
        "fermi",
        "gauss",
        "hopper",
        "hubble",
        "kepler",
        "lovelace",
        "meitner",
        "newton",
        "noether",
        "pascal",
        "ramanujan",
        "turing",
        "wiles",
    ];
    let b = u8::from_str_radix(&id[..2], 16).unwrap_or(0);
    let c = u8::from_str_radix(&id[2..4], 16).unwrap_or(0);
    format!(
        "{}_{}{}",
        ADJ[(b & 15) as usize],
        NOUN[(c & 15) as usize],
        &id[4..8]
    )
}

/// The descriptors of this process that a containerised rank needs at the same number: the
/// PMI-1/PMI-2 socket `srun --mpi=pmi2` (or MPICH's Hydra) gives each task and names in
/// `PMI_FD`, when the process's environment `env` (`KEY=VALUE`) carries that variable and the
/// descriptor is a socket here. Anything else (a directory, a file) stays closed, as every
/// inherited descriptor is: a host directory's descriptor would open the host to the
/// container (CVE-2024-21626).
pub fn launcher_fds<'a>(env: impl IntoIterator<Item = &'a String>) -> Vec<i32> {
    use std::os::unix::fs::FileTypeExt;
    env.into_iter()
        .filter_map(|kv| kv.strip_prefix("PMI_FD="))
        .filter_map(|v| v.parse::<i32>().ok())
        .filter(|&fd| fd > 2)
        .filter(|fd| {
            fs::metadata(format!("/proc/self/fd/{fd}")).is_ok_and(|m| m.file_type().is_socket())
        })
        .collect()
}

/// Debug builds (the tests) check the precondition of the runtime's container and exec
/// clones: they copy only the calling thread, and a lock another thread held at that instant
/// (the allocator's, stdio's) stays held in the child, which allocates before its exec. A
/// race, so it is checked every time rather than waited for.
pub fn debug_assert_single_threaded() {
    if cfg!(debug_assertions) {
        let threads = fs::read_dir("/proc/self/task").map_or(1, |d| d.count());
        assert!(
            threads <= 1,
            "a container or exec clone from a process with {threads} threads"
        );
    }
}
