//! What a container process becomes just before exec: resource limits, CPU affinity, user and
//! groups, capability sets and `no_new_privs`. Decided by the monitor, applied by the process.

use std::io;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{PosixRlimitType, Process};
use rustix::process::{Resource, Rlimit};
use rustix::thread::{CpuSet, Gid, Uid};

use crate::error::{Failure, RuntimeError, Step};
use crate::seccomp::Filter;

/// The capability sets from `process.capabilities`.
#[derive(Debug, Clone, Default)]
pub(crate) struct CapSets {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

/// Writes `/proc/self/oom_score_adj` (before `pivot_root` or after, `/proc` is there).
fn write_oom_score_adj(adj: i32) -> std::io::Result<()> {
    let fd = rustix::fs::open(
        "/proc/self/oom_score_adj",
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    rustix::io::write(&fd, DecimalI32::new(adj).as_bytes())?;
    Ok(())
}

/// An `i32` in decimal in a fixed buffer: the init does not allocate between clone and exec.
struct DecimalI32 {
    bytes: [u8; 12],
    start: usize,
}

impl DecimalI32 {
    fn new(v: i32) -> DecimalI32 {
        let mut bytes = [0u8; 12];
        let mut i = bytes.len();
        let mut n = v.unsigned_abs();
        loop {
            i -= 1;
            bytes[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if v < 0 {
            i -= 1;
            bytes[i] = b'-';
        }
        DecimalI32 { bytes, start: i }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// The identity and limits a process takes on before exec.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    caps: Option<CapSets>,
    no_new_privs: bool,
    rlimits: Vec<(PosixRlimitType, Resource, Rlimit)>,
    affinity: Option<CpuSet>,
    seccomp: Option<Filter>,
    /// `process.oomScoreAdj`.
    oom_score_adj: Option<i32>,
}

fn resource(t: PosixRlimitType) -> Option<Resource> {
    Some(match t {
        PosixRlimitType::RlimitCpu => Resource::Cpu,
        PosixRlimitType::RlimitFsize => Resource::Fsize,
        PosixRlimitType::RlimitData => Resource::Data,
        PosixRlimitType::RlimitStack => Resource::Stack,
        PosixRlimitType::RlimitCore => Resource::Core,
        PosixRlimitType::RlimitRss => Resource::Rss,
        PosixRlimitType::RlimitNproc => Resource::Nproc,
        PosixRlimitType::RlimitNofile => Resource::Nofile,
        PosixRlimitType::RlimitMemlock => Resource::Memlock,
        PosixRlimitType::RlimitAs => Resource::As,
        PosixRlimitType::RlimitLocks => Resource::Locks,
        PosixRlimitType::RlimitSigpending => Resource::Sigpending,
        PosixRlimitType::RlimitMsgqueue => Resource::Msgqueue,
        PosixRlimitType::RlimitNice => Resource::Nice,
        PosixRlimitType::RlimitRtprio => Resource::Rtprio,
        PosixRlimitType::RlimitRttime => Resource::Rttime,
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

fn limit(v: u64) -> Option<u64> {
    (v != u64::MAX).then_some(v)
}

fn cap_set(set: Option<&oci_spec::runtime::Capabilities>) -> Result<CapsHashSet, RuntimeError> {
    set.into_iter()
        .flatten()
        .map(|c| {
            let name = format!("CAP_{c}");
            Capability::from_str(&name)
                .map_err(|_| RuntimeError::InvalidSpec(format!("unknown capability {name}")))
        })
        .collect()
}

impl Credentials {
    /// Reads the process part of the spec; `cpus` is the wanted CPU list, narrowed to the CPUs
    /// this process may use now (affinity is never widened).
    pub(crate) fn from_process(
        p: &Process,
        cpus: Option<&[usize]>,
    ) -> Result<Credentials, RuntimeError> {
        let user = p.user();
        let caps = match p.capabilities() {
            None => None,
            Some(c) => Some(CapSets {
                bounding: cap_set(c.bounding().as_ref())?,
                effective: cap_set(c.effective().as_ref())?,
                permitted: cap_set(c.permitted().as_ref())?,
                inheritable: cap_set(c.inheritable().as_ref())?,
                ambient: cap_set(c.ambient().as_ref())?,
            }),
        };
        let mut rlimits = Vec::new();
        for r in p.rlimits().as_deref().unwrap_or_default() {
            let res = resource(r.typ()).ok_or_else(|| {
                RuntimeError::InvalidSpec(format!("unsupported rlimit {}", r.typ()))
            })?;
            rlimits.push((
                r.typ(),
                res,
                Rlimit {
                    current: limit(r.soft()),
                    maximum: limit(r.hard()),
                },
            ));
        }
        let affinity = match cpus {
            None => None,
            Some(cpus) => Some(narrow_affinity(cpus)?),
        };
        Ok(Credentials {
            uid: user.uid(),
            gid: user.gid(),
            groups: user.additional_gids().clone().unwrap_or_default(),
            caps,
            no_new_privs: p.no_new_privileges().unwrap_or(false),
            rlimits,
            affinity,
            seccomp: None,
            oom_score_adj: p.oom_score_adj(),
        })
    }

    /// Adds the seccomp filter installed by [`Credentials::apply`].
    pub(crate) fn set_seccomp(&mut self, filter: Option<Filter>) {
        self.seccomp = filter;
    }

    /// Applies everything, in the order the kernel's permission checks need.
    pub(crate) fn apply(&self) -> Result<(), Failure> {
        for (name, res, lim) in &self.rlimits {
            // Only CAP_SYS_RESOURCE may raise a hard limit, and HPC sites often withhold it.
            rustix::process::setrlimit(*res, *lim).map_err(|e| {
                let show = |v: Option<u64>| v.map_or("unlimited".to_owned(), |v| v.to_string());
                Failure::new(
                    Step::Rlimit,
                    format!("{name}={}:{}", show(lim.current), show(lim.maximum)),
                    e.into(),
                )
            })?;
        }
        if let Some(set) = &self.affinity {
            rustix::thread::sched_setaffinity(None, set)
                .map_err(Failure::at(Step::Affinity, "container"))?;
        }
        if let Some(adj) = self.oom_score_adj {
            // Raising it is anyone's right; lowering it below the caller's needs
            // CAP_SYS_RESOURCE on the host, which a rootless caller lacks.
            write_oom_score_adj(adj).map_err(|e| Failure::new(Step::OomScoreAdj, adj, e))?;
        }
        if let Some(caps) = &self.caps {
            drop_bounding(&caps.bounding)?;
        }
        // Without no_new_privs the kernel accepts a filter only from a process with
        // CAP_SYS_ADMIN in its user namespace, which container root still has here and loses
        // below; setuid programs keep working then, as with Docker. The calls left before
        // exec (set*id, capset, prctl, sigaction, close_range, execve) are in every sane
        // profile. A process without that capability (a host user namespace) gets
        // no_new_privs instead, which costs it nothing it could have used.
        let mut pending = self.seccomp.as_ref();
        let mut no_new_privs = self.no_new_privs;
        if let Some(filter) = pending.filter(|_| !no_new_privs) {
            match filter.install() {
                Ok(()) => pending = None,
                Err(f) if f.errno == libc::EACCES => no_new_privs = true,
                Err(f) => return Err(f),
            }
        }
        self.set_ids()?;
        if let Some(caps) = &self.caps {
            set_caps(caps)?;
        }
        if no_new_privs {
            rustix::thread::set_no_new_privs(true)
                .map_err(Failure::at(Step::NoNewPrivileges, "process"))?;
        }
        // With no_new_privs the filter goes last, so it confines nothing of the setup.
        if let Some(filter) = pending {
            filter.install()?;
        }
        Ok(())
    }

    fn set_ids(&self) -> Result<(), Failure> {
        // Capabilities would be cleared by the uid change; they are set explicitly afterwards.
        let keep = self.caps.is_some();
        if keep {
            rustix::thread::set_keep_capabilities(true)
                .map_err(Failure::at(Step::Capabilities, "keep across setuid"))?;
        }
        let groups: Vec<Gid> = self.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        match rustix::thread::set_thread_groups(&groups) {
            Ok(()) => {}
            // With setgroups denied (a single-id map) an empty list, or one naming only the
            // primary group, grants nothing the gid set below does not.
            Err(rustix::io::Errno::PERM) if self.groups.iter().all(|g| *g == self.gid) => {}
            Err(e) => {
                return Err(Failure::new(
                    Step::User,
                    format!("groups {:?}", self.groups),
                    e.into(),
                ))
            }
        }
        let gid = Gid::from_raw(self.gid);
        rustix::thread::set_thread_res_gid(gid, gid, gid)
            .map_err(Failure::at(Step::User, format!("gid {}", self.gid)))?;
        let uid = Uid::from_raw(self.uid);
        rustix::thread::set_thread_res_uid(uid, uid, uid)
            .map_err(Failure::at(Step::User, format!("uid {}", self.uid)))?;
        if keep {
            rustix::thread::set_keep_capabilities(false)
                .map_err(Failure::at(Step::Capabilities, "keep across setuid"))?;
        }
        Ok(())
    }
}

fn caps_failure(what: &str, e: caps::errors::CapsError) -> Failure {
    Failure::new(
        Step::Capabilities,
        format!("{what} ({e})"),
        io::Error::from_raw_os_error(libc::EPERM),
    )
}

fn drop_bounding(keep: &CapsHashSet) -> Result<(), Failure> {
    // Dropping a capability the set already lacks does nothing, so the kernel's list (one small
    // file) replaces reading the set one capability per call.
    let current = match caps::runtime::procfs_all_supported(None) {
        Ok(all) => all,
        Err(_) => {
            caps::read(None, CapSet::Bounding).map_err(|e| caps_failure("read bounding set", e))?
        }
    };
    for cap in current.difference(keep) {
        caps::drop(None, CapSet::Bounding, *cap)
            .map_err(|e| caps_failure(&format!("drop {cap} from bounding set"), e))?;
    }
    Ok(())
}

fn set_caps(c: &CapSets) -> Result<(), Failure> {
    // What this process can grant at all: a cap missing from the host's bounding set (say
    // CAP_SYS_RESOURCE on a cluster) is silently absent, as with Docker.
    let available =
        caps::read(None, CapSet::Permitted).map_err(|e| caps_failure("read permitted set", e))?;
    let permitted: CapsHashSet = c.permitted.intersection(&available).copied().collect();
    let effective: CapsHashSet = c.effective.intersection(&permitted).copied().collect();
    let inheritable: CapsHashSet = c.inheritable.intersection(&available).copied().collect();
    // Order matters: each capset must keep effective within permitted.
    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(|e| caps_failure("set inheritable", e))?;
    caps::set(None, CapSet::Effective, &effective).map_err(|e| caps_failure("set effective", e))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(|e| caps_failure("set permitted", e))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| caps_failure("clear ambient", e))?;
    for cap in &c.ambient {
        if permitted.contains(cap) && inheritable.contains(cap) {
            caps::raise(None, CapSet::Ambient, *cap)
                .map_err(|e| caps_failure(&format!("raise ambient {cap}"), e))?;
        }
    }
    Ok(())
}

/// The wanted CPUs that are also in the current affinity.
fn narrow_affinity(cpus: &[usize]) -> Result<CpuSet, RuntimeError> {
    let current = rustix::thread::sched_getaffinity(None).map_err(|e| RuntimeError::Sys {
        call: "sched_getaffinity",
        source: e.into(),
    })?;
    let mut set = CpuSet::new();
    for &cpu in cpus {
        if cpu < CpuSet::MAX_CPU && current.is_set(cpu) {
            set.set(cpu);
        }
    }
    if set.count() == 0 {
        return Err(RuntimeError::InvalidSpec(format!(
            "cpu affinity {cpus:?} has no cpu this process may use"
        )));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_convert() {
        let mut set = oci_spec::runtime::Capabilities::new();
        set.insert(oci_spec::runtime::Capability::NetBindService);
        set.insert(oci_spec::runtime::Capability::SysAdmin);
        let got = cap_set(Some(&set)).unwrap();
        assert!(got.contains(&Capability::CAP_NET_BIND_SERVICE));
        assert!(got.contains(&Capability::CAP_SYS_ADMIN));
    }

    #[test]
    fn affinity_is_narrowed() {
        assert!(narrow_affinity(&[100_000]).is_err());
        let set = narrow_affinity(&[0, 100_000]).unwrap();
        assert_eq!(set.count(), 1);
    }
}
