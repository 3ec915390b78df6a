//! Where `run`, `create` and `exec` stop reading options, as Docker's parser does: at the image
//! (or container), so that everything after it is the command even where it looks like one of
//! their own flags (`run --entrypoint sh IMAGE -c 'echo hi'`, `run IMAGE --rm`). clap would
//! take a known flag there; a `--` put in right after the image stops it.

use std::ffi::OsString;

/// Inserts `--` after the image of a `run`/`create` (or the container of an `exec`), also
/// under `container`, when arguments follow it (unless a `--` already ended the options
/// before it). `top` is the command
/// tree the arguments will be parsed with (its global options count); without the subcommand
/// in it, or for anything it cannot follow (an unknown option), the arguments stay as they are
/// and the parser reports what it finds.
pub(crate) fn end_options_at_operand(top: &clap::Command, args: &mut Vec<OsString>) {
    let Some(name_at) = first_operand(&[top], args, 1) else {
        return;
    };
    let mut sub = args[name_at].to_str().and_then(|n| top.find_subcommand(n));
    let mut name_at = name_at;
    if let Some(group) = sub.filter(|s| s.get_name() == "container") {
        let Some(at) = first_operand(&[group, top], args, name_at + 1) else {
            return;
        };
        sub = args[at].to_str().and_then(|n| group.find_subcommand(n));
        name_at = at;
    }
    let Some(sub) = sub.filter(|s| matches!(s.get_name(), "run" | "create" | "exec")) else {
        return;
    };
    let Some(operand) = first_operand(&[sub, top], args, name_at + 1) else {
        return;
    };
    if operand + 1 < args.len() {
        args.insert(operand + 1, "--".into());
    }
}

/// The index of the first argument from `from` on that is not an option or an option's value,
/// for options of `cmds`; `None` at `--`, at the end, or at anything not understood.
fn first_operand(cmds: &[&clap::Command], args: &[OsString], from: usize) -> Option<usize> {
    let mut i = from;
    while i < args.len() {
        let a = args[i].to_str()?;
        if a == "--" {
            return None;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            // Aliases (which clap hands out as a new Vec each time) only when no name matched.
            let arg = find(cmds, |x| x.get_long() == Some(name)).or_else(|| {
                find(cmds, |x| {
                    x.get_all_aliases().is_some_and(|al| al.contains(&name))
                })
            })?;
            i += if takes_next(arg) && !inline { 2 } else { 1 };
            continue;
        }
        if let Some(shorts) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            // A cluster of flags (`-it`), the last of which may take the next argument, or a
            // flag with its value attached (`-eA=1`).
            let mut next = false;
            for (k, c) in shorts.char_indices() {
                let arg = find(cmds, |x| x.get_short() == Some(c))?;
                if arg.get_action().takes_values() {
                    next = takes_next(arg) && k + c.len_utf8() == shorts.len();
                    break;
                }
            }
            i += if next { 2 } else { 1 };
            continue;
        }
        return Some(i);
    }
    None
}

fn find<'a>(
    cmds: &[&'a clap::Command],
    pred: impl Fn(&clap::Arg) -> bool,
) -> Option<&'a clap::Arg> {
    cmds.iter()
        .find_map(|c| c.get_arguments().find(|a| !a.is_positional() && pred(a)))
}

/// Whether the option's value is the next argument (`--name x`); one spelled `--flag=value`
/// only (`--sig-proxy=false`) never takes it.
fn takes_next(arg: &clap::Arg) -> bool {
    arg.get_action().takes_values() && !arg.is_require_equals_set()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn ended(argv: &[&str]) -> Vec<String> {
        let mut args: Vec<OsString> = argv.iter().map(Into::into).collect();
        end_options_at_operand(&crate::Cli::command(), &mut args);
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn options_end_at_the_image_or_container() {
        let cases: &[(&[&str], &[&str])] = &[
            (
                &["berth", "run", "--entrypoint", "sh", "img", "-c", "x"],
                &["berth", "run", "--entrypoint", "sh", "img", "--", "-c", "x"],
            ),
            (
                &[
                    "berth", "--root", "/r", "run", "-it", "-e", "A=1", "-eB=2", "img", "--rm",
                ],
                &[
                    "berth", "--root", "/r", "run", "-it", "-e", "A=1", "-eB=2", "img", "--",
                    "--rm",
                ],
            ),
            (
                &["berth", "container", "create", "--name=n", "img", "-l"],
                &[
                    "berth",
                    "container",
                    "create",
                    "--name=n",
                    "img",
                    "--",
                    "-l",
                ],
            ),
            (
                &["berth", "exec", "-u", "0", "c", "-x"],
                &["berth", "exec", "-u", "0", "c", "--", "-x"],
            ),
            // Docker's command here is `-- -c`, as it reads nothing after the image.
            (
                &["berth", "run", "img", "--", "-c"],
                &["berth", "run", "img", "--", "--", "-c"],
            ),
            (
                &["berth", "run", "--sig-proxy=false", "--rm", "img", "ls"],
                &[
                    "berth",
                    "run",
                    "--sig-proxy=false",
                    "--rm",
                    "img",
                    "--",
                    "ls",
                ],
            ),
        ];
        for (given, want) in cases {
            assert_eq!(ended(given), *want, "{given:?}");
        }
        // Left alone: nothing after the image, a `--` already there, another command, or an
        // option this does not know (the parser reports it).
        for same in [
            &["berth", "run", "img"][..],
            &["berth", "run", "--", "img", "-c"],
            &["berth", "ps", "-a"],
            &["berth", "run", "--bogus", "img", "-c"],
            &["berth", "images", "run", "-q"],
        ] {
            assert_eq!(ended(same), *same, "{same:?}");
        }
    }
}
