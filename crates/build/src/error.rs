//! The one error type of the front end, and how it is shown.

use std::fmt;

use crate::Pos;

/// A Dockerfile that cannot be understood, with where and why.
///
/// Its [`Display`](fmt::Display) form is `FILE:LINE:COL: message` on the first line, then the
/// offending source line and a caret under the column, so that the first line alone is a
/// complete one-line error and the rest is there for a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file name as the caller gave it (for example `Dockerfile`).
    pub file: String,
    /// 1-based line of the problem.
    pub line: usize,
    /// 1-based column (in characters) of the problem.
    pub col: usize,
    /// What is wrong, in lower case.
    pub message: String,
    /// The text of the offending line, without its line ending.
    pub source_line: String,
}

impl ParseError {
    /// The first line of the display form: `FILE:LINE:COL: message`.
    pub fn one_line(&self) -> String {
        format!("{}:{}:{}: {}", self.file, self.line, self.col, self.message)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.one_line())?;
        if !self.source_line.is_empty() || self.line > 0 {
            // Tabs are kept so that the caret lines up under them.
            let pad: String = self
                .source_line
                .chars()
                .take(self.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n  {}\n  {}^", self.source_line, pad)?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// The physical lines of one file, to turn positions into [`ParseError`]s.
pub(crate) struct Source<'a> {
    pub file: &'a str,
    pub lines: Vec<&'a str>,
}

impl<'a> Source<'a> {
    /// Splits `text` into lines, dropping `\r` before `\n` and a leading byte-order mark.
    pub fn new(text: &'a str, file: &'a str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines: Vec<&str> = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        if text.ends_with('\n') {
            lines.pop();
        }
        Source { file, lines }
    }

    /// The text of 1-based line `line`, or empty past the end.
    pub fn line(&self, line: usize) -> &'a str {
        line.checked_sub(1)
            .and_then(|i| self.lines.get(i))
            .copied()
            .unwrap_or("")
    }

    /// An error at `pos`.
    pub fn err(&self, pos: Pos, message: impl Into<String>) -> ParseError {
        ParseError {
            file: self.file.to_string(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
            source_line: self.line(pos.line).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_location_line_and_caret() {
        let src = Source::new("FROM a\nRUNN x\n", "Dockerfile");
        let e = src.err(Pos { line: 2, col: 1 }, "unknown instruction: RUNN");
        assert_eq!(
            e.to_string(),
            "Dockerfile:2:1: unknown instruction: RUNN\n  RUNN x\n  ^"
        );
        let e = src.err(Pos { line: 2, col: 6 }, "x");
        assert!(e.to_string().ends_with("\n       ^"));
        assert_eq!(e.one_line(), "Dockerfile:2:6: x");
    }

    #[test]
    fn lines_drop_crlf_and_bom() {
        let src = Source::new("\u{feff}FROM a\r\nRUN b\r\n", "f");
        assert_eq!(src.lines, vec!["FROM a", "RUN b"]);
        assert_eq!(src.line(9), "");
    }
}
