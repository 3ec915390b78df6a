//! The compiler's programs, run by a small BPF interpreter over made-up syscalls.

use super::*;
use oci_spec::runtime::{LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSyscallBuilder};

/// Runs `prog` on a `seccomp_data` and returns what the filter returns.
pub(crate) fn run(prog: &[Instruction], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = Vec::new();
    data.extend_from_slice(&nr.to_le_bytes());
    data.extend_from_slice(&arch.to_le_bytes());
    data.extend_from_slice(&0u64.to_le_bytes());
    for a in args {
        data.extend_from_slice(&a.to_le_bytes());
    }
    let word = |off: u32| {
        let o = off as usize;
        u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]])
    };
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let i = prog[pc];
        pc += 1;
        let cond = |taken: bool| if taken { i.jt } else { i.jf } as usize;
        match i.code {
            LD_ABS => acc = word(i.k),
            AND_K => acc &= i.k,
            JA => pc += i.k as usize,
            JEQ => pc += cond(acc == i.k),
            JGT => pc += cond(acc > i.k),
            JGE => pc += cond(acc >= i.k),
            JSET => pc += cond(acc & i.k != 0),
            RET_K => return i.k,
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
}

fn native() -> u32 {
    native_arches().0 as u32
}

fn nr(name: &str) -> u32 {
    syscall_number(native_arches().0, name).unwrap()
}

fn arg(index: usize, op: Op, value: u64, two: Option<u64>) -> LinuxSeccompArg {
    let b = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    match two {
        Some(t) => b.value_two(t),
        None => b,
    }
    .build()
    .unwrap()
}

fn filter(rules: Vec<(Vec<&str>, Action, Vec<LinuxSeccompArg>)>) -> Vec<Instruction> {
    compile(&profile(rules)).unwrap().program
}

fn profile(rules: Vec<(Vec<&str>, Action, Vec<LinuxSeccompArg>)>) -> LinuxSeccomp {
    let syscalls = rules
        .into_iter()
        .map(|(names, action, args)| {
            let b = LinuxSyscallBuilder::default()
                .names(names.into_iter().map(String::from).collect::<Vec<_>>())
                .action(action);
            if args.is_empty() { b } else { b.args(args) }
                .build()
                .unwrap()
        })
        .collect::<Vec<_>>();
    LinuxSeccompBuilder::default()
        .default_action(Action::ScmpActErrno)
        .syscalls(syscalls)
        .build()
        .unwrap()
}

#[test]
fn allowlist_and_default() {
    let prog = filter(vec![(
        vec!["read", "write", "no_such_call"],
        Action::ScmpActAllow,
        vec![],
    )]);
    assert_eq!(run(&prog, native(), nr("read"), [0; 6]), RET_ALLOW);
    assert_eq!(run(&prog, native(), nr("write"), [0; 6]), RET_ALLOW);
    assert_eq!(run(&prog, native(), nr("mkdirat"), [0; 6]), RET_ERRNO | 1);
    // Another architecture is killed.
    assert_eq!(run(&prog, 0x1234, nr("read"), [0; 6]), RET_KILL_PROCESS);
}

#[test]
fn many_syscalls_use_far_jumps() {
    let names: Vec<&str> = syscalls::x86_64::Sysno::iter()
        .map(|s| s.name())
        .filter(|n| n.starts_with('s'))
        .collect();
    let prog = filter(vec![(names.clone(), Action::ScmpActAllow, vec![])]);
    for n in names {
        if let Some(nr) = syscall_number(native_arches().0, n) {
            assert_eq!(run(&prog, native(), nr, [0; 6]), RET_ALLOW, "{n}");
        }
    }
    assert_eq!(run(&prog, native(), nr("read"), [0; 6]), RET_ERRNO | 1);
}

#[test]
fn argument_comparisons() {
    let big = 0x1_0000_0005u64;
    let prog = filter(vec![
        (
            vec!["read"],
            Action::ScmpActAllow,
            vec![arg(0, Op::ScmpCmpEq, big, None)],
        ),
        (
            vec!["write"],
            Action::ScmpActAllow,
            vec![arg(1, Op::ScmpCmpNe, 40, None)],
        ),
        (
            vec!["close"],
            Action::ScmpActAllow,
            vec![arg(0, Op::ScmpCmpMaskedEq, 0x7E02_0000, Some(0))],
        ),
        (
            vec!["dup"],
            Action::ScmpActAllow,
            vec![arg(0, Op::ScmpCmpGt, big, None)],
        ),
        (
            vec!["dup2"],
            Action::ScmpActAllow,
            vec![arg(0, Op::ScmpCmpGe, big, None)],
        ),
        (
            vec!["dup3"],
            Action::ScmpActAllow,
            vec![arg(0, Op::ScmpCmpLt, big, None)],
        ),
        (
            vec!["fsync"],
            Action::ScmpActAllow,
            vec![arg(0, Op::ScmpCmpLe, big, None)],
        ),
    ]);
    let check = |name: &str, a: u64, want: bool| {
        let mut args = [0u64; 6];
        args[0] = a;
        args[1] = a;
        let got = run(&prog, native(), nr(name), args) == RET_ALLOW;
        assert_eq!(got, want, "{name}({a:#x})");
    };
    check("read", big, true);
    check("read", 5, false);
    check("write", 40, false);
    check("write", 41, true);
    check("write", 40 | (1 << 32), true);
    check("close", 0x0001_0000, true);
    check("close", 0x1000_0000, false);
    for (name, below, equal, above) in [
        ("dup", false, false, true),
        ("dup2", false, true, true),
        ("dup3", true, false, false),
        ("fsync", true, true, false),
    ] {
        check(name, 6, below);
        check(name, big - 1, below);
        check(name, big, equal);
        check(name, big + 1, above);
        check(name, 0x2_0000_0000, above);
    }
}

#[test]
fn conditional_rules_fall_back_to_the_plain_one() {
    let prog = filter(vec![
        (
            vec!["personality"],
            Action::ScmpActAllow,
            vec![arg(0, Op::ScmpCmpEq, 8, None)],
        ),
        (vec!["personality"], Action::ScmpActLog, vec![]),
    ]);
    let pers = |v| run(&prog, native(), nr("personality"), [v, 0, 0, 0, 0, 0]);
    assert_eq!(pers(8), RET_ALLOW);
    assert_eq!(pers(9), RET_LOG);
}

#[test]
fn errno_values_and_notify_refused() {
    let s = LinuxSeccompBuilder::default()
        .default_action(Action::ScmpActAllow)
        .syscalls(vec![LinuxSyscallBuilder::default()
            .names(vec!["clone3".to_string()])
            .action(Action::ScmpActErrno)
            .errno_ret(38u32)
            .build()
            .unwrap()])
        .build()
        .unwrap();
    let prog = compile(&s).unwrap().program;
    assert_eq!(run(&prog, native(), nr("clone3"), [0; 6]), RET_ERRNO | 38);
    assert_eq!(run(&prog, native(), nr("read"), [0; 6]), RET_ALLOW);
    let mut n = s.clone();
    n.set_default_action(Action::ScmpActNotify);
    let err = compile(&n).unwrap_err().to_string();
    assert!(err.contains("SCMP_ACT_NOTIFY"), "{err}");
}

/// Docker's default profile in the compact layout: under half the far layout's length, and
/// the same verdict for every syscall number of both architectures, with arguments on both
/// sides of the profile's conditions.
#[test]
fn compact_layout_decides_as_the_far_one() {
    let (native_arch, compat) = native_arches();
    for caps in [vec![], vec!["CAP_SYS_ADMIN".to_string()]] {
        let profile = crate::default_seccomp(&caps);
        let compact = compile(&profile).unwrap().program;
        let far = compile_as(&profile, Some(Layout::Far)).unwrap().program;
        assert!(
            compact.len() * 2 < far.len(),
            "{} {}",
            compact.len(),
            far.len()
        );
        let values = [
            0,
            2,
            8,
            0x11,
            40,
            0x0040_0000,
            0x1000_0000,
            0xffff_ffff,
            u64::MAX,
        ];
        for arch in [Some(native_arch), compat].into_iter().flatten() {
            for nr in (0..1100).chain([X32_SYSCALL_BIT, X32_SYSCALL_BIT + 1, u32::MAX]) {
                for v in values {
                    let args = [v, v, v, 0, 0, 0];
                    assert_eq!(
                        run(&compact, arch as u32, nr, args),
                        run(&far, arch as u32, nr, args),
                        "{arch:?} {nr} {v:#x}"
                    );
                }
            }
        }
    }
}

/// A profile too long for the compact layout's short jumps is compiled in the far one.
#[test]
fn long_rules_fall_back_to_the_far_layout() {
    let conditions: Vec<LinuxSeccompArg> =
        (0..60).map(|i| arg(0, Op::ScmpCmpNe, i, None)).collect();
    let long = profile(vec![
        (vec!["read", "write"], Action::ScmpActAllow, vec![]),
        // Three bodies of 240 instructions each: the search cannot reach the last two.
        (
            vec!["openat", "close", "fstat"],
            Action::ScmpActAllow,
            conditions,
        ),
    ]);
    assert!(compile_as(&long, Some(Layout::Compact)).is_err());
    let prog = compile(&long).unwrap().program;
    assert_eq!(run(&prog, native(), nr("read"), [0; 6]), RET_ALLOW);
    assert_eq!(
        run(&prog, native(), nr("openat"), [100, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(
        run(&prog, native(), nr("openat"), [7, 0, 0, 0, 0, 0]),
        RET_ERRNO | 1
    );
    assert_eq!(
        run(&prog, native(), nr("fstat"), [100, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(
        run(&prog, native(), nr("fstat"), [59, 0, 0, 0, 0, 0]),
        RET_ERRNO | 1
    );
    assert_eq!(run(&prog, native(), nr("mkdirat"), [0; 6]), RET_ERRNO | 1);
}
