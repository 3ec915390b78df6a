//! Finding the cgroup hierarchies and the caller's place in them.
//!
//! Two kernel files say everything we need: `/proc/self/mountinfo` says where each hierarchy is
//! mounted (and whether it is v1 `cgroup` or v2 `cgroup2`), `/proc/self/cgroup` says which
//! cgroup of each hierarchy the caller is in. Both are parsed by pure functions so the formats
//! of every kind of machine can be tested from sample text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::CgroupError;
use crate::fsutil;

/// The key under which [`parse_proc_cgroup`] records the unified (v2) hierarchy's path.
pub const UNIFIED: &str = "";

/// How cgroups are mounted on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Only the unified hierarchy (cgroup v2), mounted at `mount`.
    V2 {
        /// The cgroup2 mount point, normally `/sys/fs/cgroup`.
        mount: PathBuf,
    },
    /// Only v1 hierarchies.
    V1 {
        /// Controller name (`memory`, `cpu`, `name=systemd`, ...) → mount point of its hierarchy.
        /// Co-mounted controllers (`cpu,cpuacct`) map to the same mount point.
        controllers: BTreeMap<String, PathBuf>,
    },
    /// v1 hierarchies plus a cgroup2 mount that holds the controllers v1 does not.
    Hybrid {
        /// Controller → mount point of its v1 hierarchy, as in [`Layout::V1`].
        v1: BTreeMap<String, PathBuf>,
        /// The cgroup2 mount point, normally `/sys/fs/cgroup/unified`.
        v2: PathBuf,
    },
}

impl Layout {
    /// The v1 controller map, empty for pure v2.
    pub fn v1_controllers(&self) -> Option<&BTreeMap<String, PathBuf>> {
        match self {
            Layout::V2 { .. } => None,
            Layout::V1 { controllers } => Some(controllers),
            Layout::Hybrid { v1, .. } => Some(v1),
        }
    }

    /// A short name for messages and `berth info`: `v2`, `v1` or `hybrid`.
    pub fn kind(&self) -> &'static str {
        match self {
            Layout::V2 { .. } => "v2",
            Layout::V1 { .. } => "v1",
            Layout::Hybrid { .. } => "hybrid",
        }
    }
}

/// One cgroup mount found in mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The cgroup of the hierarchy that appears at the mount point (`/` unless a sub-tree was
    /// bind-mounted).
    pub root: String,
    /// True for `cgroup2`.
    pub unified: bool,
    /// For v1: the controllers of the hierarchy, with `name=...` for named ones. Empty for v2.
    pub controllers: Vec<String>,
}

/// Super-block options of a v1 cgroup mount that are options, not controller names.
const V1_MOUNT_OPTIONS: &[&str] = &[
    "rw",
    "ro",
    "noprefix",
    "xattr",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
    "none",
];

/// Decodes the octal escapes (`\040` for a space) that mountinfo uses in paths.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the cgroup and cgroup2 lines of a mountinfo text; other lines are skipped.
///
/// A line is `id parent major:minor root mount-point options [optional...] - fstype source
/// super-options`; the number of optional fields varies, so everything after the separator
/// ` - ` is located by the separator rather than by position.
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if sep < 6 || fields.len() < sep + 3 {
            continue;
        }
        let fstype = fields[sep + 1];
        let unified = match fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if unified {
            Vec::new()
        } else {
            fields[sep + 3]
                .split(',')
                .filter(|o| !V1_MOUNT_OPTIONS.contains(o))
                .filter(|o| o.starts_with("name=") || !o.contains('='))
                .map(str::to_string)
                .collect()
        };
        mounts.push(CgroupMount {
            mount_point: PathBuf::from(unescape(fields[4])),
            root: unescape(fields[3]),
            unified,
            controllers,
        });
    }
    mounts
}

/// Builds the [`Layout`] from parsed mounts. The first mount of a hierarchy wins: later ones are
/// bind mounts of the same thing (often inside container roots).
pub fn layout_from_mounts(mounts: &[CgroupMount]) -> Option<Layout> {
    let mut v1: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut v2: Option<PathBuf> = None;
    for m in mounts {
        if m.unified {
            v2.get_or_insert_with(|| m.mount_point.clone());
        } else {
            for c in &m.controllers {
                v1.entry(c.clone()).or_insert_with(|| m.mount_point.clone());
            }
        }
    }
    match (v1.is_empty(), v2) {
        (true, Some(mount)) => Some(Layout::V2 { mount }),
        (false, None) => Some(Layout::V1 { controllers: v1 }),
        (false, Some(v2)) => Some(Layout::Hybrid { v1, v2 }),
        (true, None) => None,
    }
}

/// Parses `/proc/<pid>/cgroup`: v1 lines `N:ctrl1,ctrl2:/path` give one entry per controller
/// (named hierarchies as `name=...`), the v2 line `0::/path` gives the entry [`UNIFIED`].
pub fn parse_proc_cgroup(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("line {line:?} does not have three fields"));
        };
        if id.parse::<u32>().is_err() {
            return Err(format!(
                "line {line:?} does not start with a hierarchy number"
            ));
        }
        // A cgroup removed while we sit in it is shown with this suffix; its path still tells
        // us where we are.
        let path = path.strip_suffix(" (deleted)").unwrap_or(path).to_string();
        if ctrls.is_empty() {
            out.insert(UNIFIED.to_string(), path);
        } else {
            for c in ctrls.split(',') {
                out.insert(c.to_string(), path.clone());
            }
        }
    }
    Ok(out)
}

/// The caller's own cgroup in every hierarchy, from `/proc/self/cgroup`; see
/// [`parse_proc_cgroup`] for the keys.
pub fn own_cgroup_paths() -> Result<BTreeMap<String, String>, CgroupError> {
    let path = Path::new("/proc/self/cgroup");
    let text = fsutil::read(path)?;
    parse_proc_cgroup(&text).map_err(|reason| CgroupError::Parse {
        path: path.to_path_buf(),
        reason,
    })
}

/// Finds how cgroups are mounted, from `/proc/self/mountinfo`.
///
/// Hierarchies the caller is not a member of (absent from `/proc/self/cgroup`) are dropped: a
/// mount visible in our mount namespace but foreign to our cgroup namespace is no place to put
/// a child.
pub fn detect() -> Result<Layout, CgroupError> {
    let path = Path::new("/proc/self/mountinfo");
    let text = fsutil::read(path)?;
    let own = own_cgroup_paths()?;
    let mounts: Vec<CgroupMount> = parse_mountinfo(&text)
        .into_iter()
        .filter(|m| {
            if m.unified {
                own.contains_key(UNIFIED)
            } else {
                m.controllers.iter().any(|c| own.contains_key(c))
            }
        })
        .collect();
    layout_from_mounts(&mounts).ok_or_else(|| CgroupError::NoCgroupFs {
        path: path.to_path_buf(),
    })
}

/// The root of each cgroup mount point, for [`own_dir`]; `/` is assumed where unknown.
pub(crate) fn mount_roots() -> BTreeMap<PathBuf, String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut roots = BTreeMap::new();
    for m in parse_mountinfo(&text) {
        roots.entry(m.mount_point).or_insert(m.root);
    }
    roots
}

/// Where the caller's own cgroup of a hierarchy lies on disk: the mount point joined with the
/// path from `/proc/self/cgroup`, minus the mount's root when only a sub-tree is mounted.
pub(crate) fn own_dir(mount: &Path, mount_root: &str, own: &str) -> PathBuf {
    // Only strip whole components: root `/a` must not turn `/ab/c` into `b/c`.
    let rel = match own.strip_prefix(mount_root.trim_end_matches('/')) {
        Some(rest) if mount_root != "/" && (rest.is_empty() || rest.starts_with('/')) => rest,
        _ => own,
    };
    fsutil::join_cgroup(mount, rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This development machine: v1 for most controllers, an empty cgroup2 at `unified`.
    const HYBRID_MOUNTINFO: &str = "\
22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const HYBRID_PROC_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/a40e17886ce7d8a35861344dfca697b8
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    /// A systemd machine with pure v2 and a Slurm step, options and optional fields included.
    const V2_MOUNTINFO: &str = "\
24 29 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    const V2_PROC_CGROUP: &str = "0::/system.slice/slurmstepd.scope/job_42/step_0/user/task_0\n";

    /// A classic v1 systemd machine with co-mounted controllers and clone_children.
    const V1_COMOUNT_MOUNTINFO: &str = "\
25 24 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpuset,clone_children
30 25 0:27 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
";

    #[test]
    fn hybrid_sample_of_this_machine() {
        let mounts = parse_mountinfo(HYBRID_MOUNTINFO);
        assert_eq!(mounts.len(), 10);
        let layout = layout_from_mounts(&mounts).unwrap();
        let Layout::Hybrid { v1, v2 } = &layout else {
            panic!("expected hybrid, got {layout:?}");
        };
        assert_eq!(v2, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(v1["memory"], Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(v1["cpu"], Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(v1["cpuacct"], Path::new("/sys/fs/cgroup/cpuacct"));
        assert_eq!(v1["name=systemd"], Path::new("/sys/fs/cgroup/systemd"));
        assert!(!v1.contains_key("rw"));
        assert_eq!(layout.kind(), "hybrid");

        let own = parse_proc_cgroup(HYBRID_PROC_CGROUP).unwrap();
        assert_eq!(
            own["memory"],
            "/process_api/a40e17886ce7d8a35861344dfca697b8"
        );
        assert_eq!(own["cpu"], "/");
        assert_eq!(own["name=systemd"], "/");
        assert_eq!(own[UNIFIED], "/");
    }

    #[test]
    fn pure_v2_sample() {
        let layout = layout_from_mounts(&parse_mountinfo(V2_MOUNTINFO)).unwrap();
        assert_eq!(
            layout,
            Layout::V2 {
                mount: PathBuf::from("/sys/fs/cgroup")
            }
        );
        assert!(layout.v1_controllers().is_none());
        let own = parse_proc_cgroup(V2_PROC_CGROUP).unwrap();
        assert_eq!(own.len(), 1);
        assert_eq!(
            own_dir(Path::new("/sys/fs/cgroup"), "/", &own[UNIFIED]),
            Path::new("/sys/fs/cgroup/system.slice/slurmstepd.scope/job_42/step_0/user/task_0")
        );
    }

    #[test]
    fn v1_comounted_controllers_share_a_mount() {
        let mounts = parse_mountinfo(V1_COMOUNT_MOUNTINFO);
        assert_eq!(mounts[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(mounts[1].controllers, vec!["cpuset"]);
        assert_eq!(mounts[2].controllers, vec!["name=systemd"]);
        let Some(Layout::V1 { controllers }) = layout_from_mounts(&mounts) else {
            panic!("expected v1");
        };
        assert_eq!(controllers["cpu"], controllers["cpuacct"]);
        assert_eq!(controllers["cpu"], Path::new("/sys/fs/cgroup/cpu,cpuacct"));
    }

    #[test]
    fn no_cgroup_mounts_is_none() {
        let text = "22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n";
        assert!(layout_from_mounts(&parse_mountinfo(text)).is_none());
    }

    #[test]
    fn escaped_mount_points_and_subtree_roots() {
        let text = "50 1 0:40 /docker/abc /my\\040cgroups rw - cgroup2 cgroup2 rw\n";
        let m = &parse_mountinfo(text)[0];
        assert_eq!(m.mount_point, Path::new("/my cgroups"));
        assert_eq!(m.root, "/docker/abc");
        assert_eq!(
            own_dir(&m.mount_point, &m.root, "/docker/abc/sub"),
            Path::new("/my cgroups/sub")
        );
        assert_eq!(
            own_dir(&m.mount_point, &m.root, "/docker/abc"),
            Path::new("/my cgroups")
        );
        assert_eq!(
            own_dir(&m.mount_point, &m.root, "/docker/abcd"),
            Path::new("/my cgroups/docker/abcd")
        );
    }

    #[test]
    fn proc_cgroup_edge_cases() {
        let own = parse_proc_cgroup("0::/a:b/c (deleted)\n").unwrap();
        assert_eq!(own[UNIFIED], "/a:b/c");
        let own = parse_proc_cgroup("3:cpu,cpuacct:/slurm/uid_1/job_7\n").unwrap();
        assert_eq!(own["cpu"], "/slurm/uid_1/job_7");
        assert_eq!(own["cpuacct"], "/slurm/uid_1/job_7");
        assert!(parse_proc_cgroup("garbage\n").is_err());
        assert!(parse_proc_cgroup("x:cpu:/\n").is_err());
    }

    #[test]
    fn detect_on_this_machine_finds_something() {
        // Every Linux machine this runs on has some cgroup mount; the exact layout varies.
        if Path::new("/proc/self/mountinfo").exists() {
            match detect() {
                Ok(layout) => eprintln!("layout: {layout:?}"),
                Err(e) => eprintln!("no cgroups here: {e}"),
            }
        }
    }
}
