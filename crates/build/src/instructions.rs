//! The instructions of a Dockerfile, as data.

use std::time::Duration;

use crate::{Heredoc, Pos};

/// A command written either as a shell string or as a JSON array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    /// Shell form: run by the stage's `SHELL` (default `/bin/sh -c`).
    Shell(String),
    /// Exec (JSON) form: argv as written.
    Exec(Vec<String>),
}

/// An `ARG` declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The name.
    pub name: String,
    /// The default as written (quotes and variables not yet processed), if any.
    pub default: Option<String>,
}

/// The kind of a `RUN --mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// `type=bind` (the default): a directory of the context or of another stage.
    Bind,
    /// `type=cache`: a directory kept between builds.
    Cache,
    /// `type=secret`: a secret given to the build.
    Secret,
    /// `type=ssh`: an SSH agent socket.
    Ssh,
    /// `type=tmpfs`: an empty tmpfs.
    Tmpfs,
}

/// How a cache mount is shared between concurrent builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSharing {
    /// Used by all at once (the default).
    Shared,
    /// Each writer gets its own copy.
    Private,
    /// One user at a time.
    Locked,
}

/// One `RUN --mount=…`, its options parsed into fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    /// `type=`.
    pub kind: MountKind,
    /// `target=` (also `dst=`, `destination=`).
    pub target: Option<String>,
    /// `source=` (also `src=`).
    pub source: Option<String>,
    /// `from=`: a stage or image to take the source from.
    pub from: Option<String>,
    /// `id=`: the cache or secret id.
    pub id: Option<String>,
    /// `ro`/`readonly` or `rw`/`readwrite`; `None` when not given (bind mounts then default to
    /// read-only, caches to read-write).
    pub readonly: Option<bool>,
    /// `sharing=` for caches.
    pub sharing: Option<CacheSharing>,
    /// `mode=` in octal.
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
    /// `required` for secrets and ssh.
    pub required: bool,
    /// `env=` for secrets: expose the secret as this environment variable.
    pub env: Option<String>,
    /// `size=` for tmpfs, as written.
    pub size: Option<String>,
}

/// `HEALTHCHECK CMD …` with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// The check command.
    pub test: ShellOrExec,
    /// `--interval`.
    pub interval: Option<Duration>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--start-period`.
    pub start_period: Option<Duration>,
    /// `--start-interval`.
    pub start_interval: Option<Duration>,
    /// `--retries`.
    pub retries: Option<u32>,
}

/// One instruction. Fields hold the words as written (after quote-aware splitting, with the
/// quotes still in them) until [`Dockerfile::resolve_stage`](crate::Dockerfile::resolve_stage)
/// substitutes variables and removes quotes in the instructions Docker substitutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `RUN [--mount=…] [--network=…] [--security=…] command`.
    Run {
        /// The command.
        cmd: ShellOrExec,
        /// `--mount=` flags, in order.
        mounts: Vec<RunMount>,
        /// `--network=` (`default`, `none` or `host`).
        network: Option<String>,
        /// `--security=` as written.
        security: Option<String>,
        /// Heredocs opened on the line, in order.
        heredocs: Vec<Heredoc>,
    },
    /// `CMD`.
    Cmd(ShellOrExec),
    /// `ENTRYPOINT`.
    Entrypoint(ShellOrExec),
    /// `LABEL k=v …`.
    Label(Vec<(String, String)>),
    /// `MAINTAINER name` (becomes the `maintainer` label).
    Maintainer(String),
    /// `EXPOSE port[/proto] …`.
    Expose(Vec<String>),
    /// `ENV k=v …` or legacy `ENV k v`.
    Env(Vec<(String, String)>),
    /// `ADD`; a source that is a heredoc marker (`<<EOF`) names one of `heredocs`.
    Add {
        /// Sources as written; `<<NAME` stands for the heredoc of that name.
        srcs: Vec<String>,
        /// The destination.
        dest: String,
        /// `--chown=`.
        chown: Option<String>,
        /// `--chmod=`.
        chmod: Option<String>,
        /// `--checksum=` for URL sources.
        checksum: Option<String>,
        /// `--link`.
        link: bool,
        /// `--keep-git-dir` for Git sources.
        keep_git_dir: bool,
        /// `--exclude=` patterns.
        exclude: Vec<String>,
        /// Heredocs opened on the line, in order.
        heredocs: Vec<Heredoc>,
    },
    /// `COPY`; a source that is a heredoc marker (`<<EOF`) names one of `heredocs`.
    Copy {
        /// Sources as written; `<<NAME` stands for the heredoc of that name.
        srcs: Vec<String>,
        /// The destination.
        dest: String,
        /// `--from=`: a stage name or number, or an image.
        from: Option<String>,
        /// `--chown=`.
        chown: Option<String>,
        /// `--chmod=`.
        chmod: Option<String>,
        /// `--link`.
        link: bool,
        /// `--parents`.
        parents: bool,
        /// `--exclude=` patterns.
        exclude: Vec<String>,
        /// Heredocs opened on the line, in order.
        heredocs: Vec<Heredoc>,
    },
    /// `VOLUME`.
    Volume(Vec<String>),
    /// `USER user[:group]`.
    User(String),
    /// `WORKDIR`.
    Workdir(String),
    /// `ARG name[=default] …`.
    Arg(Vec<Arg>),
    /// `ONBUILD instruction`: recorded, never substituted.
    Onbuild(Box<Instruction>),
    /// `STOPSIGNAL`.
    Stopsignal(String),
    /// `HEALTHCHECK …`; `None` for `HEALTHCHECK NONE`.
    Healthcheck(Option<Healthcheck>),
    /// `SHELL ["…", …]`.
    Shell(Vec<String>),
}

impl Instruction {
    /// The keyword in upper case (`RUN`, `COPY`, …).
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::Run { .. } => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Label(_) => "LABEL",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Env(_) => "ENV",
            Instruction::Add { .. } => "ADD",
            Instruction::Copy { .. } => "COPY",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Arg(_) => "ARG",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::Stopsignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Shell(_) => "SHELL",
        }
    }
}

/// An instruction with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The instruction.
    pub instruction: Instruction,
    /// Where its keyword is.
    pub pos: Pos,
    /// The source line holding the keyword, as written.
    pub source: String,
    /// The whole instruction on one line: continuations joined, heredoc bodies left out
    /// (what `ONBUILD` records as its trigger).
    pub text: String,
}

/// Reads a Go-style duration (`30s`, `1m30s`, `1.5h`, `500ms`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[u..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// Parses the value of one `--mount=` flag (comma-separated `key=value` fields).
pub(crate) fn parse_mount(spec: &str) -> Result<RunMount, String> {
    let mut m = RunMount {
        kind: MountKind::Bind,
        target: None,
        source: None,
        from: None,
        id: None,
        readonly: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        env: None,
        size: None,
    };
    let num = |k: &str, v: &str, radix| {
        u32::from_str_radix(v, radix).map_err(|_| format!("invalid {k} in --mount: {v:?}"))
    };
    let flag = |k: &str, v: Option<&str>| match v.map(str::to_ascii_lowercase).as_deref() {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => Err(format!("invalid value for {k} in --mount: {other:?}")),
    };
    for field in split_fields(spec) {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.to_string())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = || {
            v.clone()
                .ok_or_else(|| format!("--mount option {k} needs a value"))
        };
        match k.as_str() {
            "type" => {
                m.kind = match need()?.as_str() {
                    "bind" => MountKind::Bind,
                    "cache" => MountKind::Cache,
                    "secret" => MountKind::Secret,
                    "ssh" => MountKind::Ssh,
                    "tmpfs" => MountKind::Tmpfs,
                    t => return Err(format!("unknown mount type {t:?}")),
                }
            }
            "target" | "dst" | "destination" => m.target = Some(need()?),
            "source" | "src" => m.source = Some(need()?),
            "from" => m.from = Some(need()?),
            "id" => m.id = Some(need()?),
            "ro" | "readonly" => m.readonly = Some(flag(&k, v.as_deref())?),
            "rw" | "readwrite" => m.readonly = Some(!flag(&k, v.as_deref())?),
            "required" => m.required = flag(&k, v.as_deref())?,
            "sharing" => {
                m.sharing = Some(match need()?.as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    s => return Err(format!("unknown cache sharing {s:?}")),
                })
            }
            "mode" => m.mode = Some(num(&k, &need()?, 8)?),
            "uid" => m.uid = Some(num(&k, &need()?, 10)?),
            "gid" => m.gid = Some(num(&k, &need()?, 10)?),
            "env" => m.env = Some(need()?),
            "size" => m.size = Some(need()?),
            _ => return Err(format!("unexpected key {k:?} in --mount")),
        }
    }
    Ok(m)
}

/// Splits at commas outside double quotes, removing the quotes (CSV as BuildKit reads it).
fn split_fields(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            _ => out.last_mut().expect("never empty").push(c),
        }
    }
    out.retain(|f| !f.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok: &[(&str, f64)] = &[
            ("30s", 30.0),
            ("1m30s", 90.0),
            ("1.5h", 5400.0),
            ("500ms", 0.5),
            ("0", 0.0),
        ];
        for (s, secs) in ok {
            assert_eq!(parse_duration(s).unwrap().as_secs_f64(), *secs, "{s}");
        }
        for s in ["", "30", "5x", "s", "1..2s"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
    }

    #[test]
    fn mounts() {
        let m = parse_mount("type=cache,target=/root/.cache,sharing=locked,id=pip").unwrap();
        assert_eq!(m.kind, MountKind::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(m.sharing, Some(CacheSharing::Locked));
        assert_eq!(m.id.as_deref(), Some("pip"));
        let m = parse_mount("type=secret,id=tok,env=TOKEN,required").unwrap();
        assert_eq!((m.kind, m.required), (MountKind::Secret, true));
        assert_eq!(m.env.as_deref(), Some("TOKEN"));
        let m = parse_mount("target=/src,from=build,source=/out,rw").unwrap();
        assert_eq!(m.kind, MountKind::Bind);
        assert_eq!(m.readonly, Some(false));
        assert_eq!(m.from.as_deref(), Some("build"));
        let m = parse_mount("type=cache,dst=/c,mode=0755,uid=1000,gid=1000").unwrap();
        assert_eq!(
            (m.mode, m.uid, m.gid),
            (Some(0o755), Some(1000), Some(1000))
        );
        let m = parse_mount("type=bind,\"source=a,b\",target=/x").unwrap();
        assert_eq!(m.source.as_deref(), Some("a,b"));
        for bad in [
            "type=nfs",
            "type=cache,color=red",
            "type=cache,sharing=some",
            "type=cache,mode=9",
            "type=cache,target",
            "ro=maybe",
        ] {
            assert!(parse_mount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keywords() {
        assert_eq!(Instruction::User("x".into()).keyword(), "USER");
        assert_eq!(Instruction::Healthcheck(None).keyword(), "HEALTHCHECK");
    }
}
