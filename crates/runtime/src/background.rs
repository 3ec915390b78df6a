//! Work that finishes after the caller has exited.
//!
//! A `--rm` container's exit status is known the moment its init is reaped, but taking down its
//! mounts and deleting its writable layer and record take another millisecond or more on every
//! start. [`in_background`] lets the monitor hand that work to a process of its own and exit
//! with the status at once.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;

use rustix::event::{PollFd, PollFlags};

use crate::sys;

/// What the process started by [`in_background`] needs; leaked, so it outlives the caller.
struct Handoff {
    /// A pidfd of the caller: readable once all of its threads have exited.
    caller: OwnedFd,
    /// The number of `hold`'s descriptor, or -1: read before the caller has exited, when the
    /// mutex must not be touched.
    hold_fd: i32,
    /// Closed once the caller has exited, before `work` runs.
    hold: Mutex<Option<OwnedFd>>,
    work: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

/// Runs `work` in a detached process once this process has exited, and returns as soon as that
/// process is started. For a caller about to exit (a monitor whose container has ended).
///
/// The new process shares this one's memory rather than copying it (a fork of this large
/// program costs a third of a millisecond, and the copy-on-write faults and the teardown of
/// the copy more, all before the caller can exit), so it waits for this process to end before
/// it touches anything but its own descriptors. It has a session of its own (no terminal
/// signal reaches it), standard streams on `/dev/null` (a caller reading this process's output
/// through a pipe sees end of file when this process exits, not when `work` is done) and no
/// other inherited descriptor (no lock or pipe of the caller's outlives the caller), so `work`
/// must not use an object that owns a descriptor; paths are fine. It is not waited for: it is
/// reparented and reaped by init. When no process can be started, `work` runs here instead,
/// before this returns, and the error comes back.
///
/// `hold` (a container's mount namespace, say) is kept until this process has exited, then
/// closed before `work`. Whatever closing the last reference costs (the teardown of every mount
/// of a namespace) is then paid in the background, not by this process on its way out.
pub fn in_background(
    hold: Option<OwnedFd>,
    work: impl FnOnce() + Send + 'static,
) -> io::Result<()> {
    match Cleaner::start(hold) {
        Ok(cleaner) => {
            cleaner.hand_over(work);
            Ok(())
        }
        Err((e, _hold)) => {
            work();
            Err(e)
        }
    }
}

/// The process of [`in_background`], started before its work is known: a monitor starts it
/// while its container's init builds the root, when a CPU is otherwise idle, and hands it the
/// work once the container has ended. Its start then costs the container's exit nothing.
///
/// Until this process has exited the new one only waits. Without [`Cleaner::hand_over`] it
/// closes `hold` once this process has exited, and does nothing else.
pub struct Cleaner(&'static Handoff);

impl Cleaner {
    /// Starts the process. On failure, `hold` comes back with the error.
    pub fn start(hold: Option<OwnedFd>) -> Result<Cleaner, (io::Error, Option<OwnedFd>)> {
        let caller = match rustix::process::pidfd_open(
            rustix::process::getpid(),
            rustix::process::PidfdFlags::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) => return Err((e.into(), hold)),
        };
        let handoff: &'static Handoff = Box::leak(Box::new(Handoff {
            caller,
            hold_fd: hold.as_ref().map_or(-1, AsRawFd::as_raw_fd),
            hold: Mutex::new(hold),
            work: Mutex::new(None),
        }));
        match sys::shared_memory::spawn_sharing_memory(after_caller, handoff) {
            Ok(_) => Ok(Cleaner(handoff)),
            Err(e) => Err((e, take(&handoff.hold))),
        }
    }

    /// Gives the process `work`, to run once this process has exited.
    pub fn hand_over(self, work: impl FnOnce() + Send + 'static) {
        // The other process reads the slot only after this one has exited.
        *self.0.work.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(work));
    }
}

fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// The new process. Until the caller has exited it shares the caller's heap and thread-locals
/// with a running program: only plain system calls on the handoff's descriptors until then.
fn after_caller(h: &'static Handoff) -> ! {
    let mut keep = [h.caller.as_raw_fd(), h.hold_fd];
    keep.sort_unstable();
    let first = usize::from(keep[0] < 0);
    detach_self(&keep[first..]);
    // Clean-up is nobody's wait: it yields the CPU to the next containers' starts (100 at once
    // started and cleaned up sooner overall this way) and on a busy node to the job itself.
    let _ = sys::run_only_when_idle();
    let mut polled = [PollFd::new(&h.caller, PollFlags::IN)];
    while let Err(rustix::io::Errno::INTR) = rustix::event::poll(&mut polled, None) {}
    // The caller is gone: this process has the address space to itself now.
    drop(take(&h.hold));
    if let Some(work) = take(&h.work) {
        work();
    }
    sys::exit_now(0)
}

/// `keep`: descriptors above 2 not to close, sorted.
fn detach_self(keep: &[i32]) {
    let _ = rustix::process::setsid();
    let _ = sys::close_from_3_keeping(keep);
    if let Ok(null) = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
    // A monitor blocks most signals for its signalfd: this process starts with none blocked.
    let _ = sys::signal::set_mask(&sys::signal::SigSet::empty());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Forked;
    use std::io::Read;
    use std::time::{Duration, Instant};

    /// Runs `caller` in a forked process that then exits 0 (or with the code it returns);
    /// returns that exit code once the process is reaped.
    fn in_a_caller(caller: impl FnOnce() -> i32) -> i32 {
        match sys::fork().unwrap() {
            Forked::Child => sys::exit_now(caller()),
            Forked::Parent(pid) => {
                let pid = rustix::process::Pid::from_raw(pid).unwrap();
                let (_, status) =
                    rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
                        .unwrap()
                        .unwrap();
                status.exit_status().unwrap()
            }
        }
    }

    fn wait_for(path: &std::path::Path) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if path.exists() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn a_cleaner_started_early_works_only_after_its_caller_has_exited() {
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("done");
        let (mut held, hold) = std::io::pipe().unwrap();
        let d = done.clone();
        let code = in_a_caller(move || {
            let Ok(cleaner) = Cleaner::start(Some(OwnedFd::from(hold))) else {
                return 1;
            };
            let target = d.clone();
            cleaner.hand_over(move || std::fs::write(&target, b"done").unwrap());
            // The caller goes on for a while: nothing may happen meanwhile.
            std::thread::sleep(Duration::from_millis(100));
            i32::from(d.exists()) * 2
        });
        assert_eq!(
            code, 0,
            "1: no cleaner; 2: its work ran before the caller exited"
        );
        // `hold` is closed once the caller has exited, and the work runs then.
        let mut rest = Vec::new();
        held.read_to_end(&mut rest).unwrap();
        assert!(wait_for(&done));
        assert_eq!(std::fs::read(&done).unwrap(), b"done");
    }

    #[test]
    fn a_cleaner_without_work_only_lets_go_of_what_it_holds() {
        let (mut held, hold) = std::io::pipe().unwrap();
        let code = in_a_caller(move || match Cleaner::start(Some(OwnedFd::from(hold))) {
            Ok(_) => 0,
            Err(_) => 1,
        });
        assert_eq!(code, 0);
        let mut rest = Vec::new();
        held.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }
}
