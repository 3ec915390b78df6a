//! Capabilities, masked paths and resource limits, with Docker's defaults and arithmetic.

use std::str::FromStr;

use oci_spec::runtime::{
    Capabilities, Capability, LinuxCapabilities, PosixRlimit, PosixRlimitBuilder, PosixRlimitType,
};

use crate::{OciError, RunOptions};

/// Docker's default capability set, in Docker's order.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability Berth knows, what `--privileged` and `--cap-add ALL` grant.
pub const ALL_CAPS: &[&str] = &[
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_READ",
    "CAP_AUDIT_WRITE",
    "CAP_BLOCK_SUSPEND",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_MKNOD",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_PERFMON",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYSLOG",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_NICE",
    "CAP_SYS_PACCT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_WAKE_ALARM",
];

/// Paths Docker hides (over-mounts with nothing) unless `--privileged`: kernel memory, keys,
/// timing side channels and firmware interfaces.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only unless `--privileged`: the kernel's global knobs.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// `CAP_NAME`, `NAME`, any case, to the canonical `CAP_NAME`; `ALL` stays `ALL`.
fn normalize(name: &str, flag: &'static str) -> Result<String, OciError> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(OciError::UnknownCapability {
            name: name.to_string(),
            flag,
        })
    }
}

/// The capability names the process keeps, Docker's rules in Docker's order of precedence:
/// `--privileged` keeps all; `--cap-add ALL` keeps all but the dropped; `--cap-drop ALL` keeps
/// only the added; otherwise the defaults minus the dropped plus the added.
pub(crate) fn capability_names(opts: &RunOptions) -> Result<Vec<String>, OciError> {
    let adds = opts
        .cap_add
        .iter()
        .map(|c| normalize(c, "--cap-add"))
        .collect::<Result<Vec<_>, _>>()?;
    let drops = opts
        .cap_drop
        .iter()
        .map(|c| normalize(c, "--cap-drop"))
        .collect::<Result<Vec<_>, _>>()?;
    let all = |list: &[String]| list.iter().any(|c| c == "ALL");
    let owned = |list: &[&str]| list.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let mut caps = if opts.privileged {
        owned(ALL_CAPS)
    } else if all(&adds) {
        owned(ALL_CAPS)
            .into_iter()
            .filter(|c| !drops.contains(c))
            .collect()
    } else if all(&drops) {
        adds
    } else {
        let mut caps: Vec<String> = owned(DEFAULT_CAPS)
            .into_iter()
            .filter(|c| !drops.contains(c))
            .collect();
        caps.extend(adds);
        caps
    };
    let mut seen = Vec::new();
    caps.retain(|c| {
        let first = !seen.contains(c);
        seen.push(c.clone());
        first
    });
    Ok(caps)
}

/// The process's capability sets: bounding and permitted get the names; effective too for
/// uid 0, empty for anyone else, as Docker does; inheritable and ambient stay empty.
pub(crate) fn capabilities(opts: &RunOptions, uid: u32) -> Result<LinuxCapabilities, OciError> {
    let set: Capabilities = capability_names(opts)?
        .iter()
        .map(|name| {
            // Every name in ALL_CAPS parses; the test below holds the list to that.
            Capability::from_str(&name["CAP_".len()..]).map_err(|_| OciError::UnknownCapability {
                name: name.clone(),
                flag: "--cap-add",
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(sets(set, uid))
}

/// Every capability in [`ALL_CAPS`], in the sets [`capabilities`] would fill for `uid`: what
/// `exec --privileged` gives a process.
pub fn all_capabilities(uid: u32) -> LinuxCapabilities {
    let set: Capabilities = ALL_CAPS
        .iter()
        .filter_map(|name| Capability::from_str(&name["CAP_".len()..]).ok())
        .collect();
    sets(set, uid)
}

fn sets(set: Capabilities, uid: u32) -> LinuxCapabilities {
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()));
    caps.set_permitted(Some(set.clone()));
    caps.set_effective(Some(if uid == 0 { set } else { Capabilities::new() }));
    caps.set_inheritable(Some(Capabilities::new()));
    caps.set_ambient(Some(Capabilities::new()));
    caps
}

/// Masked and read-only paths: Docker's, or none for `--privileged`.
pub(crate) fn masked_paths(privileged: bool) -> (Vec<String>, Vec<String>) {
    if privileged {
        return (Vec::new(), Vec::new());
    }
    let owned = |l: &[&str]| l.iter().map(|p| p.to_string()).collect();
    (owned(MASKED_PATHS), owned(READONLY_PATHS))
}

/// `--ulimit` names Docker accepts, and the limit each sets.
const ULIMITS: &[(&str, PosixRlimitType)] = &[
    ("core", PosixRlimitType::RlimitCore),
    ("cpu", PosixRlimitType::RlimitCpu),
    ("data", PosixRlimitType::RlimitData),
    ("fsize", PosixRlimitType::RlimitFsize),
    ("locks", PosixRlimitType::RlimitLocks),
    ("memlock", PosixRlimitType::RlimitMemlock),
    ("msgqueue", PosixRlimitType::RlimitMsgqueue),
    ("nice", PosixRlimitType::RlimitNice),
    ("nofile", PosixRlimitType::RlimitNofile),
    ("nproc", PosixRlimitType::RlimitNproc),
    ("rss", PosixRlimitType::RlimitRss),
    ("rtprio", PosixRlimitType::RlimitRtprio),
    ("rttime", PosixRlimitType::RlimitRttime),
    ("sigpending", PosixRlimitType::RlimitSigpending),
    ("stack", PosixRlimitType::RlimitStack),
];

/// `--ulimit` values as process rlimits; a later value for the same name wins.
pub(crate) fn rlimits(ulimits: &[(String, u64, u64)]) -> Result<Vec<PosixRlimit>, OciError> {
    let mut out: Vec<PosixRlimit> = Vec::new();
    for (name, soft, hard) in ulimits {
        let typ = ULIMITS
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| OciError::UnknownUlimit(name.clone()))?;
        if soft > hard {
            return Err(OciError::UlimitSoftAboveHard {
                name: name.clone(),
                soft: *soft,
                hard: *hard,
            });
        }
        out.retain(|r| r.typ() != typ);
        out.push(
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(*soft)
                .hard(*hard)
                .build()
                // Every field is given and none is validated, so the builder cannot fail.
                .expect("rlimit with all fields set"),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_known_name_is_an_oci_capability() {
        for name in ALL_CAPS {
            assert!(Capability::from_str(&name[4..]).is_ok(), "{name}");
        }
        for name in DEFAULT_CAPS {
            assert!(ALL_CAPS.contains(name), "{name}");
        }
    }

    #[test]
    fn capability_arithmetic_follows_docker() {
        let defaults = strings(DEFAULT_CAPS);
        let without = |drop: &[&str]| -> Vec<String> {
            defaults
                .iter()
                .filter(|c| !drop.contains(&c.as_str()))
                .cloned()
                .collect()
        };
        let all_but = |drop: &[&str]| -> Vec<String> {
            strings(ALL_CAPS)
                .into_iter()
                .filter(|c| !drop.contains(&c.as_str()))
                .collect()
        };
        // (add, drop, privileged, expected)
        type Case<'a> = (&'a [&'a str], &'a [&'a str], bool, Vec<String>);
        let cases: Vec<Case> = vec![
            (&[], &[], false, defaults.clone()),
            (
                &["sys_ptrace"],
                &[],
                false,
                [defaults.clone(), strings(&["CAP_SYS_PTRACE"])].concat(),
            ),
            (
                &["CAP_SYS_ADMIN"],
                &["net_raw", "MKNOD"],
                false,
                [
                    without(&["CAP_NET_RAW", "CAP_MKNOD"]),
                    strings(&["CAP_SYS_ADMIN"]),
                ]
                .concat(),
            ),
            (&["CHOWN"], &[], false, defaults.clone()),
            (&["all"], &["SYS_ADMIN"], false, all_but(&["CAP_SYS_ADMIN"])),
            (&["NET_ADMIN"], &["ALL"], false, strings(&["CAP_NET_ADMIN"])),
            (&[], &["ALL"], false, vec![]),
            (&[], &["all"], true, strings(ALL_CAPS)),
        ];
        for (add, drop, privileged, want) in cases {
            let opts = RunOptions {
                cap_add: strings(add),
                cap_drop: strings(drop),
                privileged,
                ..RunOptions::default()
            };
            assert_eq!(
                capability_names(&opts).unwrap(),
                want,
                "add {add:?} drop {drop:?}"
            );
        }
    }

    #[test]
    fn unknown_capabilities_name_the_flag() {
        let opts = RunOptions {
            cap_drop: strings(&["CAP_FLY"]),
            ..RunOptions::default()
        };
        let err = capability_names(&opts).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown capability \"CAP_FLY\" in --cap-drop"
        );
    }

    #[test]
    fn effective_is_empty_for_non_root() {
        let opts = RunOptions::default();
        let root = capabilities(&opts, 0).unwrap();
        assert_eq!(root.effective().as_ref().unwrap().len(), DEFAULT_CAPS.len());
        assert!(root.ambient().as_ref().unwrap().is_empty());
        assert!(root.inheritable().as_ref().unwrap().is_empty());
        let user = capabilities(&opts, 1000).unwrap();
        assert!(user.effective().as_ref().unwrap().is_empty());
        assert_eq!(user.bounding(), root.bounding());
        assert!(user
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::NetBindService));
    }

    #[test]
    fn privileged_unmasks() {
        assert_eq!(masked_paths(true), (vec![], vec![]));
        let (masked, ro) = masked_paths(false);
        assert!(masked.contains(&"/proc/kcore".to_string()));
        assert!(ro.contains(&"/proc/sys".to_string()));
    }

    #[test]
    fn ulimits_map_to_rlimits() {
        let got = rlimits(&[
            ("nofile".into(), 1024, 4096),
            ("nproc".into(), 10, 10),
            ("nofile".into(), 2048, 4096),
        ])
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].typ(), PosixRlimitType::RlimitNproc);
        assert_eq!(
            (got[1].typ(), got[1].soft(), got[1].hard()),
            (PosixRlimitType::RlimitNofile, 2048, 4096)
        );
        assert_eq!(
            rlimits(&[("as".into(), 1, 1)]).unwrap_err(),
            OciError::UnknownUlimit("as".into())
        );
        assert_eq!(
            rlimits(&[("core".into(), 5, 1)]).unwrap_err().to_string(),
            "ulimit core: soft limit 5 is greater than hard limit 1"
        );
    }
}
