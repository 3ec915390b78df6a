//! The fake-root filter for build steps in a single-id user namespace.
//!
//! With only the caller's own id mapped, `chown` to any other id fails with `EINVAL` and
//! `setgroups` is denied, so package managers and `useradd` abort although the files they
//! write would all end up owned by root in the image anyway. As Charliecloud does, the filter
//! makes the kernel return success from ownership and id changes without performing them: a
//! seccomp `ERRNO` action with errno 0 is a successful return of 0.

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator as Op, LinuxSyscallBuilder,
};

use super::bpf::native_arches;

/// Calls that change ownership or ids; the `16`/`32` names exist on 32-bit architectures only
/// and are skipped where unknown.
const FAKED: &[&str] = &[
    "chown",
    "chown32",
    "fchown",
    "fchown32",
    "fchownat",
    "lchown",
    "lchown32",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setuid",
    "setuid32",
];

/// `S_IFMT`, `S_IFCHR` and `S_IFBLK` from `<sys/stat.h>`.
const S_IFMT: u64 = 0o170000;
const S_IFCHR: u64 = 0o020000;
const S_IFBLK: u64 = 0o060000;

/// The fake-root filter: everything is allowed; ownership and id changes, and `mknod` of
/// device nodes (which a user namespace may not create), succeed without effect.
pub fn fake_root_seccomp() -> LinuxSeccomp {
    let (native, compat) = native_arches();
    let ok = |names: &[&str]| {
        LinuxSyscallBuilder::default()
            .names(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .action(Action::ScmpActErrno)
            .errno_ret(0u32)
    };
    let mut syscalls = vec![ok(FAKED).build().expect("all fields set")];
    // mknod(path, mode, dev) and mknodat(dirfd, path, mode, dev): the mode's file type decides.
    for (name, index) in [("mknod", 1usize), ("mknodat", 2)] {
        for kind in [S_IFCHR, S_IFBLK] {
            let arg = LinuxSeccompArgBuilder::default()
                .index(index)
                .value(S_IFMT)
                .value_two(kind)
                .op(Op::ScmpCmpMaskedEq)
                .build()
                .expect("all fields set");
            syscalls.push(ok(&[name]).args(vec![arg]).build().expect("all fields set"));
        }
    }
    LinuxSeccompBuilder::default()
        .default_action(Action::ScmpActAllow)
        .architectures(compat.into_iter().chain([native]).collect::<Vec<_>>())
        .syscalls(syscalls)
        .build()
        .expect("all fields set")
}

#[cfg(test)]
mod tests {
    use super::super::bpf::{self, syscall_number, RET_ALLOW, RET_ERRNO};
    use super::*;

    #[test]
    fn fakes_ownership_and_device_nodes_only() {
        let prog = bpf::compile(&fake_root_seccomp()).unwrap().program;
        let (arch, _) = native_arches();
        let verdict = |name: &str, args: [u64; 6]| {
            let nr = syscall_number(arch, name).unwrap();
            bpf::tests::run(&prog, arch as u32, nr, args)
        };
        for name in ["fchownat", "fchown", "setresuid", "setgroups", "setfsgid"] {
            assert_eq!(verdict(name, [0; 6]), RET_ERRNO, "{name}");
        }
        assert_eq!(verdict("read", [0; 6]), RET_ALLOW);
        assert_eq!(verdict("getuid", [0; 6]), RET_ALLOW);
        // A character device is faked; a fifo is really made.
        assert_eq!(
            verdict("mknodat", [0, 0, S_IFCHR | 0o600, 0, 0, 0]),
            RET_ERRNO
        );
        assert_eq!(
            verdict("mknodat", [0, 0, S_IFBLK | 0o600, 0, 0, 0]),
            RET_ERRNO
        );
        assert_eq!(
            verdict("mknodat", [0, 0, 0o010000 | 0o600, 0, 0, 0]),
            RET_ALLOW
        );
    }
}
