//! Who the process runs as.
//!
//! In the docker profile, `-u` or the image's `USER` is resolved against the image's own
//! `/etc/passwd` and `/etc/group`, exactly as runc's `GetExecUser` does it for Docker: `name`,
//! `uid`, `name:group`, `uid:gid` and the mixed forms; a name must exist, a number need not;
//! supplementary groups come from group membership only when no group was named; home is the
//! passwd entry's, else `/`. With the caller's identity (the hpc profile, `--userns=keep-id`),
//! the process is the caller: uid, gid and groups, with an `/etc/passwd` line added when the
//! image does not know the uid, so that `whoami`, `ssh` and Python's `getpass` work.

use oci_spec::image::Config;

use crate::{GeneratedFile, ImageFiles, OciError, Profile, RunOptions, UsernsMode};

/// The largest id runc accepts; the kernel reserves the top half of the range.
const MAX_ID: u64 = 2_147_483_647;

/// The resolved identity of the container's process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups to set.
    pub additional_gids: Vec<u32>,
    pub home: String,
    /// The caller's own identity: its groups are inherited, not set.
    pub keep_groups: bool,
    /// Account files to place over the image's.
    pub files: Vec<GeneratedFile>,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// Lines of an account file worth reading: not empty, not comments, not NIS `+`/`-` entries.
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', '+', '-']))
        .map(|l| l.split(':').collect())
}

fn passwd(text: Option<&str>) -> Vec<PasswdEntry<'_>> {
    records(text.unwrap_or(""))
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f.first()?,
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).copied().unwrap_or(""),
            })
        })
        .collect()
}

fn groups(text: Option<&str>) -> Vec<GroupEntry<'_>> {
    records(text.unwrap_or(""))
        .filter_map(|f| {
            Some(GroupEntry {
                name: f.first()?,
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// A decimal id, or `None` for a name. Out-of-range numbers are an error naming `spec`.
fn numeric(text: &str, spec: &str) -> Result<Option<u32>, OciError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match text.parse::<u64>() {
        Ok(n) if n <= MAX_ID => Ok(Some(n as u32)),
        _ => Err(OciError::IdOutOfRange(spec.to_string())),
    }
}

/// Resolves `-u`/`USER` (`spec`, empty for the default root) against the image's files.
pub(crate) fn resolve(spec: &str, files: &ImageFiles) -> Result<Identity, OciError> {
    let (user_arg, group_arg) = spec.split_once(':').unwrap_or((spec, ""));
    let users = passwd(files.passwd.as_deref());
    let uid_arg = numeric(user_arg, spec)?;

    let entry = users.iter().find(|u| match (user_arg, uid_arg) {
        ("", _) => u.uid == 0,
        (_, Some(uid)) => u.uid == uid,
        (name, None) => u.name == name,
    });
    let (mut uid, mut gid, mut home) = (0, 0, "/".to_string());
    match (entry, uid_arg) {
        (Some(e), _) => {
            (uid, gid) = (e.uid, e.gid);
            if !e.home.is_empty() {
                home = e.home.to_string();
            }
        }
        (None, Some(n)) => uid = n,
        (None, None) if user_arg.is_empty() => {}
        (None, None) => return Err(OciError::UnknownUser(user_arg.to_string())),
    }

    let all_groups = groups(files.group.as_deref());
    let mut additional_gids = Vec::new();
    if !group_arg.is_empty() {
        let gid_arg = numeric(group_arg, spec)?;
        let found = all_groups.iter().find(|g| match gid_arg {
            Some(n) => g.gid == n,
            None => g.name == group_arg,
        });
        gid = match (found, gid_arg) {
            (Some(g), _) => g.gid,
            (None, Some(n)) => n,
            (None, None) => return Err(OciError::UnknownGroup(group_arg.to_string())),
        };
    } else if let Some(e) = entry {
        // Supplementary groups only in the implicit form: naming a group means "this group".
        additional_gids = all_groups
            .iter()
            .filter(|g| g.members.contains(&e.name))
            .map(|g| g.gid)
            .collect();
    }
    // As runc does for Docker: with no group memberships the primary group is the one
    // supplementary group (`id` shows groups=0(root)), never an empty list.
    if additional_gids.is_empty() {
        additional_gids.push(gid);
    }
    Ok(Identity {
        uid,
        gid,
        additional_gids,
        home,
        keep_groups: false,
        files: Vec::new(),
    })
}

/// Who a `-u` value names, as [`resolve_user`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (at least the primary group, as runc sets them).
    pub additional_gids: Vec<u32>,
    /// Home directory from the passwd entry, else `/`.
    pub home: String,
}

/// `--group-add`: each group (a name from the image's `/etc/group`, or a number, as Docker
/// takes them) joins the process's supplementary groups, after those it has.
pub(crate) fn add_groups(
    ident: &mut Identity,
    names: &[String],
    files: &ImageFiles,
) -> Result<(), OciError> {
    if let (Some(first), true) = (names.first(), ident.keep_groups) {
        return Err(OciError::GroupAddWithOwnGroups(first.clone()));
    }
    let all = groups(files.group.as_deref());
    for name in names {
        let gid = match numeric(name, name)? {
            Some(gid) => gid,
            None => all
                .iter()
                .find(|g| g.name == name.as_str())
                .map(|g| g.gid)
                .ok_or_else(|| OciError::UnknownGroup(name.clone()))?,
        };
        if !ident.additional_gids.contains(&gid) {
            ident.additional_gids.push(gid);
        }
    }
    Ok(())
}

/// Resolves a `-u` value (`name`, `uid`, `name:group`, `uid:gid` and the mixed forms) against
/// account files with the rules `run` applies to the image's `USER`; `berth exec` passes the
/// running container's own `/etc/passwd` and `/etc/group`.
pub fn resolve_user(spec: &str, files: &ImageFiles) -> Result<ResolvedUser, OciError> {
    let ident = resolve(spec, files)?;
    Ok(ResolvedUser {
        uid: ident.uid,
        gid: ident.gid,
        additional_gids: ident.additional_gids,
        home: ident.home,
    })
}

/// The identity for this run: `-u` when given, else the caller's own under `--userns=keep-id`
/// (the hpc profile's default), else the image's `USER`.
pub(crate) fn identity(
    image: &Config,
    opts: &RunOptions,
    userns: UsernsMode,
    files: &ImageFiles,
) -> Result<Identity, OciError> {
    if let Some(spec) = opts.user.as_deref().filter(|u| !u.is_empty()) {
        return resolve(spec, files);
    }
    if userns != UsernsMode::KeepId {
        return resolve(image.user().as_deref().unwrap_or(""), files);
    }
    let c = &opts.caller;
    let users = passwd(files.passwd.as_deref());
    let known = users.iter().find(|u| u.uid == c.uid);
    // The hpc profile binds the caller's home, so that is home; in the docker profile the
    // image's own entry for the uid, if any, describes a home that exists in the image.
    let home = match (opts.profile, known) {
        (Profile::Docker, Some(e)) if !e.home.is_empty() => e.home.to_string(),
        _ if !c.home.is_empty() => c.home.clone(),
        _ => "/".to_string(),
    };
    let mut out = Vec::new();
    if known.is_none() {
        let name = if c.user_name.is_empty() {
            c.uid.to_string()
        } else {
            c.user_name.clone()
        };
        let mut contents = files
            .passwd
            .clone()
            .unwrap_or_else(|| "root:x:0:0:root:/root:/bin/sh\n".to_string());
        if !contents.is_empty() && !contents.ends_with('\n') {
            contents.push('\n');
        }
        contents.push_str(&format!(
            "{name}:x:{}:{}:{name}:{home}:/bin/sh\n",
            c.uid, c.gid
        ));
        out.push(GeneratedFile {
            container_path: "/etc/passwd".into(),
            contents,
        });
    }
    let mut additional_gids: Vec<u32> = Vec::new();
    for g in &c.groups {
        if *g != c.gid && !additional_gids.contains(g) {
            additional_gids.push(*g);
        }
    }
    Ok(Identity {
        uid: c.uid,
        gid: c.gid,
        additional_gids,
        home,
        keep_groups: true,
        files: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Caller;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh
broken:x:notanumber:1::/:/bin/sh
bob:x:1001:100::/home/bob:/bin/sh
";
    const GROUP: &str = "\
root:x:0:
users:x:100:alice
alice:x:1000:
video:x:44:alice,bob
staff:x:50:
";

    fn files() -> ImageFiles {
        ImageFiles {
            passwd: Some(PASSWD.into()),
            group: Some(GROUP.into()),
        }
    }

    #[test]
    fn user_forms_resolve_as_runc_does() {
        // (spec, uid, gid, additional gids, home)
        let cases: &[(&str, u32, u32, &[u32], &str)] = &[
            ("", 0, 0, &[0], "/root"),
            ("root", 0, 0, &[0], "/root"),
            ("0", 0, 0, &[0], "/root"),
            ("alice", 1000, 1000, &[100, 44], "/home/alice"),
            ("1000", 1000, 1000, &[100, 44], "/home/alice"),
            ("alice:staff", 1000, 50, &[50], "/home/alice"),
            ("alice:50", 1000, 50, &[50], "/home/alice"),
            ("1000:44", 1000, 44, &[44], "/home/alice"),
            ("bob", 1001, 100, &[44], "/home/bob"),
            ("4242", 4242, 0, &[0], "/"),
            ("4242:4343", 4242, 4343, &[4343], "/"),
            ("4242:video", 4242, 44, &[44], "/"),
            (":staff", 0, 50, &[50], "/root"),
        ];
        for (spec, uid, gid, sgids, home) in cases {
            let id = resolve(spec, &files()).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(
                (
                    id.uid,
                    id.gid,
                    id.additional_gids.as_slice(),
                    id.home.as_str()
                ),
                (*uid, *gid, *sgids, *home),
                "-u {spec:?}"
            );
            assert!(!id.keep_groups);
        }
    }

    #[test]
    fn unknown_names_and_bad_numbers_are_errors() {
        let cases: &[(&str, OciError)] = &[
            ("nobody", OciError::UnknownUser("nobody".into())),
            ("alice:nogroup", OciError::UnknownGroup("nogroup".into())),
            ("-1", OciError::UnknownUser("-1".into())),
            ("2147483648", OciError::IdOutOfRange("2147483648".into())),
            (
                "0:99999999999",
                OciError::IdOutOfRange("0:99999999999".into()),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(resolve(spec, &files()).unwrap_err(), *want, "-u {spec:?}");
        }
        assert_eq!(
            OciError::UnknownUser("nobody".into()).to_string(),
            "unable to find user nobody: no matching entries in passwd file"
        );
    }

    #[test]
    fn without_account_files_only_numbers_resolve() {
        let none = ImageFiles::default();
        let id = resolve("", &none).unwrap();
        assert_eq!((id.uid, id.gid, id.home.as_str()), (0, 0, "/"));
        assert_eq!(resolve("123:456", &none).unwrap().gid, 456);
        assert_eq!(
            resolve("alice", &none).unwrap_err(),
            OciError::UnknownUser("alice".into())
        );
    }

    fn caller() -> Caller {
        Caller {
            uid: 5000,
            gid: 5000,
            groups: vec![5000, 6001, 6002, 6001],
            user_name: "carol".into(),
            home: "/home/carol".into(),
            ..Caller::default()
        }
    }

    #[test]
    fn keep_id_is_the_caller_with_a_passwd_line() {
        let opts = RunOptions {
            profile: Profile::Hpc,
            caller: caller(),
            ..RunOptions::default()
        };
        let image = oci_spec::image::ConfigBuilder::default()
            .user("alice")
            .build()
            .unwrap();
        let id = identity(&image, &opts, UsernsMode::KeepId, &files()).unwrap();
        assert_eq!((id.uid, id.gid), (5000, 5000));
        assert_eq!(id.additional_gids, [6001, 6002]);
        assert_eq!(id.home, "/home/carol");
        assert!(id.keep_groups);
        assert_eq!(id.files.len(), 1);
        assert_eq!(id.files[0].container_path, "/etc/passwd");
        assert!(id.files[0].contents.starts_with(PASSWD));
        assert!(id.files[0]
            .contents
            .ends_with("carol:x:5000:5000:carol:/home/carol:/bin/sh\n"));
    }

    #[test]
    fn keep_id_known_to_the_image_adds_no_file() {
        let mut c = caller();
        c.uid = 1000;
        let opts = RunOptions {
            caller: c,
            ..RunOptions::default()
        };
        let id = identity(&Config::default(), &opts, UsernsMode::KeepId, &files()).unwrap();
        assert!(id.files.is_empty());
        assert_eq!(
            id.home, "/home/alice",
            "docker profile uses the image's home"
        );
    }

    #[test]
    fn flag_beats_profile_and_image_user_beats_default() {
        let image = oci_spec::image::ConfigBuilder::default()
            .user("bob")
            .build()
            .unwrap();
        let mut opts = RunOptions {
            profile: Profile::Hpc,
            caller: caller(),
            user: Some("0".into()),
            ..RunOptions::default()
        };
        let id = identity(&image, &opts, UsernsMode::KeepId, &files()).unwrap();
        assert_eq!((id.uid, id.keep_groups), (0, false));
        opts.user = None;
        let id = identity(&image, &opts, UsernsMode::Auto, &files()).unwrap();
        assert_eq!(id.uid, 1001);
    }
}
