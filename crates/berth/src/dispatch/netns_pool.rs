//! Network namespaces made ahead of time by the holder of a user's shared user namespace.
//!
//! A docker-profile container gets a network namespace of its own, and making one (the
//! kernel registers a loopback device, sysctl tables, per-protocol state) was a tenth of a
//! rootless start here. The holder of the namespace a user's rootless containers share (see
//! `shared_userns`) already lives between starts, in the user namespace that owns those
//! network namespaces; so, from the first start that asks on, it keeps [`READY`] of them made,
//! loopback up, and hands one to each start that asks, over a Unix socket beside its lock file
//! (`KEY.net`). A start that finds none ready, or no holder answering, makes its own as
//! before: the pool takes work off the start's path and adds no wait to it.
//!
//! A namespace handed out is the container's alone, as one it made itself would be: the
//! holder keeps no descriptor of it.

use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

/// How many namespaces the holder keeps made. Sequential starts take one at a time; many at
/// once drain any pool, and the rest make their own.
const READY: usize = 2;

/// The longest a start waits for the holder's answer before it makes its own namespace.
const ANSWER_WITHIN: Duration = Duration::from_millis(100);

type Pool = Arc<(Mutex<Vec<OwnedFd>>, Condvar)>;

/// In the holder: listens on `socket`, in a thread of its own, for as long as this process
/// lives. The pool is filled from the first request on (by another thread): a user whose
/// containers all share the host's network (the hpc profile) never has namespaces made.
pub fn serve(socket: &Path) -> Result<()> {
    // A holder that was killed left its socket behind; nothing listens on it any more.
    let _ = fs::remove_file(socket);
    let listener = UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    std::thread::Builder::new()
        .name("netns-server".into())
        .spawn(move || answer(&listener, &Pool::default()))
        .context("cannot start a thread")?;
    Ok(())
}

/// Makes namespaces while the pool has room. A failure (the kernel's limit on network
/// namespaces, say) ends the making: starts then make their own, and meet the error there.
fn make(pool: &Pool) {
    // Making one competes for the CPU with the very start that took the last one, and with
    // the next start: it takes the CPU time they leave.
    let _ = berth_runtime::run_at_lowest_priority();
    let (ready, room) = &**pool;
    loop {
        {
            let mut ready = ready.lock().unwrap_or_else(|e| e.into_inner());
            while ready.len() >= READY {
                ready = room.wait(ready).unwrap_or_else(|e| e.into_inner());
            }
        }
        match berth_runtime::new_network_namespace() {
            Ok(fd) => ready.lock().unwrap_or_else(|e| e.into_inner()).push(fd),
            Err(_) => return,
        }
    }
}

/// Gives each connection one namespace, or a byte without one when none is ready.
fn answer(listener: &UnixListener, pool: &Pool) {
    let (ready, room) = &**pool;
    let mut making = false;
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        if !making {
            let maker = pool.clone();
            making = std::thread::Builder::new()
                .name("netns-maker".into())
                .spawn(move || make(&maker))
                .is_ok();
        }
        // Never waits for the lock: its other holder is the maker, which runs at the lowest
        // priority and may be kept off the CPU for a while as it holds it. Busy: none ready.
        let taken = match ready.try_lock() {
            Ok(mut ready) => ready.pop(),
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner().pop(),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        room.notify_one();
        let _ = match &taken {
            Some(fd) => berth_runtime::handoff::send_fds(&conn, &[fd.as_fd()]),
            None => conn.write_all(b"n"),
        };
    }
}

/// At a start: takes a namespace from the holder listening on `socket`, if it has one ready.
pub fn take(socket: &Path) -> Option<OwnedFd> {
    let conn = UnixStream::connect(socket).ok()?;
    conn.set_read_timeout(Some(ANSWER_WITHIN)).ok()?;
    berth_runtime::handoff::recv_fds(&conn)
        .ok()?
        .into_iter()
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn netns_of(fd: &OwnedFd) -> String {
        use std::os::fd::AsRawFd;
        let link = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        link.to_string_lossy().into_owned()
    }

    /// The pool hands out a new network namespace per request, each its own, with loopback up;
    /// without a holder listening a start just gets none.
    #[test]
    fn the_holder_hands_out_network_namespaces_made_ahead() {
        // Making network namespaces takes CAP_SYS_ADMIN in this user namespace: root in CI.
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("user.net");
        assert!(take(&socket).is_none(), "no holder, no namespace");
        serve(&socket).unwrap();
        let own = fs::read_link("/proc/self/ns/net").unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            let fd = loop {
                if let Some(fd) = take(&socket) {
                    break fd;
                }
                assert!(std::time::Instant::now() < deadline, "none made in 5 s");
                std::thread::sleep(Duration::from_millis(5));
            };
            let ns = netns_of(&fd);
            assert!(ns.starts_with("net:["), "{ns}");
            assert_ne!(ns, own.to_string_lossy());
            assert!(!seen.contains(&ns), "{ns} handed out twice");
            seen.push(ns);
            // Loopback is up in it (127.0.0.1 is reachable only then): tried from a thread of
            // its own, which joins it, so that this one stays where it is.
            let reached = std::thread::spawn(move || {
                use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
                move_into_link_name_space(fd.as_fd(), Some(LinkNameSpaceType::Network)).unwrap();
                let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
                udp.connect("127.0.0.1:9")
            })
            .join()
            .unwrap();
            assert!(
                reached.is_ok(),
                "127.0.0.1 in {}: {reached:?}",
                seen.last().unwrap()
            );
        }
    }
}
