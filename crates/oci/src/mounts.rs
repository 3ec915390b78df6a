//! The mount list, in the order the runtime performs it.
//!
//! First the kernel filesystems every container needs, as Docker mounts them. Each one that
//! belongs to a namespace the container shares with the host is bound from the host instead:
//! the kernel only lets a user namespace mount a fresh `proc` for a pid namespace it owns, a
//! fresh `sysfs` for a network namespace it owns, a fresh `mqueue` for an ipc namespace it
//! owns, and `/dev/shm` must be the host's for shared memory to reach processes outside.
//! Then, in the hpc profile, the caller's world: home, working directory, `/tmp` and `/var/tmp`
//! (as Apptainer binds them, so scratch files and sockets are where the job expects), and the
//! site's mounts. Last the user's own `-v`, `--mount` and `--tmpfs`, in the order given, so they
//! can cover anything above.

use std::path::PathBuf;

use oci_spec::runtime::Mount;

use crate::userns::{IdMappings, Ns};
use crate::{IpcMode, MountKind, MountSpec, OciError, Profile, RunOptions};

/// What the container shares with the host, as far as mounts care.
pub(crate) struct Isolation {
    new_pid: bool,
    new_net: bool,
    new_ipc: bool,
    /// Whether gid 5 (`tty`) exists inside, for the `gid=5` devpts option.
    tty_gid: bool,
    privileged: bool,
}

impl Isolation {
    pub(crate) fn of(namespaces: &[Ns], maps: Option<&IdMappings>, privileged: bool) -> Self {
        let tty_gid = maps.is_none_or(|m| {
            m.gids
                .iter()
                .any(|r| r.container <= 5 && 5 - r.container < r.size)
        });
        Isolation {
            new_pid: namespaces.contains(&Ns::Pid),
            new_net: namespaces.contains(&Ns::Net),
            new_ipc: namespaces.contains(&Ns::Ipc),
            tty_gid,
            privileged,
        }
    }
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(destination));
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

fn bind(source: &str, destination: &str, options: Vec<String>) -> Mount {
    let mut m = mount(destination, "bind", source, &[]);
    m.set_options(Some(options));
    m
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Option groups where a later option replaces an earlier one.
const EXCLUSIVE: &[&[&str]] = &[
    &["ro", "rw"],
    &["exec", "noexec"],
    &["suid", "nosuid"],
    &["dev", "nodev"],
    &["atime", "noatime", "relatime", "strictatime"],
    &[
        "private",
        "rprivate",
        "shared",
        "rshared",
        "slave",
        "rslave",
        "unbindable",
        "runbindable",
    ],
];

/// `defaults` with `extra` applied: an option replaces the earlier member of its group (`exec`
/// replaces `noexec`), a `key=value` the earlier value of its key, as Docker merges `--tmpfs`
/// options with its defaults.
fn merge(defaults: Vec<String>, extra: &[String]) -> Vec<String> {
    let mut out = defaults;
    for opt in extra {
        let key = |o: &str| o.split_once('=').map(|(k, _)| k.to_string());
        let group = EXCLUSIVE.iter().find(|g| g.contains(&opt.as_str()));
        out.retain(|o| match (group, key(opt)) {
            (Some(g), _) => !g.contains(&o.as_str()),
            (None, Some(k)) => key(o).as_deref() != Some(k.as_str()),
            (None, None) => o != opt,
        });
        out.push(opt.clone());
    }
    out
}

/// One user or site mount: binds and volumes as Docker's `rbind,rprivate`, tmpfs with Docker's
/// `--tmpfs` defaults (`noexec,nosuid,nodev`, no size limit), options from the user last.
fn user_mount(spec: &MountSpec) -> Result<Mount, OciError> {
    if !spec.target.starts_with('/') {
        return Err(OciError::RelativeMountTarget(spec.target.clone()));
    }
    let readonly = if spec.readonly {
        vec!["ro".to_string()]
    } else {
        vec![]
    };
    Ok(match spec.kind {
        MountKind::Bind | MountKind::Volume => {
            let defaults = [strings(&["rbind", "rprivate"]), readonly].concat();
            bind(&spec.source, &spec.target, merge(defaults, &spec.options))
        }
        MountKind::Tmpfs => {
            let defaults = [
                strings(&["noexec", "nosuid", "nodev", "rprivate"]),
                readonly,
            ]
            .concat();
            let mut m = mount(&spec.target, "tmpfs", "tmpfs", &[]);
            m.set_options(Some(merge(defaults, &spec.options)));
            m
        }
    })
}

/// Whether `path` is `dir` or below it, comparing whole components.
fn is_under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || dir.is_empty() || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// The complete mount list for the container.
pub(crate) fn mounts(
    opts: &RunOptions,
    iso: &Isolation,
    warnings: &mut Vec<String>,
) -> Result<Vec<Mount>, OciError> {
    let mut out = Vec::new();
    out.push(if iso.new_pid {
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])
    } else {
        bind(
            "/proc",
            "/proc",
            strings(&["rbind", "nosuid", "noexec", "nodev"]),
        )
    });
    out.push(mount(
        "/dev",
        "tmpfs",
        "tmpfs",
        &["nosuid", "strictatime", "mode=755", "size=65536k"],
    ));
    let mut pts = strings(&[
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
    ]);
    if iso.tty_gid {
        pts.push("gid=5".into());
    }
    let mut devpts = mount("/dev/pts", "devpts", "devpts", &[]);
    devpts.set_options(Some(pts));
    out.push(devpts);
    if iso.new_ipc {
        // `--ipc none`: Docker mounts no /dev/shm at all.
        if opts.ipc != Some(IpcMode::None) {
            let size = format!("size={}k", opts.shm_size.unwrap_or(64 << 20).div_ceil(1024));
            out.push(mount(
                "/dev/shm",
                "tmpfs",
                "shm",
                &["nosuid", "noexec", "nodev", "mode=1777", &size],
            ));
        }
        out.push(mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ));
    } else {
        // Only /dev/shm is carried over: hosts often have no /dev/mqueue mounted, and a fresh
        // mqueue for the host's ipc namespace needs privileges over that namespace.
        out.push(bind(
            "/dev/shm",
            "/dev/shm",
            strings(&["rbind", "nosuid", "nodev"]),
        ));
    }
    let sys_access = if iso.privileged { "rw" } else { "ro" };
    out.push(if iso.new_net {
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_access],
        )
    } else {
        bind(
            "/sys",
            "/sys",
            strings(&["rbind", "nosuid", "noexec", "nodev", sys_access]),
        )
    });

    if opts.profile == Profile::Hpc {
        hpc_mounts(opts, &mut out, warnings);
        for site in &opts.site_mounts {
            out.push(user_mount(site)?);
        }
    }
    for spec in &opts.mounts {
        out.push(user_mount(spec)?);
    }
    Ok(out)
}

/// The hpc profile's binds of the caller's directories, each at its own path.
fn hpc_mounts(opts: &RunOptions, out: &mut Vec<Mount>, warnings: &mut Vec<String>) {
    let c = &opts.caller;
    let options = || strings(&["rbind", "rprivate", "nosuid", "nodev"]);
    let mut bound: Vec<&str> = Vec::new();
    if c.home.starts_with('/') && !c.home.trim_end_matches('/').is_empty() {
        out.push(bind(&c.home, &c.home, options()));
        bound.push(&c.home);
    } else {
        warnings.push(format!(
            "home directory {:?} is not bound into the container",
            c.home
        ));
    }
    for tmp in ["/tmp", "/var/tmp"] {
        out.push(bind(tmp, tmp, options()));
        bound.push(tmp);
    }
    // Only bind the working directory if nothing bound already covers it and -w did not move
    // the process elsewhere; "/" is the image's root and cannot be bound over.
    let cwd = c.cwd.as_str();
    if opts.workdir.is_none()
        && cwd.starts_with('/')
        && !cwd.trim_end_matches('/').is_empty()
        && !bound.iter().any(|b| is_under(cwd, b))
    {
        out.push(bind(cwd, cwd, options()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::userns::id_mappings;
    use crate::{Caller, UsernsMode};

    fn dests(m: &[Mount]) -> Vec<String> {
        m.iter()
            .map(|m| m.destination().to_string_lossy().into_owned())
            .collect()
    }

    fn typ(m: &Mount) -> &str {
        m.typ().as_deref().unwrap()
    }

    fn opts_of(m: &Mount) -> Vec<&str> {
        m.options().iter().flatten().map(String::as_str).collect()
    }

    fn iso(new_pid: bool, new_net: bool, new_ipc: bool, privileged: bool) -> Isolation {
        Isolation {
            new_pid,
            new_net,
            new_ipc,
            tty_gid: true,
            privileged,
        }
    }

    #[test]
    fn docker_defaults_in_order() {
        let m = mounts(
            &RunOptions::default(),
            &iso(true, true, true, false),
            &mut vec![],
        )
        .unwrap();
        assert_eq!(
            dests(&m),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys"
            ]
        );
        let types: Vec<&str> = m.iter().map(typ).collect();
        assert_eq!(
            types,
            ["proc", "tmpfs", "devpts", "tmpfs", "mqueue", "sysfs"]
        );
        assert_eq!(
            opts_of(&m[2]),
            [
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5"
            ]
        );
        assert_eq!(
            opts_of(&m[3]),
            ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
        );
        assert_eq!(opts_of(&m[5]), ["nosuid", "noexec", "nodev", "ro"]);
    }

    #[test]
    fn shared_namespaces_bind_the_host_filesystems() {
        let m = mounts(
            &RunOptions::default(),
            &iso(false, false, false, true),
            &mut vec![],
        )
        .unwrap();
        for (i, path) in [(0, "/proc"), (3, "/dev/shm"), (4, "/sys")] {
            assert_eq!(typ(&m[i]), "bind", "{path}");
            assert_eq!(m[i].source().as_deref(), Some(std::path::Path::new(path)));
            assert_eq!(opts_of(&m[i])[0], "rbind");
        }
        assert!(
            opts_of(&m[4]).contains(&"rw"),
            "privileged /sys is writable"
        );
    }

    #[test]
    fn devpts_names_gid_5_only_when_mapped() {
        let c = Caller {
            uid: 1000,
            gid: 1000,
            ..Caller::default()
        };
        let maps = id_mappings(UsernsMode::KeepId, &c).unwrap();
        let i = Isolation::of(&[Ns::Pid, Ns::Net, Ns::Ipc], maps.as_ref(), false);
        let m = mounts(&RunOptions::default(), &i, &mut vec![]).unwrap();
        assert!(!opts_of(&m[2]).contains(&"gid=5"));
        let i = Isolation::of(&[], None, false);
        let m = mounts(&RunOptions::default(), &i, &mut vec![]).unwrap();
        assert!(opts_of(&m[2]).contains(&"gid=5"));
    }

    fn spec(kind: MountKind, source: &str, target: &str, ro: bool, options: &[&str]) -> MountSpec {
        MountSpec {
            kind,
            source: source.into(),
            target: target.into(),
            readonly: ro,
            options: strings(options),
        }
    }

    #[test]
    fn user_mounts_take_docker_defaults_and_user_options() {
        // (mount, type, options)
        let cases: Vec<(MountSpec, &str, &[&str])> = vec![
            (
                spec(MountKind::Bind, "/h", "/c", false, &[]),
                "bind",
                &["rbind", "rprivate"],
            ),
            (
                spec(MountKind::Bind, "/h", "/c", true, &[]),
                "bind",
                &["rbind", "rprivate", "ro"],
            ),
            (
                spec(MountKind::Volume, "/v", "/c", false, &["rshared", "nosuid"]),
                "bind",
                &["rbind", "rshared", "nosuid"],
            ),
            (
                spec(MountKind::Tmpfs, "", "/t", false, &[]),
                "tmpfs",
                &["noexec", "nosuid", "nodev", "rprivate"],
            ),
            (
                spec(
                    MountKind::Tmpfs,
                    "",
                    "/t",
                    false,
                    &["exec", "size=1g", "size=2g"],
                ),
                "tmpfs",
                &["nosuid", "nodev", "rprivate", "exec", "size=2g"],
            ),
        ];
        for (s, want_type, want_opts) in cases {
            let m = user_mount(&s).unwrap();
            assert_eq!(
                (typ(&m), opts_of(&m)),
                (want_type, want_opts.to_vec()),
                "{s:?}"
            );
        }
        let bad = spec(MountKind::Bind, "/h", "rel", false, &[]);
        assert_eq!(
            user_mount(&bad).unwrap_err(),
            OciError::RelativeMountTarget("rel".into())
        );
    }

    fn hpc(cwd: &str, home: &str) -> RunOptions {
        RunOptions {
            profile: Profile::Hpc,
            caller: Caller {
                home: home.into(),
                cwd: cwd.into(),
                ..Caller::default()
            },
            site_mounts: vec![spec(MountKind::Bind, "/softs", "/softs", true, &[])],
            mounts: vec![spec(MountKind::Tmpfs, "", "/scratch", false, &[])],
            ..RunOptions::default()
        }
    }

    #[test]
    fn hpc_binds_home_tmp_cwd_site_then_user() {
        let m = mounts(
            &hpc("/work/p1", "/home/a"),
            &iso(false, false, false, false),
            &mut vec![],
        )
        .unwrap();
        assert_eq!(
            dests(&m)[5..],
            ["/home/a", "/tmp", "/var/tmp", "/work/p1", "/softs", "/scratch"]
        );
        assert_eq!(opts_of(&m[9]), ["rbind", "rprivate", "ro"]);
    }

    #[test]
    fn hpc_cwd_under_a_bound_directory_is_not_bound_again() {
        for cwd in ["/home/a/src", "/home/a", "/tmp/x", "/"] {
            let m = mounts(
                &hpc(cwd, "/home/a/"),
                &iso(false, false, false, false),
                &mut vec![],
            )
            .unwrap();
            assert_eq!(m.len(), 5 + 3 + 2, "cwd {cwd}: {:?}", dests(&m));
        }
        let mut w = vec![];
        let m = mounts(
            &hpc("/home/ab", "/"),
            &iso(false, false, false, false),
            &mut w,
        )
        .unwrap();
        assert_eq!(
            dests(&m)[5..],
            ["/tmp", "/var/tmp", "/home/ab", "/softs", "/scratch"]
        );
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn is_under_compares_components() {
        assert!(is_under("/home/a", "/home/a"));
        assert!(is_under("/home/a/b", "/home/a/"));
        assert!(!is_under("/home/ab", "/home/a"));
        assert!(is_under("/x", "/"));
    }
}
