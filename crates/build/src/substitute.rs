//! Variable substitution the way Docker's builder does it, with quote removal.
//!
//! Supported: `$name`, `${name}`, `${name:-word}`, `${name-word}`, `${name:+word}`,
//! `${name+word}`, `${name:?message}`, `${name?message}`; single quotes (nothing inside is
//! special), double quotes (only `$` and the escape character are), and the escape character
//! outside quotes. Any other modifier is an error.

use std::iter::Peekable;
use std::str::Chars;

/// Expands variables in `word` and removes its quotes and escapes.
///
/// `vars` returns a variable's value, or `None` when it is not set (which `${v-d}` and `${v:-d}`
/// tell apart from an empty value). `escape` is the file's escape character.
pub fn expand(
    word: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<String, String> {
    let mut p = Expander {
        chars: word.chars().peekable(),
        vars,
        escape,
    };
    p.word(None)
}

/// Expands variables in a heredoc body as a shell expands an unquoted heredoc: quotes stay as
/// they are, and the escape character only escapes `$` and itself.
pub fn expand_raw(
    text: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<String, String> {
    let mut p = Expander {
        chars: text.chars().peekable(),
        vars,
        escape,
    };
    let mut out = String::new();
    while let Some(c) = p.chars.next() {
        if c == '$' {
            p.dollar(&mut out)?;
        } else if c == escape && matches!(p.chars.peek(), Some(&n) if n == '$' || n == escape) {
            out.extend(p.chars.next());
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

struct Expander<'a> {
    chars: Peekable<Chars<'a>>,
    vars: &'a dyn Fn(&str) -> Option<String>,
    escape: char,
}

impl Expander<'_> {
    /// Reads until the end, or until an unmatched `stop` (which is consumed).
    fn word(&mut self, stop: Option<char>) -> Result<String, String> {
        let mut out = String::new();
        while let Some(c) = self.chars.next() {
            match c {
                _ if Some(c) == stop => return Ok(out),
                '\'' => loop {
                    match self.chars.next() {
                        Some('\'') => break,
                        Some(c) => out.push(c),
                        None => return Err("unexpected end of word: missing closing '".into()),
                    }
                },
                '"' => self.double_quoted(&mut out)?,
                '$' => self.dollar(&mut out)?,
                _ if c == self.escape => match self.chars.next() {
                    Some(n) => out.push(n),
                    None => out.push(c),
                },
                _ => out.push(c),
            }
        }
        match stop {
            Some(s) => Err(format!("missing '{s}'")),
            None => Ok(out),
        }
    }

    fn double_quoted(&mut self, out: &mut String) -> Result<(), String> {
        loop {
            match self.chars.next() {
                Some('"') => return Ok(()),
                Some('$') => self.dollar(out)?,
                Some(c) if c == self.escape => match self.chars.peek().copied() {
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        self.chars.next();
                        out.push(n);
                    }
                    _ => out.push(c),
                },
                Some(c) => out.push(c),
                None => return Err("unexpected end of word: missing closing \"".into()),
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(&c) = self.chars.peek() {
            if !(c.is_ascii_alphanumeric() || c == '_') {
                break;
            }
            name.push(c);
            self.chars.next();
        }
        name
    }

    /// After a `$`.
    fn dollar(&mut self, out: &mut String) -> Result<(), String> {
        match self.chars.peek().copied() {
            Some('{') => {
                self.chars.next();
                self.braced(out)
            }
            Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                let name = self.name();
                out.push_str(&(self.vars)(&name).unwrap_or_default());
                Ok(())
            }
            _ => {
                out.push('$');
                Ok(())
            }
        }
    }

    /// After `${`.
    fn braced(&mut self, out: &mut String) -> Result<(), String> {
        let name = self.name();
        if name.is_empty() {
            return Err("bad substitution: expected a variable name after '${'".into());
        }
        let value = (self.vars)(&name);
        let colon = self.chars.peek() == Some(&':');
        if colon {
            self.chars.next();
        }
        let m = self.chars.next();
        let set = match (&value, colon) {
            (Some(v), true) => !v.is_empty(),
            (Some(_), false) => true,
            (None, _) => false,
        };
        match m {
            Some('}') if !colon => out.push_str(&value.unwrap_or_default()),
            Some('-') => {
                let word = self.word(Some('}'))?;
                out.push_str(&if set { value.unwrap_or_default() } else { word });
            }
            Some('+') => {
                let word = self.word(Some('}'))?;
                if set {
                    out.push_str(&word);
                }
            }
            Some('?') => {
                let word = self.word(Some('}'))?;
                if !set {
                    let why = if word.is_empty() {
                        "is not set".into()
                    } else {
                        word
                    };
                    return Err(format!("{name}: {why}"));
                }
                out.push_str(&value.unwrap_or_default());
            }
            None => return Err(format!("missing '}}' after '${{{name}'")),
            Some(c) => {
                let c = if colon {
                    format!(":{c}")
                } else {
                    c.to_string()
                };
                return Err(format!(
                    "bad substitution: unsupported modifier '{c}' in '${{{name}...}}'"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_expansion_keeps_quotes() {
        let vars = |n: &str| (n == "A").then(|| "x".to_string());
        let out = expand_raw("it's \"$A\" ${B:-d} \\$A\n", &vars, '\\').unwrap();
        assert_eq!(out, "it's \"x\" d $A\n");
        assert_eq!(expand_raw("a\\b", &vars, '\\').unwrap(), "a\\b");
    }

    fn vars(n: &str) -> Option<String> {
        match n {
            "a" => Some("alpha".into()),
            "e" => Some(String::new()),
            "sp" => Some("x y".into()),
            _ => None,
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("$a", "alpha"),
            ("${a}", "alpha"),
            ("x${a}y", "xalphay"),
            ("$a/b", "alpha/b"),
            ("$nope", ""),
            ("${nope}", ""),
            ("${a:-d}", "alpha"),
            ("${e:-d}", "d"),
            ("${e-d}", ""),
            ("${nope-d}", "d"),
            ("${nope:-d}", "d"),
            ("${a:+set}", "set"),
            ("${e:+set}", ""),
            ("${e+set}", "set"),
            ("${nope+set}", ""),
            ("${nope:-${a}}", "alpha"),
            ("${nope:-a b}", "a b"),
            ("${a:?}", "alpha"),
            ("'$a'", "$a"),
            ("\"$a\"", "alpha"),
            ("\"$sp\"", "x y"),
            ("\\$a", "$a"),
            ("\"\\$a\"", "$a"),
            ("\"a\\b\"", "a\\b"),
            ("a\\ b", "a b"),
            ("$", "$"),
            ("a$", "a$"),
            ("$-", "$-"),
            ("\"x\"'y'z", "xyz"),
        ];
        for (w, want) in cases {
            assert_eq!(expand(w, &vars, '\\').as_deref(), Ok(*want), "{w:?}");
        }
    }

    #[test]
    fn backtick_escape() {
        assert_eq!(expand("`$a", &vars, '`').unwrap(), "$a");
        assert_eq!(expand("c:\\dir", &vars, '`').unwrap(), "c:\\dir");
    }

    #[test]
    fn errors() {
        let cases: &[(&str, &str)] = &[
            ("${a", "missing '}'"),
            ("${}", "bad substitution"),
            ("${a:-x", "missing '}'"),
            ("${a/x/y}", "unsupported modifier '/'"),
            ("${a:=x}", "unsupported modifier ':='"),
            ("${a#x}", "unsupported modifier '#'"),
            ("${nope:?must be set}", "nope: must be set"),
            ("${nope?}", "nope: is not set"),
            ("'abc", "missing closing '"),
            ("\"abc", "missing closing \""),
        ];
        for (w, want) in cases {
            let e = expand(w, &vars, '\\').unwrap_err();
            assert!(e.contains(want), "{w:?}: {e}");
        }
    }
}
