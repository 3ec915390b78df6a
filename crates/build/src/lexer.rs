//! Physical lines to logical instructions: comments, line continuations, heredoc bodies.

use crate::error::Source;
use crate::heredoc::{self, Heredoc};
use crate::{ParseError, Pos};

/// One logical instruction line: continuations joined, with a map back to the file.
#[derive(Debug, Clone)]
pub(crate) struct Logical {
    /// The joined text, starting at the keyword; escape characters of continuations removed.
    pub text: String,
    /// `(offset in text, line, col)` at the start of each joined piece.
    map: Vec<(usize, usize, usize)>,
    /// Heredocs whose bodies follow the instruction.
    pub heredocs: Vec<Heredoc>,
}

impl Logical {
    /// Where byte `off` of [`text`](Self::text) is in the file.
    pub fn pos_at(&self, off: usize) -> Pos {
        let &(start, line, col) = self
            .map
            .iter()
            .rev()
            .find(|(s, _, _)| *s <= off)
            .unwrap_or(&self.map[0]);
        let off = off.min(self.text.len());
        let extra = self.text.get(start..off).map_or(0, |s| s.chars().count());
        Pos {
            line,
            col: col + extra,
        }
    }

    /// Where the keyword is.
    pub fn pos(&self) -> Pos {
        self.pos_at(0)
    }
}

/// Splits off a trailing escape character (and whitespace after it): `(body, continues)`.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(body) => (body, true),
        None => (line.trim_end(), false),
    }
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Whether instructions with this keyword may carry heredocs.
fn takes_heredocs(text: &str) -> bool {
    let kw = text.split_whitespace().next().unwrap_or("");
    ["RUN", "COPY", "ADD"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(kw))
}

/// Reads logical lines from line index `first` on.
pub(crate) fn logical_lines(
    src: &Source<'_>,
    first: usize,
    escape: char,
) -> Result<Vec<Logical>, ParseError> {
    let lines = &src.lines;
    let mut out = Vec::new();
    let mut i = first;
    while i < lines.len() {
        let raw = lines[i];
        i += 1;
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let col = raw[..raw.len() - trimmed.len()].chars().count() + 1;
        let (body, mut cont) = trim_continuation(trimmed, escape);
        let mut lg = Logical {
            text: body.to_string(),
            map: vec![(0, i, col)],
            heredocs: Vec::new(),
        };
        let mut escape_at = (i, raw);
        while cont {
            let Some(next) = lines.get(i) else {
                let col = escape_at.1.trim_end().chars().count();
                return Err(src.err(
                    Pos {
                        line: escape_at.0,
                        col,
                    },
                    "unexpected end of file after a line continuation",
                ));
            };
            i += 1;
            if is_comment(next) || next.trim().is_empty() {
                continue;
            }
            let (body, c) = trim_continuation(next, escape);
            lg.map.push((lg.text.len(), i, 1));
            lg.text.push_str(body);
            cont = c;
            escape_at = (i, next);
        }
        if takes_heredocs(&lg.text) {
            for (_, mut h) in heredoc::markers(&lg.text, escape) {
                let mut done = false;
                while let Some(l) = lines.get(i) {
                    i += 1;
                    if heredoc::is_terminator(&h, l) {
                        done = true;
                        break;
                    }
                    h.content.push_str(l);
                    h.content.push('\n');
                }
                if !done {
                    return Err(src.err(
                        lg.pos(),
                        format!("unterminated heredoc: no line with {} after it", h.name),
                    ));
                }
                lg.heredocs.push(h);
            }
        }
        out.push(lg);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(text: &str) -> Result<Vec<Logical>, ParseError> {
        lex_esc(text, '\\')
    }

    fn lex_esc(text: &str, esc: char) -> Result<Vec<Logical>, ParseError> {
        logical_lines(&Source::new(text, "Dockerfile"), 0, esc)
    }

    fn texts(text: &str) -> Vec<String> {
        lex(text).unwrap().into_iter().map(|l| l.text).collect()
    }

    #[test]
    fn continuation_table() {
        let cases: &[(&str, &[&str])] = &[
            ("FROM a\nRUN b", &["FROM a", "RUN b"]),
            ("  # c\n\n   RUN b  \n", &["RUN b"]),
            ("RUN a \\\n  && b", &["RUN a   && b"]),
            ("RUN a \\  \n  b", &["RUN a   b"]),
            // Comment lines and empty lines inside a continuation are dropped.
            (
                "RUN a \\\n# note\n\n   \n  b\nRUN c",
                &["RUN a   b", "RUN c"],
            ),
            ("RUN a \\\n  b \\\n  c", &["RUN a   b   c"]),
        ];
        for (text, want) in cases {
            assert_eq!(texts(text), *want, "{text:?}");
        }
        let lg = lex_esc("RUN a `\n  b", '`').unwrap();
        assert_eq!(lg[0].text, "RUN a   b");
        // With ` as escape, a backslash does not continue the line.
        let lg = lex_esc("RUN c:\\\nRUN d", '`').unwrap();
        assert_eq!(lg.len(), 2);
    }

    #[test]
    fn positions() {
        let lg = lex("\n   RUN a \\\n# c\n  bcd").unwrap();
        assert_eq!(lg[0].pos(), Pos { line: 2, col: 4 });
        let off = lg[0].text.find("bcd").unwrap();
        assert_eq!(lg[0].pos_at(off), Pos { line: 4, col: 3 });
        assert_eq!(lg[0].pos_at(4), Pos { line: 2, col: 8 });
    }

    #[test]
    fn continuation_at_eof_is_an_error() {
        let e = lex("FROM a\nRUN a \\\n").unwrap_err();
        assert_eq!(
            e.one_line(),
            "Dockerfile:2:7: unexpected end of file after a line continuation"
        );
        assert!(lex("RUN a \\\n# only a comment\n\n").is_err());
    }

    #[test]
    fn heredoc_bodies() {
        let lg = lex("RUN <<EOF\necho hi\n# not a comment\n\nEOF\nCMD x").unwrap();
        assert_eq!(lg.len(), 2);
        assert_eq!(lg[0].heredocs[0].content, "echo hi\n# not a comment\n\n");
        let lg = lex("RUN <<A cat && <<-B cat\none\nA\n\ttwo\n\tB\nCMD x").unwrap();
        assert_eq!(lg[0].heredocs[0].content, "one\n");
        assert_eq!(lg[0].heredocs[1].content, "\ttwo\n");
        assert_eq!(lg[1].text, "CMD x");
        let lg = lex("COPY <<EOF /x\nFROM y\nEOF\n").unwrap();
        assert_eq!(lg.len(), 1);
        // Not for other instructions.
        assert_eq!(lex("LABEL a=<<EOF\nEOF").unwrap().len(), 2);
    }

    #[test]
    fn unterminated_heredoc() {
        let e = lex("FROM a\n  RUN <<EOF\necho\n").unwrap_err();
        assert_eq!(
            e.one_line(),
            "Dockerfile:2:3: unterminated heredoc: no line with EOF after it"
        );
    }
}
