//! Signal names as `docker kill --signal` accepts them.

const NAMES: [(&str, i32); 31] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("SYS", libc::SIGSYS),
];

/// The realtime range as the C library exposes it (it keeps 32 and 33 for itself).
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// Parses a signal given as a name (`SIGTERM`, `TERM`, `term`), a number (`15`) or a
/// realtime offset (`RTMIN+3`, `SIGRTMAX-1`).
pub fn signal_by_name(name: &str) -> Option<i32> {
    let name = name.trim();
    if let Ok(n) = name.parse::<i32>() {
        return (1..=RTMAX).contains(&n).then_some(n);
    }
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(n, _)| *n == bare) {
        return Some(n);
    }
    let (base, rest) = if let Some(rest) = bare.strip_prefix("RTMIN") {
        (RTMIN, rest)
    } else if let Some(rest) = bare.strip_prefix("RTMAX") {
        (RTMAX, rest)
    } else {
        return None;
    };
    let n = match rest {
        "" => base,
        _ if rest.starts_with('+') => base + rest[1..].parse::<i32>().ok()?,
        _ if rest.starts_with('-') => base - rest[1..].parse::<i32>().ok()?,
        _ => return None,
    };
    (RTMIN..=RTMAX).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_realtime() {
        assert_eq!(signal_by_name("SIGTERM"), Some(15));
        assert_eq!(signal_by_name("TERM"), Some(15));
        assert_eq!(signal_by_name("usr1"), Some(10));
        assert_eq!(signal_by_name("15"), Some(15));
        assert_eq!(signal_by_name("RTMIN+3"), Some(37));
        assert_eq!(signal_by_name("SIGRTMAX-1"), Some(63));
        assert_eq!(signal_by_name("RTMIN"), Some(34));
        assert_eq!(signal_by_name("RTMAX+1"), None);
        assert_eq!(signal_by_name("0"), None);
        assert_eq!(signal_by_name("NOPE"), None);
    }
}
