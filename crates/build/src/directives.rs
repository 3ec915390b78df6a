//! Parser directives: `# escape=`, `# syntax=` and `# check=` at the very top of the file.

use crate::error::Source;
use crate::{ParseError, Pos};

/// The parser directives of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// The escape character: `\` unless `# escape=` chose `` ` ``.
    pub escape: char,
    /// The `# syntax=` frontend image, recorded but not used: Berth always parses with its own
    /// front end, and says so in [`notes`](Self::notes).
    pub syntax: Option<String>,
    /// The `# check=` value (build check configuration), recorded as written.
    pub check: Option<String>,
    /// Things the user should be told, such as that `syntax` is ignored.
    pub notes: Vec<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            escape: '\\',
            syntax: None,
            check: None,
            notes: Vec::new(),
        }
    }
}

/// Splits `# key = value` into its parts, or `None` when the line is not of that shape.
fn split_directive(line: &str) -> Option<(String, String, usize)> {
    let body = line.trim_start().strip_prefix('#')?;
    let (key, value) = body.split_once('=')?;
    let key = key.trim();
    if key.is_empty()
        || !key.starts_with(|c: char| c.is_ascii_alphabetic())
        || !key.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    let value_col = line.len() - value.len() + 1 + (value.len() - value.trim_start().len());
    Some((
        key.to_ascii_lowercase(),
        value.trim().to_string(),
        value_col,
    ))
}

/// Reads the directives at the top of `src`; returns them and the index of the first line that
/// is not a directive. Directives stop at the first line that is not one (a comment, an empty
/// line, an instruction, or an unknown directive, which counts as a comment).
pub(crate) fn parse(src: &Source<'_>) -> Result<(Directives, usize), ParseError> {
    let mut d = Directives::default();
    let mut seen: Vec<String> = Vec::new();
    let mut i = 0;
    while i < src.lines.len() {
        let line = src.lines[i];
        let Some((key, value, col)) = split_directive(line) else {
            break;
        };
        if !matches!(key.as_str(), "escape" | "syntax" | "check") {
            break;
        }
        let pos = Pos { line: i + 1, col };
        if seen.contains(&key) {
            return Err(src.err(pos, format!("only one {key} parser directive can be used")));
        }
        match key.as_str() {
            "escape" => {
                d.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(src.err(
                            pos,
                            format!("invalid escape token '{value}': it must be ` or \\"),
                        ))
                    }
                }
            }
            "syntax" => {
                d.notes.push(format!(
                    "the syntax directive ({value}) is ignored: berth parses with its built-in front end"
                ));
                d.syntax = Some(value);
            }
            _ => d.check = Some(value),
        }
        seen.push(key);
        i += 1;
    }
    Ok((d, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<(Directives, usize), ParseError> {
        parse(&Source::new(text, "Dockerfile"))
    }

    #[test]
    fn table() {
        let cases: &[(&str, char, Option<&str>, usize)] = &[
            ("FROM a\n", '\\', None, 0),
            ("# escape=`\nFROM a\n", '`', None, 1),
            ("#ESCAPE = `\nFROM a\n", '`', None, 1),
            (
                "# syntax=docker/dockerfile:1\n# escape=`\nFROM a",
                '`',
                Some("docker/dockerfile:1"),
                2,
            ),
            // An empty line ends the directives; the escape line is then a comment.
            ("\n# escape=`\nFROM a", '\\', None, 0),
            // So does a plain comment.
            ("# hello\n# escape=`\nFROM a", '\\', None, 0),
            // An unknown directive counts as a comment and ends them too.
            ("# foo=bar\n# escape=`\nFROM a", '\\', None, 0),
            ("# check=skip=all\nFROM a", '\\', None, 1),
        ];
        for (text, esc, syntax, next) in cases {
            let (d, i) = run(text).unwrap();
            assert_eq!(d.escape, *esc, "{text:?}");
            assert_eq!(d.syntax.as_deref(), *syntax, "{text:?}");
            assert_eq!(i, *next, "{text:?}");
        }
        let (d, _) = run("# check=skip=all\nFROM a").unwrap();
        assert_eq!(d.check.as_deref(), Some("skip=all"));
        let (d, _) = run("# syntax=x\nFROM a").unwrap();
        assert!(d.notes[0].contains("ignored"));
    }

    #[test]
    fn errors() {
        let e = run("# escape=x\nFROM a").unwrap_err();
        assert_eq!(
            e.one_line(),
            "Dockerfile:1:10: invalid escape token 'x': it must be ` or \\"
        );
        let e = run("# escape=`\n# escape=\\\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("only one escape"));
    }
}
