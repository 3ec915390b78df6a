//! The argv of a `RUN` step, heredocs included, as BuildKit forms it.

use crate::{Heredoc, ShellOrExec};

/// Where a `RUN <<EOF` script that starts with `#!` is bound inside the container.
const PIPES: &str = "/dev/pipes";

/// Files a step needs inside its container: `(absolute path, contents)`.
pub type StepFiles = Vec<(String, Vec<u8>)>;

/// The command a `RUN` step executes and the files it needs bound into the container.
///
/// Without heredocs the shell form runs as `SHELL + [command]`. A line that is only a heredoc
/// marker (`RUN <<EOF`) runs the body itself: as an executable file when it starts with `#!`,
/// else as the shell's command string. Otherwise the bodies are appended to the command, each
/// followed by its delimiter, so that the shell reads them as the heredocs they are.
pub fn run_argv(
    cmd: &ShellOrExec,
    heredocs: &[Heredoc],
    shell: &[String],
) -> Result<(Vec<String>, StepFiles), String> {
    let line = match cmd {
        ShellOrExec::Exec(v) if heredocs.is_empty() => return Ok((v.clone(), Vec::new())),
        ShellOrExec::Exec(_) => return Err("heredocs need the shell form of RUN".into()),
        ShellOrExec::Shell(s) => s,
    };
    let with_shell = |s: String| shell.iter().cloned().chain([s]).collect::<Vec<_>>();
    let Some(first) = heredocs.first() else {
        return Ok((with_shell(line.clone()), Vec::new()));
    };
    if heredocs.len() == 1 && is_only_marker(line.trim(), &first.name) {
        let body = first.text();
        if body.starts_with("#!") {
            if first.name.contains('/') {
                return Err(format!("invalid heredoc name {:?}", first.name));
            }
            let path = format!("{PIPES}/{}", first.name);
            return Ok((vec![path.clone()], vec![(path, body.into_bytes())]));
        }
        return Ok((with_shell(body), Vec::new()));
    }
    let mut script = line.clone();
    for h in heredocs {
        script.push('\n');
        script.push_str(&h.content);
        script.push_str(&h.name);
    }
    Ok((with_shell(script), Vec::new()))
}

/// Whether `word` is `<<NAME`, `<<-NAME` or either with the name quoted.
fn is_only_marker(word: &str, name: &str) -> bool {
    let Some(rest) = word.strip_prefix("<<") else {
        return false;
    };
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let unquoted = rest
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .or_else(|| rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
        .unwrap_or(rest);
    unquoted == name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(name: &str, content: &str, strip_tabs: bool) -> Heredoc {
        Heredoc {
            name: name.into(),
            content: content.into(),
            expand: true,
            strip_tabs,
            fd: None,
        }
    }

    fn sh() -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into()]
    }

    #[test]
    fn plain_and_exec_forms() {
        let (argv, files) = run_argv(&ShellOrExec::Shell("echo hi".into()), &[], &sh()).unwrap();
        assert_eq!(argv, ["/bin/sh", "-c", "echo hi"]);
        assert!(files.is_empty());
        let exec = ShellOrExec::Exec(vec!["ls".into()]);
        assert_eq!(run_argv(&exec, &[], &sh()).unwrap().0, ["ls"]);
        assert!(run_argv(&exec, &[doc("E", "x\n", false)], &sh()).is_err());
    }

    #[test]
    fn a_lone_marker_runs_the_body() {
        let cmd = ShellOrExec::Shell("<<-EOF".into());
        let (argv, _) = run_argv(&cmd, &[doc("EOF", "\techo a\n\techo b\n", true)], &sh()).unwrap();
        assert_eq!(argv, ["/bin/sh", "-c", "echo a\necho b\n"]);
        let cmd = ShellOrExec::Shell("<<'EOF'".into());
        let (argv, files) = run_argv(
            &cmd,
            &[doc("EOF", "#!/bin/busybox sh\necho $0\n", false)],
            &sh(),
        )
        .unwrap();
        assert_eq!(argv, ["/dev/pipes/EOF"]);
        assert_eq!(files[0].0, "/dev/pipes/EOF");
        assert!(files[0].1.starts_with(b"#!/bin/busybox sh\n"));
    }

    #[test]
    fn other_lines_keep_their_heredocs_for_the_shell() {
        let cmd = ShellOrExec::Shell("cat <<A > /a && cat <<-B > /b".into());
        let docs = [doc("A", "one\n", false), doc("B", "\ttwo\n", true)];
        let (argv, _) = run_argv(&cmd, &docs, &sh()).unwrap();
        assert_eq!(argv[2], "cat <<A > /a && cat <<-B > /b\none\nA\n\ttwo\nB");
    }
}
