//! Seccomp: Docker's default profile, Docker's profile format, and the translation of an OCI
//! `linux.seccomp` into the BPF program a container process installs just before exec.
//!
//! The program is built here rather than with libseccomp (a C library) or `seccompiler`
//! (one action per filter, no errno per rule, and its installer always sets
//! `no_new_privs`, which would break setuid programs in containers that did not ask for it).

mod bpf;
mod cache;
mod docker;
mod fakeroot;

use oci_spec::runtime::LinuxSeccomp;

use crate::error::{Failure, RuntimeError, Step};
use crate::sys;

pub(crate) use cache::default_filter;
pub use fakeroot::fake_root_seccomp;

/// Docker's default profile, as Docker's own JSON format.
const DEFAULT_PROFILE: &str = include_str!("default.json");

/// Docker's default seccomp profile for a container whose effective capabilities are `caps`
/// (`CAP_SYS_ADMIN` or `SYS_ADMIN`): an allowlist returning `EPERM` for everything else,
/// with the groups that depend on capabilities, architecture and kernel resolved.
pub fn default_seccomp(caps: &[String]) -> LinuxSeccomp {
    docker::parse(DEFAULT_PROFILE, caps).expect("the built-in seccomp profile is valid")
}

/// Parses a seccomp profile in Docker's JSON format and resolves its `includes`/`excludes`
/// conditions against the capabilities `caps` and this machine. Errors name the field
/// (`syscalls[3].action`) or the line and column of a syntax error.
pub fn seccomp_from_docker_json(text: &str, caps: &[String]) -> Result<LinuxSeccomp, RuntimeError> {
    docker::parse(text, caps)
}

/// A filter compiled for this machine, ready to install without allocating.
#[derive(Debug, Clone)]
pub(crate) struct Filter(sys::seccomp::Program);

impl Filter {
    /// Compiles the spec's filter; done by the monitor, before the container process exists.
    pub(crate) fn compile(seccomp: &LinuxSeccomp) -> Result<Filter, RuntimeError> {
        let c = bpf::compile(seccomp)?;
        Ok(Filter(sys::seccomp::Program::new(
            c.program.iter().map(|i| (i.code, i.jt, i.jf, i.k)),
            c.flags,
        )))
    }

    /// The program as bytes, eight per instruction (code, jt, jf, k; little-endian), and its
    /// flags: what [`Filter::from_bytes`] reads back.
    pub(crate) fn to_bytes(&self) -> (Vec<u8>, u32) {
        let mut out = Vec::with_capacity(self.0.instructions().len() * 8);
        for (code, jt, jf, k) in self.0.instructions() {
            out.extend_from_slice(&code.to_le_bytes());
            out.extend_from_slice(&[jt, jf]);
            out.extend_from_slice(&k.to_le_bytes());
        }
        (out, self.0.flags())
    }

    /// The filter [`Filter::to_bytes`] gave these bytes and flags for; `None` unless the bytes
    /// are whole instructions.
    pub(crate) fn from_bytes(bytes: &[u8], flags: u32) -> Option<Filter> {
        if !bytes.len().is_multiple_of(8) {
            return None;
        }
        let insns = bytes.chunks_exact(8).map(|c| {
            (
                u16::from_le_bytes([c[0], c[1]]),
                c[2],
                c[3],
                u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            )
        });
        Some(Filter(sys::seccomp::Program::new(insns, flags)))
    }

    /// Installs the filter on the calling process. Without `no_new_privs` the kernel demands
    /// `CAP_SYS_ADMIN` in the process's user namespace; `EACCES` means it is missing.
    pub(crate) fn install(&self) -> Result<(), Failure> {
        self.0
            .install()
            .map_err(|e| Failure::new(Step::Seccomp, "filter", e))
    }
}

#[cfg(test)]
mod tests {
    use super::bpf::{self, syscall_number, RET_ALLOW, RET_ERRNO};
    use super::*;

    pub(super) fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn verdict(s: &LinuxSeccomp, name: &str, arg0: u64) -> u32 {
        let prog = bpf::compile(s).unwrap().program;
        let (arch, _) = bpf::native_arches();
        let nr = syscall_number(arch, name).unwrap();
        bpf::tests::run(&prog, arch as u32, nr, [arg0, 0, 0, 0, 0, 0])
    }

    #[test]
    fn default_profile_follows_capabilities() {
        let plain = default_seccomp(&caps(&["CAP_CHOWN", "NET_RAW"]));
        assert_eq!(verdict(&plain, "read", 0), RET_ALLOW);
        assert_eq!(verdict(&plain, "mount", 0), RET_ERRNO | 1);
        assert_eq!(verdict(&plain, "unshare", 0), RET_ERRNO | 1);
        assert_eq!(verdict(&plain, "clone3", 0), RET_ERRNO | 38);
        assert_eq!(verdict(&plain, "clone", 0x11), RET_ALLOW);
        assert_eq!(verdict(&plain, "clone", 0x1000_0000), RET_ERRNO | 1);
        assert_eq!(verdict(&plain, "personality", 8), RET_ALLOW);
        assert_eq!(verdict(&plain, "personality", 0x0040_0000), RET_ERRNO | 1);
        assert_eq!(verdict(&plain, "socket", 2), RET_ALLOW);
        assert_eq!(verdict(&plain, "socket", 40), RET_ERRNO | 1);
        assert_eq!(verdict(&plain, "settimeofday", 0), RET_ERRNO | 1);
        let admin = default_seccomp(&caps(&["SYS_ADMIN", "CAP_SYS_TIME"]));
        assert_eq!(verdict(&admin, "mount", 0), RET_ALLOW);
        assert_eq!(verdict(&admin, "clone", 0x1000_0000), RET_ALLOW);
        assert_eq!(verdict(&admin, "clone3", 0), RET_ALLOW);
        assert_eq!(verdict(&admin, "settimeofday", 0), RET_ALLOW);
    }

    #[test]
    fn profile_errors_name_the_field() {
        let err = |text: &str| seccomp_from_docker_json(text, &[]).unwrap_err().to_string();
        assert!(err("{").contains("json"));
        assert!(err("{\"syscalls\": []}").contains("defaultAction"));
        let e = err(r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                         {"names": ["mkdir"], "action": "SCMP_ACT_NOPE"}]}"#);
        assert!(
            e.contains("syscalls[1].action") && e.contains("SCMP_ACT_NOPE"),
            "{e}"
        );
        let e = err(r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                          "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#);
        assert!(e.contains("syscalls[0].args[0].index"), "{e}");
    }

    #[test]
    fn custom_profile_with_conditions() {
        let text = r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
              {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
              {"name": "chmod", "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
               "excludes": {"caps": ["CAP_FOWNER"]}}]}"#;
        let s = seccomp_from_docker_json(text, &[]).unwrap();
        assert_eq!(verdict(&s, "mkdirat", 0), RET_ERRNO | 1);
        assert_eq!(verdict(&s, "fchmodat", 0), RET_ALLOW);
        assert_eq!(verdict(&s, "read", 0), RET_ALLOW);
        let owner = seccomp_from_docker_json(text, &caps(&["CAP_FOWNER"])).unwrap();
        assert_eq!(owner.syscalls().as_ref().unwrap().len(), 1);
    }
}
