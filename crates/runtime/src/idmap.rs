//! Writing a new user namespace's uid and gid maps from the monitor.
//!
//! A map that only maps the caller's own id, or any map written by root, goes straight into
//! `/proc/PID/{uid,gid}_map`. Ranges from `/etc/subuid`/`/etc/subgid` need the setuid helpers
//! `newuidmap`/`newgidmap` from the uidmap package; Berth itself is never setuid.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use oci_spec::runtime::{LinuxIdMapping, Spec};

use crate::error::RuntimeError;

/// One line of an id map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdRange {
    pub(crate) container: u32,
    pub(crate) host: u32,
    pub(crate) size: u32,
}

/// The uid and gid maps of a container's user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdMaps {
    pub(crate) uids: Vec<IdRange>,
    pub(crate) gids: Vec<IdRange>,
}

/// The ranges of an OCI id mapping list.
pub(crate) fn ranges(maps: &[LinuxIdMapping]) -> Vec<IdRange> {
    maps.iter()
        .map(|m| IdRange {
            container: m.container_id(),
            host: m.host_id(),
            size: m.size(),
        })
        .collect()
}

impl IdMaps {
    /// The spec's maps; an empty map becomes "container root is the caller", Docker's rootless
    /// default, so a spec without mappings still runs.
    pub(crate) fn from_spec(spec: &Spec) -> IdMaps {
        let linux = spec.linux().as_ref();
        let mut uids = ranges(
            linux
                .and_then(|l| l.uid_mappings().as_deref())
                .unwrap_or_default(),
        );
        let mut gids = ranges(
            linux
                .and_then(|l| l.gid_mappings().as_deref())
                .unwrap_or_default(),
        );
        if uids.is_empty() {
            uids.push(IdRange {
                container: 0,
                host: rustix::process::geteuid().as_raw(),
                size: 1,
            });
        }
        if gids.is_empty() {
            gids.push(IdRange {
                container: 0,
                host: rustix::process::getegid().as_raw(),
                size: 1,
            });
        }
        IdMaps { uids, gids }
    }

    /// Whether the caller's own uid and gid are left out of the maps while container root is
    /// in them: the init then has no id of its own in its namespace (files it creates would
    /// fail with EOVERFLOW) and must become the container's root first, as runc's init does.
    pub(crate) fn needs_root_switch(&self) -> (bool, bool) {
        let unmapped = |ranges: &[IdRange], host: u32| {
            !ranges
                .iter()
                .any(|r| host >= r.host && u64::from(host) < u64::from(r.host) + u64::from(r.size))
                && contains(ranges, 0)
        };
        (
            unmapped(&self.uids, rustix::process::geteuid().as_raw()),
            unmapped(&self.gids, rustix::process::getegid().as_raw()),
        )
    }

    /// Whether container gid `gid` has a host gid.
    pub(crate) fn maps_gid(&self, gid: u32) -> bool {
        contains(&self.gids, gid)
    }
}

fn contains(ranges: &[IdRange], id: u32) -> bool {
    ranges
        .iter()
        .any(|r| id >= r.container && u64::from(id) < u64::from(r.container) + u64::from(r.size))
}

fn proc_file_text(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.container, r.host, r.size))
        .collect()
}

fn write_proc(path: PathBuf, text: &str) -> Result<(), RuntimeError> {
    fs::write(&path, text).map_err(|source| RuntimeError::Io {
        what: "write",
        path,
        source,
    })
}

/// True when an unprivileged caller may write `ranges` itself: exactly its own id, once.
fn is_own_id(ranges: &[IdRange], own: u32) -> bool {
    matches!(ranges, [r] if r.host == own && r.size == 1)
}

/// Writes the maps of the user namespace of `pid`, which must still be waiting for them.
/// Where both need a helper, `newuidmap` and `newgidmap` run at the same time: each is a
/// setuid program's whole start-up (a millisecond or more here), and neither waits for the
/// other.
pub(crate) fn write(pid: i32, maps: &IdMaps) -> Result<(), RuntimeError> {
    let root = rustix::process::geteuid().is_root();
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();

    let mut helpers = Vec::new();
    if root || is_own_id(&maps.uids, uid) {
        write_proc(proc_dir.join("uid_map"), &proc_file_text(&maps.uids))?;
    } else {
        helpers.push(start_helper("newuidmap", pid, &maps.uids));
    }
    let gids = if root {
        write_proc(proc_dir.join("gid_map"), &proc_file_text(&maps.gids))
    } else if is_own_id(&maps.gids, gid) {
        // An unprivileged process may only write a gid map once setgroups is denied, so the
        // container cannot drop a group the host uses to deny it access.
        write_proc(proc_dir.join("setgroups"), "deny")
            .and_then(|()| write_proc(proc_dir.join("gid_map"), &proc_file_text(&maps.gids)))
    } else {
        helpers.push(start_helper("newgidmap", pid, &maps.gids));
        Ok(())
    };
    // Every helper started is waited for, whatever failed.
    let done: Vec<Result<(), RuntimeError>> = helpers
        .into_iter()
        .map(|h| h.and_then(|h| h.finish(pid)))
        .collect();
    gids?;
    done.into_iter().collect()
}

fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/bin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|p| Path::new(p).is_file())
}

/// A running `newuidmap` or `newgidmap`.
struct Helper {
    tool: &'static str,
    child: std::process::Child,
}

fn start_helper(tool: &'static str, pid: i32, ranges: &[IdRange]) -> Result<Helper, RuntimeError> {
    let exe = find_tool(tool).ok_or(RuntimeError::IdMapToolMissing { tool })?;
    let mut cmd = Command::new(exe);
    cmd.arg(pid.to_string());
    for r in ranges {
        cmd.args([
            r.container.to_string(),
            r.host.to_string(),
            r.size.to_string(),
        ]);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RuntimeError::IdMapTool {
            tool,
            pid,
            message: e.to_string(),
        })?;
    Ok(Helper { tool, child })
}

impl Helper {
    fn finish(self, pid: i32) -> Result<(), RuntimeError> {
        let tool = self.tool;
        let out = self
            .child
            .wait_with_output()
            .map_err(|e| RuntimeError::IdMapTool {
                tool,
                pid,
                message: e.to_string(),
            })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let message = match stderr.trim() {
                "" => out.status.to_string(),
                s => s.lines().last().unwrap_or(s).to_owned(),
            };
            return Err(RuntimeError::IdMapTool { tool, pid, message });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_id_detection() {
        let own = [IdRange {
            container: 0,
            host: 1000,
            size: 1,
        }];
        assert!(is_own_id(&own, 1000));
        assert!(!is_own_id(&own, 1001));
        let range = [
            own[0],
            IdRange {
                container: 1,
                host: 100000,
                size: 65536,
            },
        ];
        assert!(!is_own_id(&range, 1000));
    }

    #[test]
    fn gid_lookup_and_text() {
        let maps = IdMaps {
            uids: vec![],
            gids: vec![
                IdRange {
                    container: 0,
                    host: 1000,
                    size: 1,
                },
                IdRange {
                    container: 1,
                    host: 100000,
                    size: 10,
                },
            ],
        };
        assert!(maps.maps_gid(5));
        assert!(!maps.maps_gid(11));
        assert_eq!(proc_file_text(&maps.gids), "0 1000 1\n1 100000 10\n");
    }
}
