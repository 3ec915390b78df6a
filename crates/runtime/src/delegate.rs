//! Work done as root of a user namespace that maps the caller's subordinate ids, so files get
//! the owners an image gives them (shifted into the caller's range), as the containers will
//! see them.
//!
//! An unprivileged process cannot `chown` to its subordinate ids on the host, but inside a user
//! namespace mapping them it can. The helper process (a re-executed `berth`) calls
//! [`enter_user_namespace`] while still single-threaded and reports `ready`; the caller writes
//! its maps with [`write_id_maps`] (through `newuidmap`/`newgidmap`) and answers `go`.

use std::io::{BufRead, Write};

use oci_spec::runtime::LinuxIdMapping;

use crate::error::RuntimeError;
use crate::idmap::{ranges, IdMaps};
use crate::sys::process_ns::unshare_user_namespace;

/// Child side: enters a new user namespace, says `ready` on `to_parent` and waits for `go`
/// on `from_parent`, after which this process is root of the namespace.
pub fn enter_user_namespace(
    to_parent: &mut dyn Write,
    from_parent: &mut dyn BufRead,
) -> Result<(), RuntimeError> {
    unshare_user_namespace().map_err(RuntimeError::sys("unshare(CLONE_NEWUSER)"))?;
    writeln!(to_parent, "ready")
        .and_then(|()| to_parent.flush())
        .map_err(RuntimeError::sys("writing to the parent"))?;
    let mut line = String::new();
    from_parent
        .read_line(&mut line)
        .map_err(RuntimeError::sys("reading from the parent"))?;
    if line.trim() != "go" {
        return Err(RuntimeError::sys("waiting for the id maps")(
            std::io::Error::other("the parent gave up"),
        ));
    }
    Ok(())
}

/// Moves this (single-threaded) process into the user namespace at `path`
/// (`/proc/PID/ns/user`), where its owner has every capability.
pub fn join_user_namespace(path: &std::path::Path) -> Result<(), RuntimeError> {
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| RuntimeError::Io {
        what: "open namespace",
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    use std::os::fd::AsFd;
    rustix::thread::move_into_link_name_space(
        fd.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::User),
    )
    .map_err(|e| RuntimeError::Io {
        what: "join namespace",
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// Parent side: writes the uid and gid maps of `pid`'s user namespace.
pub fn write_id_maps(
    pid: i32,
    uids: &[LinuxIdMapping],
    gids: &[LinuxIdMapping],
) -> Result<(), RuntimeError> {
    crate::idmap::write(
        pid,
        &IdMaps {
            uids: ranges(uids),
            gids: ranges(gids),
        },
    )
}
