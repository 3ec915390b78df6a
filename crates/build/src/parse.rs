//! One logical line to one instruction: keyword, flags, arguments.

use crate::error::Source;
use crate::instructions::{parse_duration, parse_mount, Arg, Healthcheck, Instruction};
use crate::lexer::Logical;
use crate::words::{json_array, split_words, unquote};
use crate::{ParseError, ShellOrExec};

/// Every instruction keyword, upper case.
pub(crate) const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// What one line parses to: the start of a stage, or an instruction inside one.
pub(crate) enum Parsed {
    /// `FROM [--platform=…] base [AS name]`, nothing substituted yet.
    From {
        base: String,
        base_off: usize,
        name: Option<String>,
        platform: Option<String>,
    },
    /// Any other instruction.
    Instr(Instruction),
}

/// The line being parsed, to turn offsets into errors.
pub(crate) struct Cx<'a> {
    pub src: &'a Source<'a>,
    pub lg: &'a Logical,
    pub escape: char,
}

impl Cx<'_> {
    /// An error at byte `off` of the logical line.
    pub fn err(&self, off: usize, msg: impl Into<String>) -> ParseError {
        self.src.err(self.lg.pos_at(off), msg)
    }
}

struct Flag {
    name: String,
    value: Option<String>,
    off: usize,
    used: bool,
}

/// The `--name[=value]` words at the start of an instruction's arguments.
struct Flags(Vec<Flag>);

impl Flags {
    /// Takes the flags from `text[from..]`; returns them and where the arguments start.
    fn extract(text: &str, from: usize, escape: char) -> (Flags, usize) {
        let mut flags = Vec::new();
        let mut rest = text.len();
        for (off, word) in split_words(&text[from..], escape) {
            let off = from + off;
            if word == "--" {
                rest = text[off + 2..]
                    .find(|c: char| !c.is_whitespace())
                    .map_or(text.len(), |i| off + 2 + i);
                break;
            }
            let Some(body) = word.strip_prefix("--") else {
                rest = off;
                break;
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(unquote(v, escape))),
                None => (body.to_string(), None),
            };
            flags.push(Flag {
                name: name.to_ascii_lowercase(),
                value,
                off,
                used: false,
            });
        }
        (Flags(flags), rest)
    }

    fn str(&mut self, cx: &Cx<'_>, name: &str) -> Result<Option<String>, ParseError> {
        let mut found = None;
        for f in self.0.iter_mut().filter(|f| f.name == name) {
            if found.is_some() {
                return Err(cx.err(f.off, format!("duplicate flag: --{name}")));
            }
            f.used = true;
            match &f.value {
                Some(v) => found = Some(v.clone()),
                None => return Err(cx.err(f.off, format!("missing a value on flag: --{name}"))),
            }
        }
        Ok(found)
    }

    fn all(&mut self, cx: &Cx<'_>, name: &str) -> Result<Vec<(String, usize)>, ParseError> {
        let mut out = Vec::new();
        for f in self.0.iter_mut().filter(|f| f.name == name) {
            f.used = true;
            match &f.value {
                Some(v) => out.push((v.clone(), f.off)),
                None => return Err(cx.err(f.off, format!("missing a value on flag: --{name}"))),
            }
        }
        Ok(out)
    }

    fn bool(&mut self, cx: &Cx<'_>, name: &str) -> Result<bool, ParseError> {
        let mut found = false;
        for f in self.0.iter_mut().filter(|f| f.name == name) {
            f.used = true;
            found = match f.value.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("true") => true,
                Some("false") => false,
                Some(v) => {
                    return Err(cx.err(
                        f.off,
                        format!("expecting boolean value for flag --{name}, not: {v}"),
                    ))
                }
            };
        }
        Ok(found)
    }

    fn duration(
        &mut self,
        cx: &Cx<'_>,
        name: &str,
    ) -> Result<Option<std::time::Duration>, ParseError> {
        let off = self.0.iter().find(|f| f.name == name).map_or(0, |f| f.off);
        self.str(cx, name)?
            .map(|v| parse_duration(&v).map_err(|e| cx.err(off, format!("--{name}: {e}"))))
            .transpose()
    }

    fn finish(self, cx: &Cx<'_>, keyword: &str) -> Result<(), ParseError> {
        match self.0.into_iter().find(|f| !f.used) {
            Some(f) => Err(cx.err(f.off, format!("unknown flag for {keyword}: --{}", f.name))),
            None => Ok(()),
        }
    }
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The keyword closest to `word`, if it is close enough to be a typo.
fn suggest(word: &str) -> Option<&'static str> {
    let upper = word.to_ascii_uppercase();
    KEYWORDS
        .iter()
        .map(|k| (distance(&upper, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min()
        .map(|(_, k)| k)
}

fn shell_or_exec(rest: &str) -> ShellOrExec {
    match json_array(rest) {
        Some(v) => ShellOrExec::Exec(v),
        None => ShellOrExec::Shell(rest.to_string()),
    }
}

/// `ENV`/`LABEL` pairs: `k=v k2="v 2"` or legacy `k value with spaces`.
fn name_values(
    cx: &Cx<'_>,
    kw: &str,
    rest: &str,
    rest_off: usize,
) -> Result<Vec<(String, String)>, ParseError> {
    let words = split_words(rest, cx.escape);
    let Some((_, first)) = words.first() else {
        return Err(cx.err(rest_off, format!("{kw} requires at least one argument")));
    };
    if !first.contains('=') {
        let value = rest[first.len()..].trim();
        if value.is_empty() {
            return Err(cx.err(rest_off, format!("{kw} must have two arguments")));
        }
        return Ok(vec![(first.clone(), value.to_string())]);
    }
    let mut out = Vec::new();
    for (off, w) in words {
        match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.push((k.to_string(), v.to_string())),
            Some(_) => return Err(cx.err(rest_off + off, format!("{kw} names can not be blank"))),
            None => {
                return Err(cx.err(
                    rest_off + off,
                    format!("syntax error: can't find = in {w:?}; must be of the form name=value"),
                ))
            }
        }
    }
    Ok(out)
}

fn valid_stage_name(n: &str) -> bool {
    n.starts_with(|c: char| c.is_ascii_alphabetic())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Parses the instruction whose keyword starts at byte `start` of the logical line.
pub(crate) fn parse_at(cx: &Cx<'_>, start: usize) -> Result<Parsed, ParseError> {
    let text = &cx.lg.text;
    let kw_end = text[start..]
        .find(char::is_whitespace)
        .map_or(text.len(), |i| start + i);
    let kw_raw = &text[start..kw_end];
    let kw = kw_raw.to_ascii_uppercase();
    if !KEYWORDS.contains(&kw.as_str()) {
        let hint = suggest(kw_raw).map_or(String::new(), |k| format!(" (did you mean {k}?)"));
        return Err(cx.err(start, format!("unknown instruction: {kw_raw}{hint}")));
    }
    let kw = kw.as_str();
    if kw == "ONBUILD" {
        let Some(i) = text[kw_end..].find(|c: char| !c.is_whitespace()) else {
            return Err(cx.err(start, "ONBUILD requires at least one argument"));
        };
        let inner = kw_end + i;
        let inner_kw = text[inner..].split_whitespace().next().unwrap_or("");
        let inner_up = inner_kw.to_ascii_uppercase();
        if inner_up == "ONBUILD" {
            return Err(cx.err(inner, "chaining ONBUILD via ONBUILD ONBUILD isn't allowed"));
        }
        if inner_up == "FROM" || inner_up == "MAINTAINER" {
            return Err(cx.err(
                inner,
                format!("{inner_up} isn't allowed as an ONBUILD trigger"),
            ));
        }
        return match parse_at(cx, inner)? {
            Parsed::Instr(i) => Ok(Parsed::Instr(Instruction::Onbuild(Box::new(i)))),
            Parsed::From { .. } => unreachable!("FROM is refused above"),
        };
    }
    let (mut flags, rest_off) = Flags::extract(text, kw_end, cx.escape);
    let rest = text[rest_off..].trim();
    let need = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(cx.err(start, format!("{kw} requires {what}")))
        }
    };
    // Heredocs belong to the line's own instruction, not to an ONBUILD trigger.
    let heredocs = if start == 0 {
        cx.lg.heredocs.clone()
    } else {
        Vec::new()
    };
    let words = || {
        split_words(rest, cx.escape)
            .into_iter()
            .map(|(_, w)| w)
            .collect::<Vec<_>>()
    };
    let ins = match kw {
        "FROM" => {
            let platform = flags.str(cx, "platform")?;
            flags.finish(cx, kw)?;
            let w = split_words(rest, cx.escape);
            let name = match w.as_slice() {
                [_] => None,
                [_, (_, as_), (noff, n)] if as_.eq_ignore_ascii_case("as") => {
                    if !valid_stage_name(n) {
                        return Err(cx.err(
                            rest_off + noff,
                            format!("invalid name for build stage: {n:?}, name can't start with a number or contain symbols"),
                        ));
                    }
                    Some(n.to_ascii_lowercase())
                }
                [] => return Err(cx.err(start, "FROM requires at least one argument")),
                _ => {
                    return Err(cx.err(
                        start,
                        "FROM requires either one or three arguments (FROM image [AS name])",
                    ))
                }
            };
            return Ok(Parsed::From {
                base: w[0].1.clone(),
                base_off: rest_off + w[0].0,
                name,
                platform,
            });
        }
        "RUN" => {
            let mut mounts = Vec::new();
            for (spec, off) in flags.all(cx, "mount")? {
                mounts.push(parse_mount(&spec).map_err(|e| cx.err(off, e))?);
            }
            let off = flags
                .0
                .iter()
                .find(|f| f.name == "network")
                .map_or(0, |f| f.off);
            let network = flags.str(cx, "network")?;
            if let Some(n) = network
                .as_deref()
                .filter(|n| !matches!(*n, "default" | "none" | "host"))
            {
                return Err(cx.err(
                    off,
                    format!("unsupported network mode {n:?}: use default, none or host"),
                ));
            }
            let security = flags.str(cx, "security")?;
            flags.finish(cx, kw)?;
            need(!rest.is_empty(), "at least one argument")?;
            Instruction::Run {
                cmd: shell_or_exec(rest),
                mounts,
                network,
                security,
                heredocs,
            }
        }
        "CMD" | "ENTRYPOINT" => {
            flags.finish(cx, kw)?;
            need(!rest.is_empty(), "at least one argument")?;
            if kw == "CMD" {
                Instruction::Cmd(shell_or_exec(rest))
            } else {
                Instruction::Entrypoint(shell_or_exec(rest))
            }
        }
        "SHELL" => {
            flags.finish(cx, kw)?;
            match json_array(rest) {
                Some(v) if !v.is_empty() => Instruction::Shell(v),
                _ => return Err(cx.err(
                    rest_off,
                    "SHELL requires the arguments to be in JSON form, like [\"/bin/sh\", \"-c\"]",
                )),
            }
        }
        "ENV" | "LABEL" => {
            flags.finish(cx, kw)?;
            need(!rest.is_empty(), "at least one argument")?;
            let pairs = name_values(cx, kw, rest, rest_off)?;
            if kw == "ENV" {
                Instruction::Env(pairs)
            } else {
                Instruction::Label(pairs)
            }
        }
        "MAINTAINER" => {
            flags.finish(cx, kw)?;
            need(!rest.is_empty(), "exactly one argument")?;
            Instruction::Maintainer(rest.to_string())
        }
        "EXPOSE" | "VOLUME" => {
            flags.finish(cx, kw)?;
            let list = match (kw, json_array(rest)) {
                ("VOLUME", Some(v)) => v,
                _ => words(),
            };
            need(
                !list.is_empty() && list.iter().all(|w| !w.is_empty()),
                "at least one argument",
            )?;
            if kw == "EXPOSE" {
                Instruction::Expose(list)
            } else {
                Instruction::Volume(list)
            }
        }
        "USER" | "STOPSIGNAL" | "WORKDIR" => {
            flags.finish(cx, kw)?;
            if kw == "WORKDIR" {
                need(!rest.is_empty(), "exactly one argument")?;
            } else {
                need(words().len() == 1, "exactly one argument")?;
            }
            let v = rest.to_string();
            match kw {
                "USER" => Instruction::User(v),
                "STOPSIGNAL" => Instruction::Stopsignal(v),
                _ => Instruction::Workdir(v),
            }
        }
        "ARG" => {
            flags.finish(cx, kw)?;
            let mut args = Vec::new();
            for (off, w) in split_words(rest, cx.escape) {
                let (name, default) = match w.split_once('=') {
                    Some((n, d)) => (n.to_string(), Some(d.to_string())),
                    None => (w.clone(), None),
                };
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(cx.err(rest_off + off, format!("invalid ARG name {name:?}")));
                }
                args.push(Arg { name, default });
            }
            need(!args.is_empty(), "at least one argument")?;
            Instruction::Arg(args)
        }
        "ADD" | "COPY" => {
            let chown = flags.str(cx, "chown")?;
            let chmod = flags.str(cx, "chmod")?;
            let link = flags.bool(cx, "link")?;
            let exclude = flags
                .all(cx, "exclude")?
                .into_iter()
                .map(|(v, _)| v)
                .collect();
            let mut list = json_array(rest).unwrap_or_else(words);
            if list.len() < 2 {
                return Err(cx.err(start, format!(
                    "{kw} requires at least two arguments, but only {} provided: the destination could not be determined",
                    if list.is_empty() { "none was" } else { "one was" }
                )));
            }
            let dest = list.pop().expect("two or more");
            if kw == "ADD" {
                let checksum = flags.str(cx, "checksum")?;
                let keep_git_dir = flags.bool(cx, "keep-git-dir")?;
                flags.finish(cx, kw)?;
                Instruction::Add {
                    srcs: list,
                    dest,
                    chown,
                    chmod,
                    checksum,
                    link,
                    keep_git_dir,
                    exclude,
                    heredocs,
                }
            } else {
                let from = flags.str(cx, "from")?;
                let parents = flags.bool(cx, "parents")?;
                flags.finish(cx, kw)?;
                Instruction::Copy {
                    srcs: list,
                    dest,
                    from,
                    chown,
                    chmod,
                    link,
                    parents,
                    exclude,
                    heredocs,
                }
            }
        }
        "HEALTHCHECK" => {
            let interval = flags.duration(cx, "interval")?;
            let timeout = flags.duration(cx, "timeout")?;
            let start_period = flags.duration(cx, "start-period")?;
            let start_interval = flags.duration(cx, "start-interval")?;
            let roff = flags
                .0
                .iter()
                .find(|f| f.name == "retries")
                .map_or(0, |f| f.off);
            let retries = flags
                .str(cx, "retries")?
                .map(|r| {
                    r.parse::<u32>()
                        .map_err(|_| cx.err(roff, format!("--retries must be a number, not {r:?}")))
                })
                .transpose()?;
            let any_flag = !flags.0.is_empty();
            flags.finish(cx, kw)?;
            let typ = rest.split_whitespace().next().unwrap_or("");
            let after = rest[typ.len()..].trim();
            match typ.to_ascii_uppercase().as_str() {
                "NONE" => {
                    if any_flag || !after.is_empty() {
                        return Err(cx.err(start, "HEALTHCHECK NONE takes no other arguments"));
                    }
                    Instruction::Healthcheck(None)
                }
                "CMD" => {
                    need(!after.is_empty(), "a command after CMD")?;
                    let test = shell_or_exec(after);
                    Instruction::Healthcheck(Some(Healthcheck {
                        test,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    }))
                }
                "" => return Err(cx.err(start, "HEALTHCHECK requires CMD or NONE")),
                _ => {
                    return Err(cx.err(
                        rest_off,
                        format!("unknown type for HEALTHCHECK: {typ} (expected CMD or NONE)"),
                    ))
                }
            }
        }
        _ => unreachable!("all keywords are handled"),
    };
    Ok(Parsed::Instr(ins))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("RUNN"), Some("RUN"));
        assert_eq!(suggest("copyy"), Some("COPY"));
        assert_eq!(suggest("WORKDIRR"), Some("WORKDIR"));
        assert_eq!(suggest("ENTRYPIONT"), Some("ENTRYPOINT"));
        assert_eq!(suggest("XYZZYQ"), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
