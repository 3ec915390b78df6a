//! Namespaces and user-namespace id mappings.
//!
//! Berth always creates a user namespace (unless a root caller asks for `--userns=host`), so an
//! unprivileged caller can create the others. Which ids exist inside depends on the mode:
//!
//! - `auto` (the docker profile): root inside is the caller; container ids from 1 up are the
//!   caller's subordinate range from `/etc/subuid`, so images that `chown` files to other users
//!   or switch `USER` work. Without a subordinate range only root exists.
//! - `keep-id` (the hpc profile): the caller's uid is itself inside; ids below and above it are
//!   filled from the subordinate range when there is one, podman's layout.
//! - A root caller maps container ids `0..65536` to the same host ids, so image ownership is
//!   real ownership, whatever the mode.

use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder, LinuxNamespaceType};

use crate::user::Identity;
use crate::{Caller, IdRange, IpcMode, NetworkMode, OciError, Profile, RunOptions, UsernsMode};

/// Ids a root caller maps to themselves: the range image files use.
const ROOT_IDENTITY_SIZE: u32 = 65536;

/// The uid and gid mappings of a user namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdMappings {
    /// uid ranges, ascending by container id.
    pub uids: Vec<IdRange>,
    /// gid ranges, ascending by container id.
    pub gids: Vec<IdRange>,
}

impl IdMappings {
    fn maps_uid(&self, id: u32) -> bool {
        contains(&self.uids, id)
    }

    fn maps_gid(&self, id: u32) -> bool {
        contains(&self.gids, id)
    }
}

fn contains(ranges: &[IdRange], id: u32) -> bool {
    ranges
        .iter()
        .any(|r| id >= r.container && (id - r.container) < r.size)
}

/// The mappings for `mode`, or `None` for no user namespace (`--userns=host`, root only).
pub fn id_mappings(mode: UsernsMode, caller: &Caller) -> Result<Option<IdMappings>, OciError> {
    if mode == UsernsMode::Host {
        return if caller.uid == 0 {
            Ok(None)
        } else {
            Err(OciError::UsernsHostNeedsRoot(caller.uid))
        };
    }
    if caller.uid == 0 {
        let identity = vec![IdRange {
            container: 0,
            host: 0,
            size: ROOT_IDENTITY_SIZE,
        }];
        return Ok(Some(IdMappings {
            uids: identity.clone(),
            gids: identity,
        }));
    }
    let one = |id, sub| match mode {
        UsernsMode::KeepId => keep_id(id, sub),
        _ => auto(id, sub),
    };
    Ok(Some(IdMappings {
        uids: one(caller.uid, caller.subuids),
        gids: one(caller.gid, caller.subgids),
    }))
}

fn auto(id: u32, sub: Option<(u32, u32)>) -> Vec<IdRange> {
    let mut out = vec![IdRange {
        container: 0,
        host: id,
        size: 1,
    }];
    if let Some((start, count)) = sub.filter(|s| s.1 > 0) {
        out.push(IdRange {
            container: 1,
            host: start,
            size: count,
        });
    }
    out
}

fn keep_id(id: u32, sub: Option<(u32, u32)>) -> Vec<IdRange> {
    let mut out = Vec::new();
    let (start, count) = sub.unwrap_or((0, 0));
    let below = count.min(id);
    if below > 0 {
        out.push(IdRange {
            container: 0,
            host: start,
            size: below,
        });
    }
    out.push(IdRange {
        container: id,
        host: id,
        size: 1,
    });
    let rest = (count - below).min(u32::MAX - id);
    if rest > 0 {
        out.push(IdRange {
            container: id + 1,
            host: start.saturating_add(below),
            size: rest,
        });
    }
    out
}

pub(crate) fn oci_range(r: &IdRange) -> LinuxIdMapping {
    LinuxIdMappingBuilder::default()
        .container_id(r.container)
        .host_id(r.host)
        .size(r.size)
        .build()
        // Every field is given and none is validated, so the builder cannot fail.
        .expect("id mapping with all fields set")
}

/// A namespace the container gets its own of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ns {
    User,
    Mount,
    Pid,
    Ipc,
    Uts,
    Net,
    Cgroup,
}

impl Ns {
    pub(crate) fn oci(self) -> LinuxNamespaceType {
        match self {
            Ns::User => LinuxNamespaceType::User,
            Ns::Mount => LinuxNamespaceType::Mount,
            Ns::Pid => LinuxNamespaceType::Pid,
            Ns::Ipc => LinuxNamespaceType::Ipc,
            Ns::Uts => LinuxNamespaceType::Uts,
            Ns::Net => LinuxNamespaceType::Network,
            Ns::Cgroup => LinuxNamespaceType::Cgroup,
        }
    }
}

/// The namespaces to create. The docker profile isolates everything, except that
/// `--network host` also shares the hostname (Docker shows the host's name there) unless `-h`
/// is given. The hpc profile creates only user and mount namespaces; `--network private|none`,
/// `--pid=private` and `-h` each add theirs back.
pub(crate) fn namespaces(opts: &RunOptions, user_ns: bool) -> Vec<Ns> {
    let mut out = Vec::new();
    if user_ns {
        out.push(Ns::User);
    }
    out.push(Ns::Mount);
    let hostname = opts.hostname.as_deref().is_some_and(|h| !h.is_empty());
    let private_ipc = |default: bool| opts.ipc.map_or(default, |m| m != IpcMode::Host);
    match opts.profile {
        Profile::Docker => {
            let host_net = opts.network == Some(NetworkMode::Host);
            if opts.pid_host != Some(true) {
                out.push(Ns::Pid);
            }
            if private_ipc(true) {
                out.push(Ns::Ipc);
            }
            let uts = match opts.uts_host {
                Some(host) => !host || hostname,
                None => !host_net || hostname,
            };
            if uts {
                out.push(Ns::Uts);
            }
            if !host_net {
                out.push(Ns::Net);
            }
            if opts.cgroupns_host != Some(true) {
                out.push(Ns::Cgroup);
            }
        }
        Profile::Hpc => {
            if opts.pid_host == Some(false) {
                out.push(Ns::Pid);
            }
            if private_ipc(false) {
                out.push(Ns::Ipc);
            }
            if hostname || opts.uts_host == Some(false) {
                out.push(Ns::Uts);
            }
            if matches!(
                opts.network,
                Some(NetworkMode::Private) | Some(NetworkMode::None)
            ) {
                out.push(Ns::Net);
            }
            if opts.cgroupns_host == Some(false) {
                out.push(Ns::Cgroup);
            }
        }
    }
    out
}

/// Checks that the process's uid and gid exist inside the user namespace, and returns the
/// supplementary groups to set.
///
/// With the caller's own identity, groups are inherited ([`crate::KEEP_GROUPS_ANNOTATION`]): a
/// runtime that sets them anyway may only name those mapped to themselves, since any other id
/// inside stands for a different group outside. Otherwise unmapped groups are dropped with a
/// warning: the kernel would refuse `setgroups` over them.
pub(crate) fn check_identity(
    ident: &Identity,
    maps: Option<&IdMappings>,
    caller: &Caller,
    warnings: &mut Vec<String>,
) -> Result<Vec<u32>, OciError> {
    let Some(maps) = maps else {
        return Ok(ident.additional_gids.clone());
    };
    let hint = |what: &str, file: &str, sub: Option<(u32, u32)>| {
        match sub {
        Some((_, n)) if n > 0 => format!(
            "it is outside the {n} subordinate {what}s {file} grants {}",
            caller.user_name
        ),
        _ => format!(
            "{file} grants {} no subordinate {what}s; add a range there, or run as yourself (--userns=keep-id, no -u)",
            caller.user_name
        ),
    }
    };
    if !maps.maps_uid(ident.uid) {
        return Err(OciError::Unmapped {
            what: "uid",
            id: ident.uid,
            hint: hint("uid", "/etc/subuid", caller.subuids),
        });
    }
    if !maps.maps_gid(ident.gid) {
        return Err(OciError::Unmapped {
            what: "gid",
            id: ident.gid,
            hint: hint("gid", "/etc/subgid", caller.subgids),
        });
    }
    let identity_mapped = |g: u32| {
        maps.gids
            .iter()
            .any(|r| r.host == r.container && g >= r.container && g - r.container < r.size)
    };
    let (keep, drop): (Vec<u32>, Vec<u32>) = if ident.keep_groups {
        ident
            .additional_gids
            .iter()
            .partition(|g| identity_mapped(**g))
    } else {
        ident
            .additional_gids
            .iter()
            .partition(|g| maps.maps_gid(**g))
    };
    if !drop.is_empty() && !ident.keep_groups {
        let list: Vec<String> = drop.iter().map(u32::to_string).collect();
        warnings.push(format!(
            "supplementary groups {} are not mapped into the container and are left out",
            list.join(",")
        ));
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(container: u32, host: u32, size: u32) -> IdRange {
        IdRange {
            container,
            host,
            size,
        }
    }

    fn caller(uid: u32, sub: Option<(u32, u32)>) -> Caller {
        Caller {
            uid,
            gid: uid,
            subuids: sub,
            subgids: sub,
            user_name: "alice".into(),
            ..Caller::default()
        }
    }

    #[test]
    fn mappings_per_mode_and_caller() {
        type Case = (UsernsMode, u32, Option<(u32, u32)>, Option<Vec<IdRange>>);
        let cases: Vec<Case> = vec![
            (UsernsMode::Auto, 1000, None, Some(vec![r(0, 1000, 1)])),
            (
                UsernsMode::Auto,
                1000,
                Some((100000, 65536)),
                Some(vec![r(0, 1000, 1), r(1, 100000, 65536)]),
            ),
            (
                UsernsMode::Auto,
                1000,
                Some((100000, 0)),
                Some(vec![r(0, 1000, 1)]),
            ),
            (UsernsMode::KeepId, 1000, None, Some(vec![r(1000, 1000, 1)])),
            (
                UsernsMode::KeepId,
                1000,
                Some((100000, 65536)),
                Some(vec![
                    r(0, 100000, 1000),
                    r(1000, 1000, 1),
                    r(1001, 101000, 64536),
                ]),
            ),
            (
                UsernsMode::KeepId,
                1000,
                Some((100000, 500)),
                Some(vec![r(0, 100000, 500), r(1000, 1000, 1)]),
            ),
            (UsernsMode::Auto, 0, None, Some(vec![r(0, 0, 65536)])),
            (
                UsernsMode::KeepId,
                0,
                Some((100000, 65536)),
                Some(vec![r(0, 0, 65536)]),
            ),
            (UsernsMode::Host, 0, None, None),
        ];
        for (mode, uid, sub, want) in cases {
            let got = id_mappings(mode, &caller(uid, sub)).unwrap();
            assert_eq!(
                got.as_ref().map(|m| &m.uids),
                want.as_ref(),
                "{mode:?} {uid} {sub:?}"
            );
            assert_eq!(got.map(|m| m.gids), want, "{mode:?} {uid} {sub:?} gids");
        }
    }

    #[test]
    fn host_userns_needs_root() {
        assert_eq!(
            id_mappings(UsernsMode::Host, &caller(1000, None)).unwrap_err(),
            OciError::UsernsHostNeedsRoot(1000)
        );
    }

    #[test]
    fn namespaces_per_profile_and_flags() {
        use Ns::*;
        type Case = (
            Profile,
            Option<NetworkMode>,
            Option<bool>,
            Option<&'static str>,
            Vec<Ns>,
        );
        let cases: Vec<Case> = vec![
            (
                Profile::Docker,
                None,
                None,
                None,
                vec![User, Mount, Pid, Ipc, Uts, Net, Cgroup],
            ),
            (
                Profile::Docker,
                Some(NetworkMode::None),
                None,
                None,
                vec![User, Mount, Pid, Ipc, Uts, Net, Cgroup],
            ),
            (
                Profile::Docker,
                Some(NetworkMode::Host),
                None,
                None,
                vec![User, Mount, Pid, Ipc, Cgroup],
            ),
            (
                Profile::Docker,
                Some(NetworkMode::Host),
                Some(true),
                Some("h"),
                vec![User, Mount, Ipc, Uts, Cgroup],
            ),
            (Profile::Hpc, None, None, None, vec![User, Mount]),
            (
                Profile::Hpc,
                Some(NetworkMode::Host),
                Some(true),
                None,
                vec![User, Mount],
            ),
            (
                Profile::Hpc,
                Some(NetworkMode::Private),
                Some(false),
                Some("h"),
                vec![User, Mount, Pid, Uts, Net],
            ),
        ];
        for (profile, network, pid_host, hostname, want) in cases {
            let opts = RunOptions {
                profile,
                network,
                pid_host,
                hostname: hostname.map(String::from),
                ..RunOptions::default()
            };
            assert_eq!(
                namespaces(&opts, true),
                want,
                "{profile:?} {network:?} {pid_host:?}"
            );
        }
        assert_eq!(namespaces(&RunOptions::default(), false)[0], Mount);
    }

    fn ident(uid: u32, gid: u32, sgids: &[u32], keep: bool) -> Identity {
        Identity {
            uid,
            gid,
            additional_gids: sgids.to_vec(),
            home: "/".into(),
            keep_groups: keep,
            files: vec![],
        }
    }

    #[test]
    fn unmapped_users_are_refused_with_a_hint() {
        let c = caller(1000, None);
        let maps = id_mappings(UsernsMode::Auto, &c).unwrap().unwrap();
        let mut w = vec![];
        let err = check_identity(&ident(33, 0, &[], false), Some(&maps), &c, &mut w).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("uid 33 is not mapped"), "{text}");
        assert!(
            text.contains("/etc/subuid grants alice no subordinate uids"),
            "{text}"
        );
        let err = check_identity(&ident(0, 33, &[], false), Some(&maps), &c, &mut w).unwrap_err();
        assert!(matches!(
            err,
            OciError::Unmapped {
                what: "gid",
                id: 33,
                ..
            }
        ));
    }

    #[test]
    fn supplementary_groups_are_filtered_by_mapping() {
        let c = caller(1000, Some((100000, 65536)));
        let auto = id_mappings(UsernsMode::Auto, &c).unwrap().unwrap();
        let mut w = vec![];
        let kept = check_identity(&ident(0, 0, &[44, 70000], false), Some(&auto), &c, &mut w);
        assert_eq!(kept.unwrap(), [44]);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("70000"), "{w:?}");

        let keep = id_mappings(UsernsMode::KeepId, &c).unwrap().unwrap();
        let mut w = vec![];
        let kept = check_identity(
            &ident(1000, 1000, &[44, 1000], true),
            Some(&keep),
            &c,
            &mut w,
        );
        assert_eq!(
            kept.unwrap(),
            [1000],
            "only identity-mapped groups may be named"
        );
        assert!(w.is_empty());

        let kept = check_identity(&ident(0, 0, &[5, 6], false), None, &c, &mut w).unwrap();
        assert_eq!(kept, [5, 6]);
    }
}
