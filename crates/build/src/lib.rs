//! The Dockerfile front end of Berth.
//!
//! A Dockerfile is read in three passes, each small enough to be checked against BuildKit's
//! behaviour by table-driven tests.
//!
//! First, the parser directives at the very top (`# escape=`, `# syntax=`, `# check=`) are read;
//! they stop at the first line that is not a known directive. The escape character they choose
//! (`\` or `` ` ``) changes everything after: line continuations, quoting and substitution.
//! `syntax` is recorded and ignored with a note, since Berth always uses this front end.
//!
//! Second, physical lines become logical ones: comments and empty lines are dropped, a line
//! ending in the escape character continues on the next (comment and empty lines inside a
//! continuation are dropped too, and a continuation that reaches the end of the file is an
//! error), and `RUN`, `COPY` and `ADD` lines collect the bodies of their heredocs (`<<EOF`,
//! `<<-EOF`, `<<"EOF"`, several per line). Every logical line keeps a map from its bytes back to
//! line and column, so any later error can point a caret at the offending word.
//!
//! Third, each logical line becomes an [`Instruction`]: a case-insensitive keyword, `--flags`
//! checked per instruction (an unknown flag is an error that names it), and arguments in JSON
//! (exec) form where Docker allows it, falling back to the shell form when the JSON is invalid.
//! Lines group into [`Stage`]s at each `FROM`; `ARG`s before the first `FROM` are global and are
//! substituted into `FROM` lines (with build arguments taking precedence) when parsing.
//!
//! Substitution inside stages needs the base image's environment, which only the builder knows,
//! so [`parse`] keeps the words of instructions as written and [`Dockerfile::resolve_stage`]
//! substitutes them later with Docker's scoping rules: `ENV` and the image environment first,
//! then `ARG`s declared in the stage; global ARGs only when redeclared by name; predefined proxy
//! arguments without declaration. `RUN`, `CMD` and `ENTRYPOINT` are never substituted here: the
//! shell does that. [`expand`] is the substitution itself, usable on its own.
//!
//! Everything here is pure: no file system, no network, no clock.
#![deny(missing_docs)]

mod directives;
mod error;
pub mod exec;
mod heredoc;
mod instructions;
mod lexer;
mod parse;
mod resolve;
mod substitute;
mod words;

use std::collections::BTreeMap;

pub use directives::Directives;
pub use error::ParseError;
pub use heredoc::Heredoc;
pub use instructions::{
    Arg, CacheSharing, Healthcheck, Instruction, Located, MountKind, RunMount, ShellOrExec,
};
pub use resolve::{Resolved, PLATFORM_ARGS, PROXY_ARGS};
pub use substitute::{expand, expand_raw};

use error::Source;
use parse::{Cx, Parsed};

/// A position in the file: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

/// One build stage: a `FROM` and the instructions up to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The `AS` name, lower-cased as Docker does.
    pub name: Option<String>,
    /// The base (an image reference, an earlier stage's name, or `scratch`), after substitution
    /// of global ARGs.
    pub base: String,
    /// `--platform=`, after substitution of global ARGs.
    pub platform: Option<String>,
    /// The instructions after `FROM`, not yet substituted.
    pub instructions: Vec<Located>,
    /// Where the `FROM` keyword is.
    pub pos: Pos,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The file name given to [`parse`], used in errors.
    pub file: String,
    /// The stages in order.
    pub stages: Vec<Stage>,
    /// `ARG`s before the first `FROM`.
    pub global_args: Vec<Arg>,
    /// The parser directives.
    pub directives: Directives,
    /// The build arguments the file was parsed with.
    pub build_args: BTreeMap<String, String>,
    global_values: BTreeMap<String, String>,
}

impl Dockerfile {
    /// The index of the stage `reference` names, looking only at stages before `before`: a
    /// stage name (case-insensitive) or a stage number, as `COPY --from` and `FROM` accept.
    pub fn find_stage(&self, reference: &str, before: usize) -> Option<usize> {
        let lower = reference.to_ascii_lowercase();
        let stages = &self.stages[..before.min(self.stages.len())];
        if let Some(i) = stages
            .iter()
            .position(|s| s.name.as_deref() == Some(&lower))
        {
            return Some(i);
        }
        reference
            .parse::<usize>()
            .ok()
            .filter(|i| *i < stages.len())
    }

    /// The values of the global ARGs after build arguments were applied.
    pub fn global_arg_values(&self) -> &BTreeMap<String, String> {
        &self.global_values
    }
}

/// Parses a Dockerfile with no build arguments. See [`parse_with_args`].
pub fn parse(text: &str, file: &str) -> Result<Dockerfile, ParseError> {
    parse_with_args(text, file, &BTreeMap::new())
}

/// Parses a Dockerfile. `file` names it in errors; `build_args` (`--build-arg`) override
/// ARG defaults, both in `FROM` lines now and in [`Dockerfile::resolve_stage`] later.
pub fn parse_with_args(
    text: &str,
    file: &str,
    build_args: &BTreeMap<String, String>,
) -> Result<Dockerfile, ParseError> {
    let src = Source::new(text, file);
    let (directives, first) = directives::parse(&src)?;
    let escape = directives.escape;
    let mut df = Dockerfile {
        file: file.to_string(),
        stages: Vec::new(),
        global_args: Vec::new(),
        directives,
        build_args: build_args.clone(),
        global_values: BTreeMap::new(),
    };
    for lg in lexer::logical_lines(&src, first, escape)? {
        let cx = Cx {
            src: &src,
            lg: &lg,
            escape,
        };
        let parsed = parse::parse_at(&cx, 0)?;
        if let Parsed::Instr(ins) = &parsed {
            let mut probe = ins.clone();
            // Check `${…}` syntax now, so that a typo is reported while parsing.
            resolve::for_each_word(&mut probe, &mut |w: &mut String| {
                expand(w, &|_| Some("x".into()), escape)
                    .map(drop)
                    .map_err(|e| format!("{e}\0{w}"))
            })
            .map_err(|e| {
                let (msg, word) = e.split_once('\0').unwrap_or((&e, ""));
                cx.err(lg.text.find(word).unwrap_or(0), msg.to_string())
            })?;
        }
        match parsed {
            Parsed::From {
                base,
                base_off,
                name,
                platform,
            } => {
                let values = &df.global_values;
                let lookup = |n: &str| {
                    values.get(n).cloned().or_else(|| {
                        PLATFORM_ARGS
                            .contains(&n)
                            .then(|| build_args.get(n).cloned())
                            .flatten()
                    })
                };
                let base = expand(&base, &lookup, escape).map_err(|e| cx.err(base_off, e))?;
                if base.is_empty() {
                    return Err(cx.err(base_off, "base name should not be blank"));
                }
                let platform = platform
                    .map(|p| expand(&p, &lookup, escape))
                    .transpose()
                    .map_err(|e| cx.err(0, e))?;
                if let Some(n) = name.as_deref() {
                    if df.stages.iter().any(|s| s.name.as_deref() == Some(n)) {
                        return Err(cx.err(0, format!("duplicate stage name {n:?}")));
                    }
                }
                df.stages.push(Stage {
                    name,
                    base,
                    platform,
                    instructions: Vec::new(),
                    pos: lg.pos(),
                });
            }
            Parsed::Instr(ins) => match df.stages.last_mut() {
                Some(stage) => stage.instructions.push(Located {
                    instruction: ins,
                    pos: lg.pos(),
                    source: src.line(lg.pos().line).to_string(),
                    text: lg.text.trim().to_string(),
                }),
                None => match ins {
                    Instruction::Arg(args) => {
                        df.global_args.extend(args);
                        df.global_values =
                            resolve::global_values(&df.global_args, build_args, escape)
                                .map_err(|e| cx.err(0, e))?;
                    }
                    other => {
                        return Err(cx.err(
                            0,
                            format!(
                                "{} before the first FROM: only ARG may come before FROM",
                                other.keyword()
                            ),
                        ))
                    }
                },
            },
        }
    }
    if df.stages.is_empty() {
        let line = src.lines.len().max(1);
        return Err(src.err(
            Pos { line, col: 1 },
            "the file has no FROM instruction: nothing to build",
        ));
    }
    Ok(df)
}
