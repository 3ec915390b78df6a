//! `berth run` as job scripts write it, read without clap.
//!
//! Building clap's command for `run` (over a hundred flags) and parsing with it costs about
//! 0.3 ms of CPU, a tenth of what Berth spends to start a container, on every start. This
//! reader knows the common flags of `run` and the global ones, in their plain spellings
//! (`--name x`, `--name=x`, `-e A=1`, `-it`). At anything else (another flag, `--rm=false`, a
//! value that starts with `-` or does not parse, a flag given twice, `--`, `--help`) it gives up
//! and clap reads the line, so what users see, errors and help included, is clap's. The
//! tests hold it to clap's result for the same arguments, and each flag here to clap's
//! definition of it.

use std::ffi::OsString;

use crate::{Cli, Command, EnvVars, GlobalArgs, RunArgs};

/// Where a flag's value goes.
enum Slot {
    Flag(fn(&mut RunArgs) -> &mut bool),
    One(fn(&mut RunArgs) -> &mut Option<String>),
    Many(fn(&mut RunArgs) -> &mut Vec<String>),
    /// A number; `None` from the setter when the text does not parse.
    Number(fn(&mut RunArgs, &str) -> Option<()>),
}

/// One flag of `run`: its long names (the first is clap's, the others aliases) and short name.
struct Flag {
    names: &'static [&'static str],
    short: Option<char>,
    slot: Slot,
}

const fn flag(names: &'static [&'static str], short: Option<char>, slot: Slot) -> Flag {
    Flag { names, short, slot }
}

use Slot::{Flag as B, Many as M, Number as N, One as O};

/// The flags of `run` this reader knows; the rest go to clap.
const RUN: &[Flag] = &[
    flag(&["interactive"], Some('i'), B(|a| &mut a.interactive)),
    flag(&["tty"], Some('t'), B(|a| &mut a.tty)),
    flag(&["rm"], None, B(|a| &mut a.rm)),
    flag(&["detach"], Some('d'), B(|a| &mut a.detach)),
    flag(&["read-only"], None, B(|a| &mut a.read_only)),
    flag(&["privileged"], None, B(|a| &mut a.privileged)),
    flag(&["init"], None, B(|a| &mut a.init)),
    flag(&["hpc"], None, B(|a| &mut a.hpc)),
    flag(&["quiet"], Some('q'), B(|a| &mut a.quiet)),
    flag(&["name"], None, O(|a| &mut a.name)),
    flag(&["workdir"], Some('w'), O(|a| &mut a.workdir)),
    flag(&["user"], Some('u'), O(|a| &mut a.user)),
    flag(&["entrypoint"], None, O(|a| &mut a.entrypoint)),
    flag(&["hostname"], Some('h'), O(|a| &mut a.hostname)),
    flag(&["gpus"], None, O(|a| &mut a.gpus)),
    flag(&["mpi"], None, O(|a| &mut a.mpi)),
    flag(&["network", "net"], None, O(|a| &mut a.network)),
    flag(&["ipc"], None, O(|a| &mut a.ipc)),
    flag(&["pid"], None, O(|a| &mut a.pid)),
    flag(&["stop-signal"], None, O(|a| &mut a.stop_signal)),
    flag(&["log-driver"], None, O(|a| &mut a.log_driver)),
    flag(&["platform"], None, O(|a| &mut a.platform)),
    flag(&["userns"], None, O(|a| &mut a.userns)),
    flag(&["memory"], Some('m'), O(|a| &mut a.limits.memory)),
    flag(&["cpuset-cpus"], None, O(|a| &mut a.limits.cpuset_cpus)),
    flag(&["env"], Some('e'), M(|a| &mut a.env)),
    flag(&["volume"], Some('v'), M(|a| &mut a.volume)),
    flag(&["mount"], None, M(|a| &mut a.mount)),
    flag(&["tmpfs"], None, M(|a| &mut a.tmpfs)),
    flag(&["device"], None, M(|a| &mut a.device)),
    flag(&["cap-add"], None, M(|a| &mut a.cap_add)),
    flag(&["cap-drop"], None, M(|a| &mut a.cap_drop)),
    flag(&["security-opt"], None, M(|a| &mut a.security_opt)),
    flag(&["label"], Some('l'), M(|a| &mut a.label)),
    flag(&["ulimit"], None, M(|a| &mut a.ulimit)),
    flag(&["cpus"], None, N(|a, v| number(&mut a.limits.cpus, v))),
    flag(
        &["pids-limit"],
        None,
        N(|a, v| number(&mut a.limits.pids_limit, v)),
    ),
    flag(
        &["stop-timeout"],
        None,
        N(|a, v| number(&mut a.stop_timeout, v)),
    ),
];

// `seen` in `run` is a bit per flag.
const _: () = assert!(RUN.len() <= 64);

fn number<T: std::str::FromStr>(field: &mut Option<T>, text: &str) -> Option<()> {
    *field = Some(text.parse().ok()?);
    Some(())
}

/// The global options (see [`GlobalArgs`]), allowed before and after `run`.
enum Global {
    Root,
    Config,
    DockerConfig,
    Debug,
}

fn global(name: &str) -> Option<Global> {
    Some(match name {
        "--root" => Global::Root,
        "--config" => Global::Config,
        "--docker-config" => Global::DockerConfig,
        "--debug" | "-D" => Global::Debug,
        _ => return None,
    })
}

/// `args` (the program name first) as clap would read them, or `None` where this reader
/// leaves them to clap.
pub(crate) fn run(args: &[OsString]) -> Option<Cli> {
    let mut args = args.iter().skip(1).map(|a| a.to_str());
    let mut globals = GlobalArgs::default();
    let mut seen_globals = [false; 4];
    // Up to `run`: global options only.
    loop {
        let a = args.next()??;
        if a == "run" {
            break;
        }
        take_global(a, &mut args, &mut globals, &mut seen_globals)?;
    }
    let mut run = RunArgs {
        pull: "missing".into(),
        sig_proxy: true,
        disable_content_trust: true,
        ..RunArgs::default()
    };
    let mut seen = 0u64;
    let image = loop {
        let a = args.next()??;
        if !a.starts_with('-') || a == "-" {
            break a;
        }
        if global(a.split_once('=').map_or(a, |(n, _)| n)).is_some() {
            take_global(a, &mut args, &mut globals, &mut seen_globals)?;
            continue;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let i = RUN.iter().position(|f| f.names.contains(&name))?;
            let value = match (&RUN[i].slot, inline) {
                (Slot::Flag(_), Some(_)) => return None,
                (Slot::Flag(_), None) => None,
                (_, Some(v)) => Some(v),
                (_, None) => Some(value(args.next()?)?),
            };
            set(&mut run, i, value, &mut seen)?;
            continue;
        }
        // A cluster of short flags (`-it`), or one short option and its value (`-e A=1`).
        let shorts = &a[1..];
        for (k, c) in shorts.char_indices() {
            let i = RUN.iter().position(|f| f.short == Some(c))?;
            if matches!(RUN[i].slot, Slot::Flag(_)) {
                set(&mut run, i, None, &mut seen)?;
                continue;
            }
            // Only a lone `-e VALUE`: `-eA=1` and `-ie A=1` are left to clap.
            if k != 0 || shorts.len() != c.len_utf8() {
                return None;
            }
            set(&mut run, i, Some(value(args.next()?)?), &mut seen)?;
        }
    };
    if image.is_empty() {
        return None;
    }
    run.image = image.to_string();
    // Everything after the image is the command, even what looks like a flag (as Docker).
    run.command = args.map(|a| a.map(String::from)).collect::<Option<_>>()?;
    for (seen, (field, var)) in seen_globals.iter().zip([
        (&mut globals.root, EnvVars::BERTH_ROOT),
        (&mut globals.config, EnvVars::BERTH_CONFIG),
        (&mut globals.docker_config, EnvVars::DOCKER_CONFIG),
    ]) {
        if !seen {
            match std::env::var_os(var) {
                // How clap reads an empty variable is its business.
                Some(v) if v.is_empty() => return None,
                v => *field = v.map(Into::into),
            }
        }
    }
    Some(Cli {
        global: globals,
        command: Command::Run(Box::new(run)),
    })
}

/// A flag's value from the next argument; one that looks like a flag is clap's to judge.
fn value(next: Option<&str>) -> Option<&str> {
    next.filter(|v| !v.starts_with('-'))
}

fn take_global<'a>(
    a: &'a str,
    rest: &mut impl Iterator<Item = Option<&'a str>>,
    globals: &mut GlobalArgs,
    seen: &mut [bool; 4],
) -> Option<()> {
    let (name, inline) = match a.split_once('=') {
        Some((n, v)) if n.starts_with("--") => (n, Some(v)),
        _ => (a, None),
    };
    let g = global(name)?;
    let at = g as usize;
    if std::mem::replace(&mut seen[at], true) {
        return None;
    }
    let field = match at {
        0 => &mut globals.root,
        1 => &mut globals.config,
        2 => &mut globals.docker_config,
        _ => {
            globals.debug = true;
            return inline.is_none().then_some(());
        }
    };
    let v = match inline {
        Some(v) => v,
        None => value(rest.next()?)?,
    };
    *field = Some(v.into());
    Some(())
}

fn set(run: &mut RunArgs, i: usize, value: Option<&str>, seen: &mut u64) -> Option<()> {
    // Given twice: clap refuses all but the lists.
    if !matches!(RUN[i].slot, Slot::Many(_))
        && std::mem::replace(seen, *seen | 1 << i) & 1 << i != 0
    {
        return None;
    }
    match (&RUN[i].slot, value) {
        (Slot::Flag(f), None) => *f(run) = true,
        (Slot::One(f), Some(v)) => *f(run) = Some(v.to_string()),
        (Slot::Many(f), Some(v)) => f(run).push(v.to_string()),
        (Slot::Number(f), Some(v)) => f(run, v)?,
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{ArgAction, Args};

    /// Each flag here is clap's flag of the same names, short name and kind of value.
    #[test]
    fn flags_are_clap_flags() {
        let cmd = RunArgs::augment_args(clap::Command::new("run"));
        for f in RUN {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(f.names[0]))
                .unwrap_or_else(|| panic!("--{} is not a flag of run", f.names[0]));
            assert_eq!(arg.get_short(), f.short, "--{}", f.names[0]);
            let aliases = arg.get_all_aliases().unwrap_or_default();
            assert_eq!(aliases, &f.names[1..], "--{}", f.names[0]);
            let action = arg.get_action();
            match f.slot {
                // A go-style bool (see `go_style_bool`): a value only after `=`.
                Slot::Flag(_) => assert!(arg.is_require_equals_set(), "--{}", f.names[0]),
                Slot::Many(_) => assert!(matches!(action, ArgAction::Append), "--{}", f.names[0]),
                Slot::One(_) | Slot::Number(_) => {
                    assert!(matches!(action, ArgAction::Set), "--{}", f.names[0]);
                    assert!(!arg.is_require_equals_set(), "--{}", f.names[0]);
                }
            }
        }
    }

    fn args(argv: &[&str]) -> Vec<OsString> {
        argv.iter().map(Into::into).collect()
    }

    /// More cases in `tests::the_quick_parse_agrees_with_the_whole_tree`.
    #[test]
    fn agrees_with_clap() {
        let same: &[&[&str]] = &[
            &["berth", "run", "img"],
            &["berth", "run", "--rm", "img", "true"],
            &[
                "berth", "--root", "/x", "run", "-d", "--name", "n", "-e", "A=1", "-v", "/a:/b:ro",
                "i",
            ],
            &[
                "berth",
                "--root=/x",
                "-D",
                "run",
                "--cpus",
                "2",
                "img",
                "sh",
                "-c",
                "echo hi",
            ],
            &[
                "berth",
                "run",
                "--net=host",
                "--name=a",
                "-e",
                "X",
                "-e",
                "Y=2",
                "img",
                "-e",
            ],
            &[
                "berth",
                "run",
                "-dit",
                "--init",
                "--read-only",
                "--tmpfs",
                "/t",
                "img",
            ],
            &[
                "berth",
                "run",
                "-u",
                "1000:1000",
                "-w",
                "/w",
                "--mount",
                "type=tmpfs,dst=/m",
                "i",
            ],
            &[
                "berth",
                "run",
                "--pids-limit",
                "10",
                "--stop-timeout",
                "3",
                "-m",
                "1g",
                "img",
            ],
            &[
                "berth",
                "run",
                "--cpuset-cpus",
                "0-1",
                "--cap-add",
                "A",
                "--cap-drop",
                "B",
                "i",
            ],
            &[
                "berth",
                "--config",
                "/c.toml",
                "--docker-config",
                "/d",
                "run",
                "img",
                "a",
                "b",
            ],
            &[
                "berth",
                "run",
                "--device",
                "/dev/null",
                "--security-opt",
                "seccomp=unconfined",
                "i",
            ],
            &[
                "berth", "run", "-l", "a=b", "--label", "c", "--ulimit", "nofile=5", "-q", "img",
            ],
            &[
                "berth", "run", "--userns", "keep-id", "--mpi", "host", "--ipc", "host", "img",
            ],
            &[
                "berth",
                "run",
                "--pid",
                "host",
                "--stop-signal",
                "USR1",
                "--platform",
                "p",
                "i",
            ],
            &[
                "berth",
                "run",
                "--log-driver",
                "none",
                "--privileged",
                "img",
                "--",
                "x",
            ],
            &["berth", "run", "-", "x"],
        ];
        for argv in same {
            let a = args(argv);
            let quick = run(&a).unwrap_or_else(|| panic!("quick refused {argv:?}"));
            let whole = Cli::parse_whole(&a).unwrap();
            assert_eq!(format!("{quick:?}"), format!("{whole:?}"), "{argv:?}");
        }
    }

    /// What this reader leaves to clap: where clap refuses, or where its reading needs clap.
    #[test]
    fn leaves_the_rest_to_clap() {
        let refused: &[&[&str]] = &[
            &["berth", "run"],
            &["berth", "images"],
            &["berth", "run", "--help"],
            &["berth", "run", "--rm=false", "img"],
            &["berth", "run", "--name", "a", "--name", "b", "img"],
            &["berth", "run", "--rm", "--rm", "img"],
            &["berth", "run", "-eA=1", "img"],
            &["berth", "run", "-ie", "A=1", "img"],
            &["berth", "run", "-e", "-x", "img"],
            &["berth", "run", "--cpus", "two", "img"],
            &["berth", "run", "--pids-limit", "-1", "img"],
            &["berth", "run", "--sig-proxy=false", "img"],
            &["berth", "run", "--", "img"],
            &["berth", "run", "--name"],
            &["berth", "--root", "/a", "--root", "/b", "run", "img"],
            &["berth", "--debug=true", "run", "img"],
            &["berth", "run", "-a", "stdout", "img"],
            &["berth", "run", ""],
        ];
        for argv in refused {
            assert!(run(&args(argv)).is_none(), "{argv:?}");
        }
    }
}
