//! Mount options as the OCI spec spells them (`ro`, `nosuid`, `rbind`, `rprivate`, `size=64m`)
//! turned into mount flags, propagation and filesystem data.

use std::io;
use std::os::fd::AsFd;

use rustix::fs::StatVfsMountFlags;
use rustix::mount::{MountFlags, MountPropagationFlags};

/// Parsed mount options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountOptions {
    pub(crate) flags: MountFlags,
    pub(crate) propagation: Option<MountPropagationFlags>,
    pub(crate) bind: bool,
    pub(crate) recursive: bool,
    /// Everything that is not a flag, for the filesystem (`mode=755`, `size=65536k`).
    pub(crate) data: Vec<String>,
}

impl MountOptions {
    /// Parses the spec's option list; unknown words go to the filesystem as data.
    pub(crate) fn parse(options: &[String]) -> MountOptions {
        let mut o = MountOptions {
            flags: MountFlags::empty(),
            propagation: None,
            bind: false,
            recursive: false,
            data: Vec::new(),
        };
        for opt in options {
            let (set, clear) = match opt.as_str() {
                "ro" => (MountFlags::RDONLY, MountFlags::empty()),
                "rw" => (MountFlags::empty(), MountFlags::RDONLY),
                "nosuid" => (MountFlags::NOSUID, MountFlags::empty()),
                "suid" => (MountFlags::empty(), MountFlags::NOSUID),
                "nodev" => (MountFlags::NODEV, MountFlags::empty()),
                "dev" => (MountFlags::empty(), MountFlags::NODEV),
                "noexec" => (MountFlags::NOEXEC, MountFlags::empty()),
                "exec" => (MountFlags::empty(), MountFlags::NOEXEC),
                "sync" => (MountFlags::SYNCHRONOUS, MountFlags::empty()),
                "async" => (MountFlags::empty(), MountFlags::SYNCHRONOUS),
                "dirsync" => (MountFlags::DIRSYNC, MountFlags::empty()),
                "noatime" => (MountFlags::NOATIME, MountFlags::empty()),
                "atime" => (MountFlags::empty(), MountFlags::NOATIME),
                "nodiratime" => (MountFlags::NODIRATIME, MountFlags::empty()),
                "diratime" => (MountFlags::empty(), MountFlags::NODIRATIME),
                "relatime" => (MountFlags::RELATIME, MountFlags::empty()),
                "norelatime" => (MountFlags::empty(), MountFlags::RELATIME),
                "strictatime" => (MountFlags::STRICTATIME, MountFlags::empty()),
                "nostrictatime" => (MountFlags::empty(), MountFlags::STRICTATIME),
                "bind" => {
                    o.bind = true;
                    continue;
                }
                "rbind" => {
                    o.bind = true;
                    o.recursive = true;
                    continue;
                }
                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
                | "unbindable" | "runbindable" => {
                    o.propagation = Some(propagation(opt));
                    continue;
                }
                // Options for other runtimes' features that have no meaning here.
                "tmpcopyup" | "idmap" | "ridmap" | "defaults" => continue,
                _ => {
                    o.data.push(opt.clone());
                    continue;
                }
            };
            o.flags = (o.flags | set) & !clear;
        }
        o
    }

    /// Whether a bind mount needs a remount to apply these flags (bind ignores them).
    pub(crate) fn needs_remount(&self) -> bool {
        self.flags.intersects(
            MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        )
    }
}

fn propagation(word: &str) -> MountPropagationFlags {
    let kind = match word.trim_start_matches('r') {
        "shared" => MountPropagationFlags::SHARED,
        "slave" => MountPropagationFlags::DOWNSTREAM,
        "unbindable" => MountPropagationFlags::UNBINDABLE,
        _ => MountPropagationFlags::PRIVATE,
    };
    if word.starts_with('r') {
        kind | MountPropagationFlags::REC
    } else {
        kind
    }
}

/// The flags of the mount at `fd` that a bind remount must repeat. Inside a user namespace the
/// kernel locks nosuid, nodev, noexec, ro and the atime mode of mounts inherited from the
/// host, and a remount that leaves one out fails with EPERM.
pub(crate) fn current_flags<Fd: AsFd>(fd: Fd) -> io::Result<MountFlags> {
    let st = rustix::fs::fstatvfs(fd)?;
    let f = st.f_flag;
    let mut flags = MountFlags::empty();
    for (st_flag, ms_flag) in [
        (StatVfsMountFlags::RDONLY, MountFlags::RDONLY),
        (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
        (StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
        (StatVfsMountFlags::NODIRATIME, MountFlags::NODIRATIME),
        (StatVfsMountFlags::RELATIME, MountFlags::RELATIME),
    ] {
        if f.contains(st_flag) {
            flags |= ms_flag;
        }
    }
    // Without an atime flag a remount would switch to relatime, which is also a change.
    if !f.intersects(StatVfsMountFlags::NOATIME | StatVfsMountFlags::RELATIME) {
        flags |= MountFlags::STRICTATIME;
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> MountOptions {
        MountOptions::parse(&words.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_data_and_bind() {
        let o = parse(&[
            "rbind",
            "ro",
            "nosuid",
            "mode=755",
            "size=65536k",
            "rprivate",
        ]);
        assert!(o.bind && o.recursive);
        assert_eq!(o.flags, MountFlags::RDONLY | MountFlags::NOSUID);
        assert_eq!(o.data, ["mode=755", "size=65536k"]);
        assert_eq!(
            o.propagation,
            Some(MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        );
        assert!(o.needs_remount());
    }

    #[test]
    fn later_words_win() {
        let o = parse(&["ro", "rw", "bind"]);
        assert!(o.bind && !o.recursive);
        assert_eq!(o.flags, MountFlags::empty());
        assert!(!o.needs_remount());
        assert_eq!(
            parse(&["slave"]).propagation,
            Some(MountPropagationFlags::DOWNSTREAM)
        );
    }
}
