//! Compiling an OCI `linux.seccomp` filter into a classic BPF program for the machine's own
//! architecture and its 32-bit compat architecture.
//!
//! The program checks the architecture first (an architecture the filter does not list kills
//! the process, as libseccomp does), then finds the syscall number by binary search and jumps
//! to its rules. A syscall's rules are tried in order, conditional ones first, so an
//! unconditional rule is the fallback of the conditional ones for the same syscall; a
//! syscall without a matching rule gets the default action. Names unknown to an
//! architecture are skipped there, as runc does, since profiles list names for every
//! architecture at once.

use std::collections::BTreeMap;
use std::hash::{BuildHasherDefault, Hasher};

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompArg,
    LinuxSeccompFilterFlag as Flag, LinuxSeccompOperator as Op,
};

use crate::error::RuntimeError;

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Instruction {
    pub(crate) code: u16,
    pub(crate) jt: u8,
    pub(crate) jf: u8,
    pub(crate) k: u32,
}

const LD_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const JA: u16 = 0x05; // BPF_JMP | BPF_JA
const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT: u16 = 0x25;
const JGE: u16 = 0x35;
const JSET: u16 = 0x45;
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// Offsets into `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

pub(crate) const RET_KILL_THREAD: u32 = 0x0000_0000;
pub(crate) const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub(crate) const RET_TRAP: u32 = 0x0003_0000;
pub(crate) const RET_ERRNO: u32 = 0x0005_0000;
pub(crate) const RET_TRACE: u32 = 0x7ff0_0000;
pub(crate) const RET_LOG: u32 = 0x7ffc_0000;
pub(crate) const RET_ALLOW: u32 = 0x7fff_0000;

/// x32 syscalls arrive with the x86_64 audit arch and this bit set in the number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// The kernel's limit on a filter's length.
const MAX_INSNS: usize = 4096;

/// A compiled filter: the program and the flags for `seccomp(SECCOMP_SET_MODE_FILTER)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Compiled {
    pub(crate) program: Vec<Instruction>,
    pub(crate) flags: u32,
}

fn invalid(msg: String) -> RuntimeError {
    RuntimeError::InvalidSpec(format!("linux.seccomp: {msg}"))
}

/// The architecture the running binary was built for and its compat architecture.
pub(crate) fn native_arches() -> (Arch, Option<Arch>) {
    if cfg!(target_arch = "aarch64") {
        (Arch::ScmpArchAarch64, Some(Arch::ScmpArchArm))
    } else {
        (Arch::ScmpArchX86_64, Some(Arch::ScmpArchX86))
    }
}

/// The syscall number of `name` on `arch`, `None` if that architecture has no such call.
#[cfg(test)]
pub(crate) fn syscall_number(arch: Arch, name: &str) -> Option<u32> {
    use std::str::FromStr;
    let id = match arch {
        Arch::ScmpArchX86_64 => syscalls::x86_64::Sysno::from_str(name).ok()?.id(),
        Arch::ScmpArchX86 => syscalls::x86::Sysno::from_str(name).ok()?.id(),
        Arch::ScmpArchAarch64 => syscalls::aarch64::Sysno::from_str(name).ok()?.id(),
        Arch::ScmpArchArm => syscalls::arm::Sysno::from_str(name).ok()?.id(),
        _ => return None,
    };
    u32::try_from(id).ok()
}

/// Every syscall name of `arch` with its number. Compiling looks up hundreds of names per
/// architecture, and `Sysno::from_str` compares a name with each known one in turn (a `match`
/// on strings): one table per architecture made that a sixth of the work before a start.
fn syscall_table(arch: Arch) -> NameMap<u32> {
    macro_rules! table {
        ($arch:ident) => {{
            let mut table = NameMap::with_capacity_and_hasher(
                syscalls::$arch::Sysno::count(),
                Default::default(),
            );
            table.extend(
                syscalls::$arch::Sysno::iter()
                    .filter_map(|s| Some((s.name(), u32::try_from(s.id()).ok()?))),
            );
            table
        }};
    }
    match arch {
        Arch::ScmpArchX86_64 => table!(x86_64),
        Arch::ScmpArchX86 => table!(x86),
        Arch::ScmpArchAarch64 => table!(aarch64),
        Arch::ScmpArchArm => table!(arm),
        _ => Default::default(),
    }
}

/// A map keyed by syscall names with FNV-1a instead of SipHash: the keys are the kernel's
/// own names, nobody's input to defend against, and hashing them was a tenth of the compile.
type NameMap<V> = std::collections::HashMap<&'static str, V, BuildHasherDefault<Fnv1a>>;

#[derive(Default)]
struct Fnv1a(u64);

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// The value a filter returns for `action`.
fn ret_value(action: Action, errno: Option<u32>) -> Result<u32, RuntimeError> {
    let data = |e: Option<u32>| e.unwrap_or(libc::EPERM as u32) & 0xffff;
    Ok(match action {
        Action::ScmpActKill | Action::ScmpActKillThread => RET_KILL_THREAD,
        Action::ScmpActKillProcess => RET_KILL_PROCESS,
        Action::ScmpActTrap => RET_TRAP,
        Action::ScmpActErrno => RET_ERRNO | data(errno),
        Action::ScmpActTrace => RET_TRACE | data(errno),
        Action::ScmpActLog => RET_LOG,
        Action::ScmpActAllow => RET_ALLOW,
        Action::ScmpActNotify => {
            return Err(invalid(
                "SCMP_ACT_NOTIFY needs a seccomp agent, which is not supported".into(),
            ))
        }
    })
}

/// One rule of one syscall: all `args` must match for `ret` to be returned.
#[derive(Debug, Clone)]
struct Rule<'a> {
    ret: u32,
    args: &'a [LinuxSeccompArg],
}

/// Compiles `seccomp` for this machine.
pub(crate) fn compile(seccomp: &LinuxSeccomp) -> Result<Compiled, RuntimeError> {
    compile_as(seccomp, None)
}

/// Compiles `seccomp` in `layout`, or in the compact one where the profile fits it and the
/// far one otherwise.
fn compile_as(seccomp: &LinuxSeccomp, layout: Option<Layout>) -> Result<Compiled, RuntimeError> {
    let (native, compat) = native_arches();
    let listed = seccomp.architectures().clone().unwrap_or_default();
    let mut arches = vec![native];
    if let Some(c) = compat.filter(|c| listed.contains(c)) {
        arches.push(c);
    }
    let default = ret_value(seccomp.default_action(), seccomp.default_errno_ret())?;
    let mut flags = 0u32;
    for f in seccomp.flags().as_deref().unwrap_or_default() {
        flags |= match f {
            Flag::SeccompFilterFlagTsync => 1,
            Flag::SeccompFilterFlagLog => 2,
            Flag::SeccompFilterFlagSpecAllow => 4,
            // Only meaningful with a notification listener, which is refused above.
            Flag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    let mut rules = Vec::new();
    for (i, s) in seccomp
        .syscalls()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let ret = ret_value(s.action(), s.errno_ret())?;
        let args = s.args().as_deref().unwrap_or_default();
        for a in args {
            if a.index() > 5 {
                return Err(invalid(format!(
                    "syscalls[{i}]: argument index {} is out of range 0-5",
                    a.index()
                )));
            }
        }
        rules.push((s.names(), Rule { ret, args }));
    }
    let mut sections = Vec::with_capacity(arches.len());
    for arch in &arches {
        let table = syscall_table(*arch);
        // (number, rule index), sorted: each syscall's rules together, in the profile's order.
        let mut numbered: Vec<(u32, usize)> = Vec::with_capacity(table.len());
        for (i, (names, _)) in rules.iter().enumerate() {
            numbered.extend(
                names
                    .iter()
                    .filter_map(|n| Some((*table.get(n.as_str())?, i))),
            );
        }
        numbered.sort_unstable();
        let by_nr: Vec<(u32, Vec<&Rule>)> = numbered
            .chunk_by(|a, b| a.0 == b.0)
            .map(|run| (run[0].0, run.iter().map(|&(_, i)| &rules[i].1).collect()))
            .collect();
        sections.push((*arch, by_nr));
    }
    // The compact layout fits any profile whose rules are not unusually long; the far one
    // fits every profile the kernel would take.
    let program = match layout {
        Some(layout) => assemble(&sections, default, layout)?,
        None => assemble(&sections, default, Layout::Compact)
            .or_else(|_| assemble(&sections, default, Layout::Far))?,
    };
    if program.len() > MAX_INSNS {
        return Err(invalid(format!(
            "the filter needs {} instructions, more than the kernel's {MAX_INSNS}",
            program.len()
        )));
    }
    Ok(Compiled { program, flags })
}

/// One architecture and its syscalls' rules by number, in order.
type Section<'a> = (Arch, Vec<(u32, Vec<&'a Rule<'a>>)>);

/// How the search for a syscall's number reaches its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One conditional jump per step, straight to the next step, the returns or a syscall's
    /// rules: every target must lie within a conditional jump's 255 instructions.
    Compact,
    /// Each step through an unconditional jump, which reaches anywhere: three instructions
    /// per step instead of one.
    Far,
}

/// The whole program: the architecture check, then one section per architecture.
///
/// The kernel converts, compiles and runs through the program for every syscall number when
/// the filter is installed, at every container start: Docker's profile takes about 300
/// instructions in the compact layout against 660 in the far one, and that work with it.
fn assemble(
    sections: &[Section],
    default: u32,
    layout: Layout,
) -> Result<Vec<Instruction>, RuntimeError> {
    let mut asm = Assembler::default();
    asm.load(OFF_ARCH);
    let labels: Vec<Label> = sections.iter().map(|_| asm.label()).collect();
    for ((arch, _), label) in sections.iter().zip(&labels) {
        asm.jump_if(JEQ, *arch as u32, *label);
    }
    asm.ret(RET_KILL_PROCESS);
    for ((arch, by_nr), label) in sections.iter().zip(&labels) {
        asm.bind(*label);
        section(&mut asm, *arch, by_nr, default, layout);
    }
    asm.finish()
}

/// The code for one architecture: dispatch on the syscall number, then each syscall's rules.
fn section(
    asm: &mut Assembler,
    arch: Arch,
    by_nr: &[(u32, Vec<&Rule>)],
    default: u32,
    layout: Layout,
) {
    let miss = asm.label();
    asm.load(OFF_NR);
    if arch == Arch::ScmpArchX86_64 {
        match layout {
            Layout::Compact => asm.branch(JSET, X32_SYSCALL_BIT, Some(miss), None),
            Layout::Far => asm.jump_if(JSET, X32_SYSCALL_BIT, miss),
        }
    }
    // Syscalls whose only rule is unconditional share one return per value.
    let mut returns: BTreeMap<u32, Label> = BTreeMap::new();
    let mut bodies = Vec::new();
    let mut targets = Vec::new();
    for (nr, rules) in by_nr {
        let target = match rules.as_slice() {
            [only] if only.args.is_empty() => {
                *returns.entry(only.ret).or_insert_with(|| asm.label())
            }
            _ => {
                let l = asm.label();
                bodies.push((l, rules));
                l
            }
        };
        targets.push((*nr, target));
    }
    let runs = intervals(&targets, miss);
    match (layout, runs.as_slice()) {
        (Layout::Compact, [_, _, ..]) => search_compact(asm, &runs),
        _ => search(asm, &runs),
    }
    asm.bind(miss);
    asm.ret(default);
    for (ret, label) in returns {
        asm.bind(label);
        asm.ret(ret);
    }
    for (label, rules) in bodies {
        asm.bind(label);
        let (conditional, plain): (Vec<&Rule>, Vec<&Rule>) =
            rules.iter().partition(|r| !r.args.is_empty());
        for rule in conditional {
            let fail = asm.label();
            for arg in rule.args {
                condition(asm, arg, fail);
            }
            asm.ret(rule.ret);
            asm.bind(fail);
        }
        asm.ret(plain.first().map_or(default, |r| r.ret));
    }
}

/// Turns sorted `(number, target)` pairs into runs of consecutive numbers with one target,
/// each given by its first number, gaps going to `miss`. Most allowed syscalls are
/// neighbours, so a profile of 400 names becomes about a hundred runs, and the program stays
/// small: the kernel checks and compiles it at every container start.
fn intervals(targets: &[(u32, Label)], miss: Label) -> Vec<(u32, Label)> {
    let mut out: Vec<(u32, Label)> = Vec::new();
    let mut push = |start: u32, label: Label| {
        if out.last().is_none_or(|l| l.1 != label) {
            out.push((start, label));
        }
    };
    let mut next = 0u32;
    for &(nr, label) in targets {
        if nr > next {
            push(next, miss);
        }
        push(nr, label);
        next = nr.saturating_add(1);
    }
    push(next, miss);
    out
}

/// Binary search for the run holding the syscall number; the first run starts at 0.
fn search(asm: &mut Assembler, runs: &[(u32, Label)]) {
    if let [(_, only)] = runs {
        asm.jump(*only);
        return;
    }
    let mid = runs.len() / 2;
    let upper = asm.label();
    asm.jump_if(JGE, runs[mid].0, upper);
    search(asm, &runs[..mid]);
    asm.bind(upper);
    search(asm, &runs[mid..]);
}

/// The same search as [`search`] with one instruction per step: each conditional jump goes
/// straight to the upper half's step (or target) and falls through to the lower half's, or
/// goes to its target when the lower half is a single run. `runs` has at least two runs.
fn search_compact(asm: &mut Assembler, runs: &[(u32, Label)]) {
    let (lower, upper) = runs.split_at(runs.len() / 2);
    let upper_at = match upper {
        [(_, only)] => *only,
        _ => asm.label(),
    };
    let lower_at = match lower {
        [(_, only)] => Some(*only),
        _ => None,
    };
    asm.branch(JGE, upper[0].0, Some(upper_at), lower_at);
    if lower.len() > 1 {
        search_compact(asm, lower);
    }
    if upper.len() > 1 {
        asm.bind(upper_at);
        search_compact(asm, upper);
    }
}

/// Falls through when the 64-bit argument satisfies `arg`, jumps to `fail` otherwise. BPF
/// compares 32 bits at a time: the high word decides unless it is equal.
fn condition(asm: &mut Assembler, arg: &LinuxSeccompArg, fail: Label) {
    let lo_off = OFF_ARGS + 8 * arg.index() as u32;
    let hi_off = lo_off + 4;
    let split = |v: u64| ((v >> 32) as u32, v as u32);
    let (hi, lo) = split(arg.value());
    let pass = asm.label();
    match arg.op() {
        Op::ScmpCmpEq => {
            asm.load(hi_off);
            asm.branch(JEQ, hi, None, Some(fail));
            asm.load(lo_off);
            asm.branch(JEQ, lo, None, Some(fail));
        }
        Op::ScmpCmpNe => {
            asm.load(hi_off);
            asm.branch(JEQ, hi, None, Some(pass));
            asm.load(lo_off);
            asm.branch(JEQ, lo, Some(fail), None);
        }
        Op::ScmpCmpMaskedEq => {
            let (want_hi, want_lo) = split(arg.value_two().unwrap_or(0));
            asm.load(hi_off);
            asm.and(hi);
            asm.branch(JEQ, want_hi, None, Some(fail));
            asm.load(lo_off);
            asm.and(lo);
            asm.branch(JEQ, want_lo, None, Some(fail));
        }
        Op::ScmpCmpGt | Op::ScmpCmpGe => {
            asm.load(hi_off);
            asm.branch(JGT, hi, Some(pass), None);
            asm.branch(JEQ, hi, None, Some(fail));
            asm.load(lo_off);
            let cmp = if arg.op() == Op::ScmpCmpGt { JGT } else { JGE };
            asm.branch(cmp, lo, Some(pass), Some(fail));
        }
        Op::ScmpCmpLt | Op::ScmpCmpLe => {
            asm.load(hi_off);
            asm.branch(JGT, hi, Some(fail), None);
            asm.branch(JEQ, hi, None, Some(pass));
            asm.load(lo_off);
            // a < b is !(a >= b); a <= b is !(a > b).
            let cmp = if arg.op() == Op::ScmpCmpLt { JGE } else { JGT };
            asm.branch(cmp, lo, Some(fail), Some(pass));
        }
    }
    asm.bind(pass);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Label(usize);

#[derive(Debug)]
enum Item {
    Plain(Instruction),
    /// A conditional jump; `None` targets mean the next instruction.
    Branch {
        code: u16,
        k: u32,
        t: Option<Label>,
        f: Option<Label>,
    },
    Jump(Label),
    Bind(Label),
}

/// Emits instructions with symbolic labels and resolves them at the end. Conditional jumps
/// reach at most 255 instructions, so far targets go through an unconditional `ja`.
#[derive(Debug, Default)]
struct Assembler {
    items: Vec<Item>,
    labels: usize,
}

impl Assembler {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    fn bind(&mut self, l: Label) {
        self.items.push(Item::Bind(l));
    }

    fn plain(&mut self, code: u16, k: u32) {
        self.items.push(Item::Plain(Instruction {
            code,
            jt: 0,
            jf: 0,
            k,
        }));
    }

    fn load(&mut self, off: u32) {
        self.plain(LD_ABS, off);
    }

    fn and(&mut self, mask: u32) {
        self.plain(AND_K, mask);
    }

    fn ret(&mut self, value: u32) {
        self.plain(RET_K, value);
    }

    fn jump(&mut self, l: Label) {
        self.items.push(Item::Jump(l));
    }

    /// A short conditional jump (targets within 255 instructions).
    fn branch(&mut self, code: u16, k: u32, t: Option<Label>, f: Option<Label>) {
        self.items.push(Item::Branch { code, k, t, f });
    }

    /// Jumps to a possibly far `l` when the condition holds.
    fn jump_if(&mut self, code: u16, k: u32, l: Label) {
        let skip = self.label();
        self.branch(code, k, None, Some(skip));
        self.jump(l);
        self.bind(skip);
    }

    fn finish(self) -> Result<Vec<Instruction>, RuntimeError> {
        let mut at = vec![usize::MAX; self.labels];
        let mut pc = 0;
        for item in &self.items {
            match item {
                Item::Bind(l) => at[l.0] = pc,
                _ => pc += 1,
            }
        }
        let mut out = Vec::with_capacity(pc);
        for item in &self.items {
            let here = out.len();
            let rel = |l: Option<Label>| -> Result<u8, RuntimeError> {
                let Some(l) = l else { return Ok(0) };
                u8::try_from(at[l.0] - here - 1)
                    .map_err(|_| invalid("a rule is too long for a bpf jump".into()))
            };
            match item {
                Item::Bind(_) => {}
                Item::Plain(i) => out.push(*i),
                Item::Branch { code, k, t, f } => out.push(Instruction {
                    code: *code,
                    jt: rel(*t)?,
                    jf: rel(*f)?,
                    k: *k,
                }),
                Item::Jump(l) => out.push(Instruction {
                    code: JA,
                    jt: 0,
                    jf: 0,
                    k: (at[l.0] - here - 1) as u32,
                }),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "bpf_tests.rs"]
pub(crate) mod tests;
