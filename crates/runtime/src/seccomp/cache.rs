//! Docker's default profile, compiled once per build, kernel and capability set.
//!
//! Parsing the profile and compiling it to BPF is a tenth of the CPU a container's start
//! costs Berth, the same work each time: a hundred containers started at once do it a hundred
//! times. The program is kept in a file named after everything it depends on: the profile and
//! compiler sources of this build, the kernel release (the profile's `minKernel` conditions),
//! the machine, and the capabilities. A file that does not read back as a program is compiled
//! again and replaced.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use super::Filter;
use crate::error::RuntimeError;

/// What the compiled program depends on in this build, hashed at compile time: any change to
/// the profile or the code that reads and compiles it names other files.
const SOURCES: u64 = fnv(
    FNV_OFFSET,
    &[
        super::DEFAULT_PROFILE.as_bytes(),
        include_bytes!("mod.rs"),
        include_bytes!("docker.rs"),
        include_bytes!("bpf.rs"),
        include_bytes!("cache.rs"),
        include_bytes!("../sys/seccomp.rs"),
    ],
);

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a over `parts`, each followed by a 0 byte so that parts cannot run together.
const fn fnv(mut h: u64, parts: &[&[u8]]) -> u64 {
    let mut p = 0;
    while p < parts.len() {
        let mut i = 0;
        while i <= parts[p].len() {
            let b = if i < parts[p].len() { parts[p][i] } else { 0 };
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        p += 1;
    }
    h
}

/// Programs kept at most; a compile that finds more clears the others (left by other builds).
const KEPT: usize = 64;

/// The file name for the program of `caps` (in any order) on this kernel.
fn file_name(caps: &[String]) -> String {
    let uname = rustix::system::uname();
    let mut caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    caps.sort_unstable();
    caps.dedup();
    let mut parts: Vec<&[u8]> = vec![uname.release().to_bytes(), uname.machine().to_bytes()];
    parts.extend(caps.iter().map(|c| c.as_bytes()));
    format!("seccomp-{:016x}.bpf", fnv(SOURCES, &parts))
}

/// Docker's default profile for `caps`, compiled, read from `dir` when a start before this one
/// left it there, and left there otherwise. `dir` is created if missing; one that others could
/// write to is not used.
pub(crate) fn default_filter(caps: &[String], dir: Option<&Path>) -> Result<Filter, RuntimeError> {
    let compile = || Filter::compile(&super::default_seccomp(caps));
    let Some(dir) = dir.filter(|d| usable(d)) else {
        return compile();
    };
    let path = dir.join(file_name(caps));
    if let Some(filter) = fs::read(&path).ok().and_then(|b| decode(&b)) {
        return Ok(filter);
    }
    let filter = compile()?;
    let others: Vec<_> = fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    if others.len() >= KEPT {
        others.iter().for_each(|p| drop(fs::remove_file(p)));
    }
    // A cache that cannot be written only costs the next start the compile.
    let tmp = dir.join(format!(".{}.{}", std::process::id(), file_name(caps)));
    let written = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&encode(&filter)))
        .and_then(|()| fs::rename(&tmp, &path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    Ok(filter)
}

/// A directory of this user's that no one else can write to, made if missing (only then: this
/// runs at every start).
fn usable(dir: &Path) -> bool {
    let meta = fs::symlink_metadata(dir).or_else(|_| {
        let _ = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
        fs::symlink_metadata(dir)
    });
    meta.is_ok_and(|m| {
        m.is_dir() && m.uid() == rustix::process::geteuid().as_raw() && m.mode() & 0o022 == 0
    })
}

/// The filter's flags (4 bytes, little-endian), then its instructions.
fn encode(filter: &Filter) -> Vec<u8> {
    let (bytes, flags) = filter.to_bytes();
    let mut out = flags.to_le_bytes().to_vec();
    out.extend(bytes);
    out
}

fn decode(data: &[u8]) -> Option<Filter> {
    let (flags, program) = data.split_first_chunk::<4>()?;
    if program.is_empty() {
        return None;
    }
    Filter::from_bytes(program, u32::from_le_bytes(*flags))
}

#[cfg(test)]
mod tests {
    use super::super::tests::caps;
    use super::*;

    #[test]
    fn a_cached_program_is_the_compiled_one() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let plain = caps(&["CAP_CHOWN"]);
        let admin = caps(&["CAP_CHOWN", "CAP_SYS_ADMIN"]);
        let direct = |c: &[String]| Filter::compile(&crate::default_seccomp(c)).unwrap();
        for _ in 0..2 {
            let f = default_filter(&plain, Some(&cache)).unwrap();
            assert_eq!(f.to_bytes(), direct(&plain).to_bytes());
            let f = default_filter(&admin, Some(&cache)).unwrap();
            assert_eq!(f.to_bytes(), direct(&admin).to_bytes());
        }
        // One file per capability set, none left half-written.
        let names: Vec<_> = fs::read_dir(&cache).unwrap().flatten().collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(
            fs::metadata(&cache).unwrap().mode() & 0o777,
            0o700,
            "made for this user only"
        );
    }

    #[test]
    fn a_damaged_file_is_compiled_again_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let c = caps(&["CAP_KILL"]);
        let path = dir.path().join(file_name(&c));
        let good = default_filter(&c, Some(dir.path())).unwrap().to_bytes();
        for bad in [&b""[..], b"\0\0\0", b"\0\0\0\0", b"\0\0\0\0\x01\x02\x03"] {
            fs::write(&path, bad).unwrap();
            assert_eq!(
                default_filter(&c, Some(dir.path())).unwrap().to_bytes(),
                good
            );
            assert_eq!(decode(&fs::read(&path).unwrap()).unwrap().to_bytes(), good);
        }
    }

    #[test]
    fn a_directory_others_can_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let c = caps(&["CAP_KILL"]);
        default_filter(&c, Some(dir.path())).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(!usable(dir.path()));
    }

    #[test]
    fn files_of_other_builds_do_not_pile_up() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..KEPT {
            fs::write(dir.path().join(format!("seccomp-{i}.bpf")), b"old").unwrap();
        }
        let c = caps(&["CAP_KILL"]);
        default_filter(&c, Some(dir.path())).unwrap();
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].file_name().to_str(), Some(&*file_name(&c)));
    }

    #[test]
    fn names_follow_capabilities() {
        assert_ne!(file_name(&caps(&["CAP_KILL"])), file_name(&caps(&[])));
        assert_eq!(
            file_name(&caps(&["CAP_KILL", "CAP_CHOWN"])),
            file_name(&caps(&["CAP_CHOWN", "CAP_KILL", "CAP_KILL"]))
        );
        assert_ne!(
            file_name(&caps(&["CAP_KILL", "CAP_CHOWN"])),
            file_name(&caps(&["CAP_KILLCAP_CHOWN"]))
        );
        assert_eq!(file_name(&caps(&["X"])), file_name(&caps(&["X"])));
    }
}
