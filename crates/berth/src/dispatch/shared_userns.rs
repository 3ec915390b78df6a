//! One user namespace per MPI job and node, shared by the containers of its ranks.
//!
//! An MPI launcher (`mpirun`, `srun`) that starts `berth run --hpc` per rank gets one container
//! per rank, and the kernel refuses single-copy transfers (`process_vm_readv`, Open MPI's CMA)
//! between processes of different user namespaces: large messages then cross shared memory
//! twice. Ranks of one job (`berth_hpc::job_key`) therefore join one user namespace, held by a
//! small `berth __userns` process, and make their other namespaces inside it. In that namespace
//! the ranks have the same uid and see each other, so single-copy works as on bare metal.
//!
//! Outside a job, the rootless containers of one user share a namespace the same way (key
//! [`USER_KEY`], one per id layout: the profiles map differently), when their maps need
//! `newuidmap` and `newgidmap`: those two setuid programs cost a container's start 1.7 ms
//! here, a third of it. That holder stays [`USER_LINGER`] after the last container leaves, so
//! that the next `berth run` of a job script finds it. A container with a pid namespace of
//! its own (the docker profile) makes it there: its monitor joins the namespace before the
//! clone (see `berth_runtime`). Root of one container then holds capabilities over the other
//! containers' namespaces too, as with podman's rootless containers, but has no way to name
//! them: each has its own pid namespace, and their processes are not in its `/proc`.
//!
//! Files under `$XDG_RUNTIME_DIR/berth/userns` (`/run/berth/userns` for root), per key, all
//! deleted by the holder when it leaves:
//! - `KEY.lock`: every container holds a shared `flock` on it while it runs; the holder waits
//!   for an exclusive one, gets it once the last container is gone, and exits.
//! - `KEY.create`: exclusive while a caller looks for the holder or starts one.
//! - `KEY.pid`: the holder's pid, start time and namespace. A holder that was killed is
//!   replaced; while containers of the job still run in its namespace, the new holder joins
//!   that one (found through a process in it) instead of splitting the job in two.

use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use super::host;
use crate::printer::Printer;

/// The host config key naming the job whose user namespace a container joins at each start.
pub const HOST_CONFIG_KEY: &str = "SharedUserNamespace";

/// The key of the namespace a user's containers share outside a job.
pub const USER_KEY: &str = "user";

/// How long the holder of [`USER_KEY`] waits for another container once none is left.
const USER_LINGER: std::time::Duration = std::time::Duration::from_secs(30);

/// Keeps this container's place in the shared namespace: while it is open, the holder stays.
pub struct Hold {
    _lock: File,
    /// A network namespace the holder made ahead of time, for a container that asks for a new
    /// one (see `netns_pool`).
    pub net: Option<std::os::fd::OwnedFd>,
}

/// Where the locks and pid files live.
fn dir() -> PathBuf {
    super::runtime_dir().join("userns")
}

/// Which new namespaces a container with this spec makes: (user, pid).
fn makes(spec: &Spec) -> (bool, bool) {
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let has = |t| list.iter().any(|n| n.typ() == t && n.path().is_none());
    (has(LinuxNamespaceType::User), has(LinuxNamespaceType::Pid))
}

/// At create: the job key to record when a container with `spec`, started by a caller with
/// `caller_env`, joins its job's shared namespace. The launcher's setting that turned
/// single-copy off ([`berth_hpc::launcher`]) then goes from the spec, unless the user gave it
/// (`user_env`, the `-e` values).
pub fn prepare(
    spec: &mut Spec,
    caller_env: &[(String, String)],
    user_env: &[String],
) -> Option<String> {
    // A job's ranks share one only without pid namespaces (the hpc profile's shape), where
    // they can see each other for single-copy; a user's containers share one either way.
    let (user, pid) = makes(spec);
    let Some(key) = berth_hpc::job_key(caller_env).filter(|_| user && !pid) else {
        return (user && needs_helpers(spec)).then(|| USER_KEY.to_string());
    };
    let (var, off) = berth_hpc::NO_SINGLE_COPY;
    if !user_env.iter().any(|e| e.starts_with(var)) {
        let off = format!("{var}={off}");
        edit_env(spec, |env| env.retain(|e| *e != off));
    }
    Some(key)
}

/// Whether this caller needs `newuidmap`/`newgidmap` for the spec's maps: more than its own
/// uid and gid (see `berth_runtime`'s id maps).
fn needs_helpers(spec: &Spec) -> bool {
    let linux = spec.linux().as_ref();
    let wide = |maps: Option<&Vec<LinuxIdMapping>>| {
        let maps = maps.map(Vec::as_slice).unwrap_or_default();
        maps.len() > 1 || maps.iter().any(|m| m.size() > 1)
    };
    super::euid() != 0
        && (wide(linux.and_then(|l| l.uid_mappings().as_ref()))
            || wide(linux.and_then(|l| l.gid_mappings().as_ref())))
}

/// At each start: joins the shared namespace the record names (`HostConfig`), if any. When
/// that fails the container gets one of its own, as any other; in a job, with single-copy
/// turned off for its rank and a warning.
pub fn join_recorded(
    spec: &mut Spec,
    host_config: &serde_json::Value,
    p: &Printer,
) -> Option<Hold> {
    let key = host_config[HOST_CONFIG_KEY].as_str()?;
    match join(spec, key) {
        Ok(hold) => Some(hold),
        Err(_) if key == USER_KEY => None,
        Err(e) => {
            p.warn(format!(
                "{e:#}: the container gets a user namespace of its own, without MPI single-copy"
            ));
            let (var, off) = berth_hpc::NO_SINGLE_COPY;
            edit_env(spec, |env| env.push(format!("{var}={off}")));
            None
        }
    }
}

fn edit_env(spec: &mut Spec, f: impl FnOnce(&mut Vec<String>)) {
    if let Some(mut process) = spec.process().clone() {
        let mut env = process.env().clone().unwrap_or_default();
        f(&mut env);
        process.set_env(Some(env));
        spec.set_process(Some(process));
    }
}

/// Points the spec's user namespace at the shared one for `key`, starting its holder if there
/// is none, and returns the hold the container keeps while it runs.
fn join(spec: &mut Spec, key: &str) -> Result<Hold> {
    let linux = spec.linux().clone().unwrap_or_default();
    let uids = linux.uid_mappings().clone().unwrap_or_default();
    let gids = linux.gid_mappings().clone().unwrap_or_default();
    let linger = if key == USER_KEY {
        USER_LINGER
    } else {
        std::time::Duration::ZERO
    };
    let new_net = |n: &oci_spec::runtime::LinuxNamespace| {
        n.typ() == LinuxNamespaceType::Network && n.path().is_none()
    };
    let want_net = key == USER_KEY && linux.namespaces().iter().flatten().any(new_net);
    let (path, hold) = acquire(&dir(), key, &uids, &gids, linger, want_net)?;
    let mut linux = linux;
    let namespaces = linux
        .namespaces()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|mut n| {
            if n.typ() == LinuxNamespaceType::User {
                n.set_path(Some(path.clone()));
            }
            n
        })
        .collect();
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
    Ok(hold)
}

/// The lock, pid and create files' common stem: the key made safe for a file name, and a hash
/// of the maps (containers with other maps cannot share the namespace).
fn stem(key: &str, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> String {
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for m in uids.iter().chain(gids) {
        (m.container_id(), m.host_id(), m.size()).hash(&mut h);
    }
    uids.len().hash(&mut h);
    format!("{safe}-{:016x}", h.finish())
}

/// Where the holder of [`USER_KEY`] whose lock file is `lock_path` hands out network
/// namespaces (see `netns_pool`).
fn pool_socket(lock_path: &Path) -> PathBuf {
    lock_path.with_extension("net")
}

fn open_lock(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Whether the open file `f` is still the one at `path`.
fn same_file(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn lock(f: &File, exclusive: bool, path: &Path) -> Result<()> {
    if exclusive { f.lock() } else { f.lock_shared() }
        .with_context(|| format!("cannot lock {}", path.display()))
}

/// With `want_net`, the hold comes with a network namespace from the holder's pool, if it has
/// one ready (taken once the create lock is let go, so that starts do not queue for it).
fn acquire(
    dir: &Path,
    key: &str,
    uids: &[LinuxIdMapping],
    gids: &[LinuxIdMapping],
    linger: std::time::Duration,
    want_net: bool,
) -> Result<(PathBuf, Hold)> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    // It may lie in a shared /tmp: only a directory of the caller's own, closed to others, is
    // used (no one else's symlinks or files to write through).
    use std::os::unix::fs::MetadataExt;
    let meta =
        fs::symlink_metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != super::euid() || meta.mode() & 0o077 != 0 {
        bail!(
            "{} is not a directory of this user's that only it can open",
            dir.display()
        );
    }
    let stem = stem(key, uids, gids);
    let lock_path = dir.join(format!("{stem}.lock"));
    let pid_path = dir.join(format!("{stem}.pid"));
    // Shared first: from here on the holder, if there is one, cannot leave. A holder that
    // leaves deletes the lock file; a lock taken on a file no longer at the path (unlinked
    // while this process waited) is dropped and taken again on the new one.
    let held = loop {
        let f = open_lock(&lock_path)?;
        lock(&f, false, &lock_path)?;
        if same_file(&f, &lock_path) {
            break f;
        }
    };
    let hold = |held: File| Hold {
        _lock: held,
        net: want_net
            .then(|| super::netns_pool::take(&pool_socket(&lock_path)))
            .flatten(),
    };
    let create_path = dir.join(format!("{stem}.create"));
    let create = open_lock(&create_path)?;
    lock(&create, true, &create_path)?;
    let previous = match Holder::read(&pid_path) {
        Some(h) if h.alive() => {
            drop(create);
            return Ok((h.namespace(), hold(held)));
        }
        other => other,
    };
    // A holder that was killed while containers of the job still run: its namespace lives on
    // in them, and the new holder joins it rather than make another, which would split the
    // job's ranks in two. Not for a user's namespace, which nothing needs kept whole: the
    // search goes by the namespace's number, which the kernel gives out again once the
    // namespace is gone, possibly to a job's.
    let survivor = previous
        .filter(|_| key != USER_KEY)
        .and_then(|h| h.member(uids, gids));
    let pid = start_holder(&lock_path, uids, gids, survivor.as_deref(), linger)?;
    let start = host::start_time(pid).context("the user namespace holder died at once")?;
    let ns = fs::read_link(format!("/proc/{pid}/ns/user"))
        .map(|l| l.to_string_lossy().into_owned())
        .context("the user namespace holder died at once")?;
    let tmp = dir.join(format!(".{stem}.pid.{}", std::process::id()));
    fs::write(&tmp, format!("{pid} {start} {ns}\n"))
        .and_then(|()| fs::rename(&tmp, &pid_path))
        .with_context(|| format!("cannot write {}", pid_path.display()))?;
    drop(create);
    Ok((PathBuf::from(format!("/proc/{pid}/ns/user")), hold(held)))
}

/// What a pid file says: the holder's pid, its start time and its namespace (`user:[N]`).
struct Holder {
    pid: i32,
    start: u64,
    ns: Option<String>,
}

impl Holder {
    fn read(pid_path: &Path) -> Option<Holder> {
        let text = fs::read_to_string(pid_path).ok()?;
        let mut it = text.split_whitespace();
        Some(Holder {
            pid: it.next()?.parse().ok()?,
            start: it.next()?.parse().ok()?,
            ns: it.next().map(String::from),
        })
    }

    /// The same process (not a reused pid), not a zombie its parent has yet to reap.
    fn alive(&self) -> bool {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        host::start_time(self.pid) == Some(self.start)
            && !matches!(state, None | Some('Z' | 'X'))
            && self.namespace().exists()
    }

    fn namespace(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/user", self.pid))
    }

    /// A process of this user still in the dead holder's namespace, by its `ns/user` file.
    ///
    /// The kernel gives a namespace's number out again once the namespace is gone: a process
    /// found by number is taken only where it runs as this user and its namespace has the
    /// maps this job's has. (A killed holder's pid file can outlive its job; the next job of
    /// the same number, on a new cluster or after a restart, must not join a stranger's
    /// namespace, whose maps would not even hold the caller's ids.)
    fn member(&self, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Option<PathBuf> {
        let ns = self.ns.as_deref()?;
        fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            e.file_name().to_str()?.parse::<u32>().ok()?;
            let path = e.path().join("ns/user");
            (fs::read_link(&path).ok()?.to_str()? == ns
                && owned_by_caller(&e.path())
                && maps_are(&e.path().join("uid_map"), uids)
                && maps_are(&e.path().join("gid_map"), gids))
            .then_some(path)
        })
    }
}

/// Whether the process of `/proc/PID` runs as the caller (its real uid).
fn owned_by_caller(proc_dir: &Path) -> bool {
    let status = fs::read_to_string(proc_dir.join("status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next()?.parse::<u32>().ok())
        == Some(super::euid())
}

/// Whether a `uid_map` or `gid_map` file lists exactly `maps`, in order.
fn maps_are(file: &Path, maps: &[LinuxIdMapping]) -> bool {
    let Ok(text) = fs::read_to_string(file) else {
        return false;
    };
    let listed: Vec<[u32; 3]> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<u32> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            <[u32; 3]>::try_from(f).ok()
        })
        .collect();
    let wanted: Vec<[u32; 3]> = maps
        .iter()
        .map(|m| [m.container_id(), m.host_id(), m.size()])
        .collect();
    listed == wanted
}

/// Starts `berth __userns LOCK`, writes its maps and lets it go; returns its pid. With `join`,
/// the holder enters that existing namespace instead, whose maps are written already.
fn start_holder(
    lock_path: &Path,
    uids: &[LinuxIdMapping],
    gids: &[LinuxIdMapping],
    join: Option<&Path>,
    linger: std::time::Duration,
) -> Result<i32> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("cannot find the berth binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg0("berth").arg("__userns").arg(lock_path);
    if let Some(ns) = join {
        cmd.arg("--join").arg(ns);
    }
    if !linger.is_zero() {
        cmd.arg("--linger").arg(linger.as_secs().to_string());
    }
    let mut child = cmd
        // It may outlive this process by hours: keep no directory of the caller's busy.
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("cannot start the user namespace holder")?;
    let pid = child.id() as i32;
    let (_, line, mapped) = super::delegate::answer_helper(&mut child, uids, gids)?;
    let mapped = mapped.and_then(|()| match line.as_str() {
        "ready" => Ok(()),
        "joined" if join.is_some() => Ok(()),
        _ => Err(anyhow::anyhow!("it did not enter a user namespace")),
    });
    if let Err(e) = mapped {
        let _ = child.wait();
        bail!("cannot start the user namespace holder: {e:#}");
    }
    // Not waited for: it outlives this process and is reparented.
    std::mem::forget(child);
    Ok(pid)
}

/// `berth __userns LOCK [--join NS] [--linger SECONDS]`: enters a new user namespace (its maps
/// written by the caller) or joins `NS`, then stays in it until no container has held `LOCK`
/// for `linger`.
pub fn serve(lock_path: &Path, join: Option<&Path>, linger: std::time::Duration) -> Result<()> {
    match join {
        Some(ns) => {
            berth_runtime::join_user_namespace(ns)?;
            println!("joined");
        }
        None => {
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            let mut output = std::io::stdout().lock();
            berth_runtime::enter_user_namespace(&mut output, &mut input)?;
        }
    }
    // A user's holder outlives its containers: it makes their network namespaces meanwhile.
    // Without the pool, starts make their own.
    let pool = pool_socket(lock_path);
    if !linger.is_zero() {
        let _ = super::netns_pool::serve(&pool);
    }
    let held = open_lock(lock_path)?;
    lock(&held, true, lock_path)?;
    while !linger.is_zero() {
        // None left: let the next one in, wait, and leave if nobody came.
        held.unlock()
            .with_context(|| format!("cannot unlock {}", lock_path.display()))?;
        std::thread::sleep(linger);
        if held.try_lock().is_ok() {
            break;
        }
        lock(&held, true, lock_path)?;
    }
    // Nobody holds the namespace, and nobody can look for it while this lock is held (a
    // creator takes the create lock only while holding this one shared): the job's files go,
    // the lock file last; a container waiting on it takes the new one (see `acquire`).
    let _ = fs::remove_file(&pool);
    let _ = fs::remove_file(lock_path.with_extension("pid"));
    let _ = fs::remove_file(lock_path.with_extension("create"));
    let _ = fs::remove_file(lock_path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxIdMappingBuilder;

    fn map(container: u32, host: u32, size: u32) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(container)
            .host_id(host)
            .size(size)
            .build()
            .unwrap()
    }

    #[test]
    fn a_namespace_is_recognised_by_its_owner_and_maps() {
        let me = Path::new("/proc/self");
        assert!(owned_by_caller(me));
        // This process's own maps: those of whatever namespace it runs in.
        let text = fs::read_to_string(me.join("uid_map")).unwrap();
        let mine: Vec<LinuxIdMapping> = text
            .lines()
            .map(|l| {
                let f: Vec<u32> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
                map(f[0], f[1], f[2])
            })
            .collect();
        assert!(maps_are(&me.join("uid_map"), &mine));
        let other = [map(0, 100_000, 65_536)];
        assert!(!maps_are(&me.join("uid_map"), &other));
        assert!(!maps_are(Path::new("/nonexistent/uid_map"), &mine));
    }
}
