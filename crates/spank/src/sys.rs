//! The plugin's own system calls, in one place: who the caller is, limits, leaving the task's
//! process, exec, and dropping to the user in a child. Everything else goes through `ffi` (Slurm's
//! API) or the standard library.

use std::ffi::{c_char, CString};
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::{ffi, limits};

/// The effective uid and gid.
pub fn effective_ids() -> (u32, u32) {
    // SAFETY: plain getters without arguments.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// Ends this process at once with `code`, running no exit handlers: it is a fork of
/// slurmstepd about to exec, as a failed exec would end.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

/// Makes `c` run as `uid`:`gid` with `groups` (from root, or from effective ids only).
pub fn as_user(c: &mut Command, uid: u32, gid: u32, groups: &[libc::gid_t]) {
    let groups = groups.to_vec();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe system
    // calls on data prepared before the fork.
    unsafe {
        c.pre_exec(move || {
            if libc::geteuid() == 0
                && uid != 0
                && libc::setgroups(groups.len(), groups.as_ptr()) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::setresgid(gid, gid, gid) != 0 || libc::setresuid(uid, uid, uid) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sets the limits srun propagates, which slurmstepd would set after `task_init`.
pub fn apply_limits(env: &[String]) {
    for l in limits::requested(env) {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `r` is a live, writable rlimit.
        if unsafe { libc::getrlimit(l.resource, &mut r) } != 0 {
            continue;
        }
        r.rlim_cur = limits::clamp(l.soft, r.rlim_max);
        // SAFETY: `r` is a valid rlimit whose soft value is within its hard one.
        if unsafe { libc::setrlimit(l.resource, &r) } != 0 {
            ffi::debug(&format!(
                "berth-spank: cannot set limit {}: {}",
                l.resource,
                std::io::Error::last_os_error()
            ));
        }
    }
}

pub fn current_groups() -> Vec<libc::gid_t> {
    // SAFETY: a zero-length query returns the count and writes nothing.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let mut groups = vec![0 as libc::gid_t; n.max(0) as usize];
    // SAFETY: the buffer holds `n` entries.
    let got = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
    groups.truncate(got.max(0) as usize);
    groups
}

/// execve(2); returns only on failure.
pub fn exec(path: &str, args: &[String], env: &[String]) -> std::io::Error {
    // The strings come from Slurm's C arrays, so they hold no NUL.
    let cstr = |s: &str| CString::new(s).unwrap_or_default();
    let path = cstr(path);
    let args: Vec<CString> = args.iter().map(|a| cstr(a)).collect();
    let env: Vec<CString> = env.iter().map(|e| cstr(e)).collect();
    let mut argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: NUL-terminated strings in NULL-terminated arrays, all alive across the call.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    std::io::Error::last_os_error()
}
