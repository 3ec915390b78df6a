//! Variable substitution in a stage's instructions, with Docker's ARG and ENV scoping.

use std::collections::BTreeMap;

use crate::instructions::{Instruction, Located};
use crate::{expand, Dockerfile, ParseError};

/// Proxy build arguments Docker accepts without an `ARG` declaration. They reach `RUN` steps
/// (see [`Resolved::args`]) but are not substituted into other instructions.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Platform build arguments usable in `FROM` lines without an `ARG` declaration (the builder
/// passes their values as build arguments). Inside a stage they need `ARG NAME` like others.
pub const PLATFORM_ARGS: &[&str] = &[
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
];

/// One instruction of a stage after substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The instruction with variables substituted and quotes removed where Docker does so.
    pub step: Located,
    /// The build arguments in scope at this step with their values: declared `ARG`s that have a
    /// value, then proxy build arguments. `RUN` sees them as environment variables.
    pub args: Vec<(String, String)>,
}

/// Calls `f` on every string Docker substitutes in `ins` (flags included). `RUN`, `CMD`,
/// `ENTRYPOINT`, `SHELL`, `HEALTHCHECK` and `ONBUILD` are left alone: the shell or a later build
/// does their substitution.
pub(crate) fn for_each_word(
    ins: &mut Instruction,
    f: &mut dyn FnMut(&mut String) -> Result<(), String>,
) -> Result<(), String> {
    let opt = |o: &mut Option<String>, f: &mut dyn FnMut(&mut String) -> Result<(), String>| {
        o.as_mut().map_or(Ok(()), f)
    };
    match ins {
        Instruction::Run { mounts, .. } => {
            for m in mounts {
                for o in [
                    &mut m.target,
                    &mut m.source,
                    &mut m.from,
                    &mut m.id,
                    &mut m.env,
                ] {
                    opt(o, f)?;
                }
            }
        }
        Instruction::Env(pairs) | Instruction::Label(pairs) => {
            for (k, v) in pairs {
                f(k)?;
                f(v)?;
            }
        }
        Instruction::Expose(list) | Instruction::Volume(list) => list.iter_mut().try_for_each(f)?,
        Instruction::User(s) | Instruction::Workdir(s) | Instruction::Stopsignal(s) => f(s)?,
        Instruction::Arg(args) => {
            for a in args {
                opt(&mut a.default, f)?;
            }
        }
        Instruction::Add {
            srcs,
            dest,
            chown,
            chmod,
            checksum,
            exclude,
            ..
        } => {
            srcs.iter_mut()
                .filter(|s| !s.starts_with("<<"))
                .try_for_each(&mut *f)?;
            f(dest)?;
            for o in [chown, chmod, checksum] {
                opt(o, f)?;
            }
            exclude.iter_mut().try_for_each(f)?;
        }
        Instruction::Copy {
            srcs,
            dest,
            from,
            chown,
            chmod,
            exclude,
            ..
        } => {
            srcs.iter_mut()
                .filter(|s| !s.starts_with("<<"))
                .try_for_each(&mut *f)?;
            f(dest)?;
            for o in [from, chown, chmod] {
                opt(o, f)?;
            }
            exclude.iter_mut().try_for_each(f)?;
        }
        Instruction::Cmd(_)
        | Instruction::Entrypoint(_)
        | Instruction::Maintainer(_)
        | Instruction::Onbuild(_)
        | Instruction::Healthcheck(_)
        | Instruction::Shell(_) => {}
    }
    Ok(())
}

/// Values of the global ARGs (those before the first `FROM`), build arguments winning.
pub(crate) fn global_values(
    args: &[crate::Arg],
    build_args: &BTreeMap<String, String>,
    escape: char,
) -> Result<BTreeMap<String, String>, String> {
    let mut values = BTreeMap::new();
    for a in args {
        let v = match (build_args.get(&a.name), &a.default) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(d)) => Some(expand(d, &|n| values.get(n).cloned(), escape)?),
            (None, None) => None,
        };
        if let Some(v) = v {
            values.insert(a.name.clone(), v);
        }
    }
    Ok(values)
}

impl Dockerfile {
    /// Substitutes variables in the instructions of stage `index`, the way Docker does while
    /// building it. `image_env` is the environment of the stage's base image (empty for
    /// `scratch`); it and `ENV` come first when a name is looked up, then `ARG`s declared in the
    /// stage (whose values come from build arguments, the `ARG` default, or for `ARG NAME` alone
    /// the global `ARG` of the same name). Global ARGs are not visible unless redeclared.
    pub fn resolve_stage(
        &self,
        index: usize,
        image_env: &[(String, String)],
    ) -> Result<Vec<Resolved>, ParseError> {
        let stage = &self.stages[index];
        let escape = self.directives.escape;
        let mut env: Vec<(String, String)> = image_env.to_vec();
        let mut args: Vec<(String, Option<String>)> = Vec::new();
        let mut out = Vec::new();
        for step in &stage.instructions {
            let err = |m: String| ParseError {
                file: self.file.clone(),
                line: step.pos.line,
                col: step.pos.col,
                message: m,
                source_line: step.source.clone(),
            };
            let lookup = |n: &str| -> Option<String> {
                env.iter()
                    .rev()
                    .find(|(k, _)| k == n)
                    .map(|(_, v)| v.clone())
                    .or_else(|| {
                        args.iter()
                            .rev()
                            .find(|(k, _)| k == n)
                            .and_then(|(_, v)| v.clone())
                    })
            };
            let mut ins = step.instruction.clone();
            for_each_word(&mut ins, &mut |w: &mut String| {
                *w = expand(w, &lookup, escape)
                    .map_err(|e| format!("failed to expand {w:?}: {e}"))?;
                Ok(())
            })
            .map_err(err)?;
            match &ins {
                Instruction::Env(pairs) => {
                    for (k, v) in pairs {
                        env.retain(|(n, _)| n != k);
                        env.push((k.clone(), v.clone()));
                    }
                }
                Instruction::Arg(list) => {
                    for a in list {
                        let v = self
                            .build_args
                            .get(&a.name)
                            .cloned()
                            .or_else(|| a.default.clone())
                            .or_else(|| self.global_values.get(&a.name).cloned());
                        args.retain(|(n, _)| *n != a.name);
                        args.push((a.name.clone(), v));
                    }
                }
                _ => {}
            }
            let mut in_scope: Vec<(String, String)> = args
                .iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                .collect();
            for p in PROXY_ARGS {
                if let Some(v) = self.build_args.get(*p) {
                    if !in_scope.iter().any(|(k, _)| k == p) {
                        in_scope.push((p.to_string(), v.clone()));
                    }
                }
            }
            out.push(Resolved {
                step: Located {
                    instruction: ins,
                    ..step.clone()
                },
                args: in_scope,
            });
        }
        Ok(out)
    }
}
