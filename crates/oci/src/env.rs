//! The container's environment, and Docker's `--env-file` format.
//!
//! Docker builds the environment in layers where a later layer replaces a variable in place and
//! appends new ones: its own defaults (`PATH`, `HOSTNAME`, `TERM`), then the image's `ENV`, then
//! `-e`/`--env-file`. A bare `NAME` in a later layer unsets the variable. `HOME` comes last and
//! only fills a gap, from the user's passwd entry. The hpc profile puts the caller's own
//! environment (minus [`HPC_ENV_DENYLIST`]) underneath the image's, and pins `HOME` to the
//! caller's home, which is bound in. Contributions (Slurm, CPU visibility) only fill gaps.

use oci_spec::image::Config;

use crate::{OciError, Profile, RunOptions};

/// The `PATH` a container gets when the image sets none; the same as Docker's.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Variables of the caller's environment that the hpc profile does not pass through. An entry
/// ending in `*` is a prefix. Each group has its reason:
/// - `PATH`: the image's `PATH` finds the image's programs, the host's names host directories;
/// - `LD_*` loader variables: host libraries loaded into image binaries crash them;
/// - `XDG_RUNTIME_DIR`, `DBUS_*`, `SSH_AUTH_SOCK`, `SSH_AGENT_PID`, `DISPLAY`, `XAUTHORITY`:
///   sockets and sessions of the login, unreachable or meaningless inside;
/// - `container`, `APPTAINER_*`, `SINGULARITY_*`, `BERTH_*`: they describe the container the
///   caller is in or the engine's own settings, not this container;
/// - `BASH_FUNC_*`: exported shell functions (Lmod's `module`) that call host programs.
pub const HPC_ENV_DENYLIST: &[&str] = &[
    "PATH",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "XDG_RUNTIME_DIR",
    "DBUS_*",
    "SSH_AUTH_SOCK",
    "SSH_AGENT_PID",
    "DISPLAY",
    "XAUTHORITY",
    "container",
    "APPTAINER_*",
    "SINGULARITY_*",
    "BERTH_*",
    "BASH_FUNC_*",
];

fn denied(key: &str) -> bool {
    HPC_ENV_DENYLIST.iter().any(|d| match d.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => key == *d,
    })
}

/// An environment under construction: ordered, one entry per name.
#[derive(Default)]
struct Env(Vec<(String, String)>);

impl Env {
    fn set(&mut self, key: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.0.push((key.to_string(), value.to_string())),
        }
    }

    fn fill(&mut self, key: &str, value: &str) {
        if !self.0.iter().any(|(k, _)| k == key) {
            self.0.push((key.to_string(), value.to_string()));
        }
    }

    /// Applies a `NAME=value` entry, or unsets `NAME` for a bare name, as Docker does.
    fn apply(&mut self, entry: &str) -> Result<(), OciError> {
        match entry.split_once('=') {
            Some(("", _)) => Err(OciError::InvalidEnv(entry.to_string())),
            Some((key, value)) => {
                self.set(key, value);
                Ok(())
            }
            None if entry.is_empty() => Err(OciError::InvalidEnv(entry.to_string())),
            None => {
                self.0.retain(|(k, _)| k != entry);
                Ok(())
            }
        }
    }
}

/// The process environment as `NAME=value` strings. `home` is the resolved user's home,
/// `hostname` the container's own when it has a UTS namespace.
pub(crate) fn environment(
    image: &Config,
    opts: &RunOptions,
    home: &str,
    hostname: Option<&str>,
) -> Result<Vec<String>, OciError> {
    let mut env = Env::default();
    env.set("PATH", DEFAULT_PATH);
    if let Some(h) = hostname {
        env.set("HOSTNAME", h);
    }
    let hpc = opts.profile == Profile::Hpc;
    if hpc {
        for (k, v) in &opts.caller.env {
            if !k.is_empty() && !denied(k) {
                env.set(k, v);
            }
        }
    } else if opts.tty {
        env.set("TERM", "xterm");
    }
    for entry in image.env().iter().flatten() {
        env.apply(entry)?;
    }
    if hpc {
        env.set("HOME", home);
    }
    for entry in &opts.env {
        env.apply(entry)?;
    }
    env.fill("HOME", home);
    if opts.tty {
        env.fill("TERM", "xterm");
    }
    for (k, v) in &opts.extra_env {
        env.fill(k, v);
    }
    Ok(env.0.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// Parses the contents of an `--env-file` as Docker does, into `NAME=value` entries.
///
/// - leading whitespace is dropped; empty lines and lines starting with `#` are skipped;
/// - `NAME=value` passes as is: the value is not trimmed and quotes are kept literally;
/// - a bare `NAME` takes the value `lookup` gives (the caller's environment) and is left out
///   when it has none;
/// - a name containing whitespace, or an empty name, is an error naming `file:line`.
///
/// A byte-order mark at the start of the file is ignored.
pub fn parse_env_file(
    contents: &str,
    file: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, OciError> {
    let contents = contents.strip_prefix('\u{feff}').unwrap_or(contents);
    let mut out = Vec::new();
    for (index, raw) in contents.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error = |reason: String| OciError::EnvFile {
            file: file.to_string(),
            line: index + 1,
            reason,
        };
        let (name, value) = match line.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (line, None),
        };
        if name.is_empty() {
            return Err(error(format!("no variable name in {line:?}")));
        }
        if name.contains([' ', '\t']) {
            return Err(error(format!("variable {name:?} contains whitespace")));
        }
        match value {
            Some(v) => out.push(format!("{name}={v}")),
            None => {
                if let Some(v) = lookup(name) {
                    out.push(format!("{name}={v}"));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Caller;
    use oci_spec::image::ConfigBuilder;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn image(env: &[&str]) -> Config {
        ConfigBuilder::default().env(strings(env)).build().unwrap()
    }

    fn get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
        env.iter().find_map(|e| e.strip_prefix(&format!("{key}=")))
    }

    #[test]
    fn docker_layers_later_wins_in_place() {
        let img = image(&["PATH=/img/bin", "A=image", "B=image", "GONE=x"]);
        let opts = RunOptions {
            env: strings(&["B=flag", "C=flag", "GONE", "HOSTNAME=mine"]),
            tty: true,
            ..RunOptions::default()
        };
        let env = environment(&img, &opts, "/root", Some("abc")).unwrap();
        assert_eq!(
            env,
            strings(&[
                "PATH=/img/bin",
                "HOSTNAME=mine",
                "TERM=xterm",
                "A=image",
                "B=flag",
                "C=flag",
                "HOME=/root"
            ])
        );
    }

    #[test]
    fn precedence_table() {
        type Case = (
            &'static [&'static str],
            &'static [&'static str],
            &'static str,
            Option<&'static str>,
        );
        // (image ENV, -e, variable, expected value)
        let cases: &[Case] = &[
            (&[], &[], "PATH", Some(DEFAULT_PATH)),
            (&["PATH=/x"], &[], "PATH", Some("/x")),
            (&["PATH=/x"], &["PATH=/y"], "PATH", Some("/y")),
            (&[], &[], "HOME", Some("/home/u")),
            (&["HOME=/img"], &[], "HOME", Some("/img")),
            (&[], &["HOME=/flag"], "HOME", Some("/flag")),
            (&[], &[], "HOSTNAME", Some("h")),
            (&["X=1"], &["X"], "X", None),
            (&[], &[], "TERM", None),
            (&[], &[], "OMP_NUM_THREADS", Some("4")),
            (&["OMP_NUM_THREADS=1"], &[], "OMP_NUM_THREADS", Some("1")),
            (&[], &["OMP_NUM_THREADS=2"], "OMP_NUM_THREADS", Some("2")),
        ];
        for (img, flags, key, want) in cases {
            let opts = RunOptions {
                env: strings(flags),
                extra_env: vec![("OMP_NUM_THREADS".into(), "4".into())],
                ..RunOptions::default()
            };
            let env = environment(&image(img), &opts, "/home/u", Some("h")).unwrap();
            assert_eq!(get(&env, key), *want, "image {img:?} -e {flags:?}: {key}");
        }
    }

    #[test]
    fn hpc_passes_the_caller_through_minus_the_denylist() {
        let caller = Caller {
            env: vec![
                ("PATH".into(), "/host/bin".into()),
                ("LANG".into(), "C.UTF-8".into()),
                ("LD_LIBRARY_PATH".into(), "/opt/lib".into()),
                ("DBUS_SESSION_BUS_ADDRESS".into(), "unix:x".into()),
                ("BASH_FUNC_module%%".into(), "() { x; }".into()),
                ("TERM".into(), "xterm-256color".into()),
                ("HOME".into(), "/home/alice".into()),
                ("FOO".into(), "host".into()),
                ("SLURM_JOB_ID".into(), "7".into()),
            ],
            ..Caller::default()
        };
        let opts = RunOptions {
            profile: Profile::Hpc,
            caller,
            env: strings(&["BAR=flag"]),
            tty: true,
            ..RunOptions::default()
        };
        let img = image(&["PATH=/img/bin", "FOO=image", "HOME=/root"]);
        let env = environment(&img, &opts, "/home/alice", None).unwrap();
        assert_eq!(get(&env, "PATH"), Some("/img/bin"));
        assert_eq!(get(&env, "LANG"), Some("C.UTF-8"));
        assert_eq!(get(&env, "FOO"), Some("image"));
        assert_eq!(get(&env, "HOME"), Some("/home/alice"));
        assert_eq!(get(&env, "BAR"), Some("flag"));
        assert_eq!(get(&env, "TERM"), Some("xterm-256color"));
        assert_eq!(get(&env, "SLURM_JOB_ID"), Some("7"));
        assert_eq!(get(&env, "HOSTNAME"), None);
        for gone in [
            "LD_LIBRARY_PATH",
            "DBUS_SESSION_BUS_ADDRESS",
            "BASH_FUNC_module%%",
        ] {
            assert_eq!(get(&env, gone), None, "{gone}");
        }
    }

    #[test]
    fn empty_names_are_refused() {
        for bad in ["=x", ""] {
            let opts = RunOptions {
                env: strings(&[bad]),
                ..RunOptions::default()
            };
            assert_eq!(
                environment(&Config::default(), &opts, "/", None).unwrap_err(),
                OciError::InvalidEnv(bad.into())
            );
        }
    }

    fn host(name: &str) -> Option<String> {
        match name {
            "USER" => Some("alice".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn env_file_follows_docker_rules() {
        let text =
            "\u{feff}# comment\n\n   A=1\nB= spaced value \nC=\"quoted\"\n  # indented comment\n\
                    USER\nMISSING\nEMPTY\nD=x=y\r\nE=\n";
        let got = parse_env_file(text, "my.env", &host).unwrap();
        assert_eq!(
            got,
            strings(&[
                "A=1",
                "B= spaced value ",
                "C=\"quoted\"",
                "USER=alice",
                "EMPTY=",
                "D=x=y",
                "E="
            ])
        );
    }

    #[test]
    fn env_file_errors_name_file_and_line() {
        let cases = [
            ("A=1\nBAD KEY=2\n", 2, "contains whitespace"),
            ("A=1\n\n=value\n", 3, "no variable name"),
            ("TRAILING \n", 1, "contains whitespace"),
        ];
        for (text, line, reason) in cases {
            let err = parse_env_file(text, "/tmp/x.env", &host).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("/tmp/x.env:{line}: ")) && msg.contains(reason),
                "{text:?}: {msg}"
            );
        }
    }
}
