//! Word splitting that respects quotes and the escape character, and the JSON (exec) form.

/// Splits `s` at whitespace outside quotes. Quotes and escapes stay in the words (they are
/// removed later, by substitution); each word comes with its byte offset in `s`.
pub(crate) fn split_words(s: &str, escape: char) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut start = None;
    let mut quote: Option<char> = None;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if quote.is_none() && c.is_whitespace() {
            if let Some(st) = start.take() {
                out.push((st, std::mem::take(&mut word)));
            }
            continue;
        }
        start.get_or_insert(i);
        word.push(c);
        match quote {
            Some(q) if c == q => quote = None,
            Some('\'') => {}
            _ if c == escape => {
                if let Some((_, n)) = chars.next() {
                    word.push(n);
                }
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            _ => {}
        }
    }
    if let Some(st) = start {
        out.push((st, word));
    }
    out
}

/// Removes quotes and escapes from `s` without substituting variables (used for flag values).
pub(crate) fn unquote(s: &str, escape: char) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('\'') => out.push(c),
            _ if c == escape => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            _ => out.push(c),
        }
    }
    out
}

/// Reads `s` as the JSON (exec) form: an array of strings. `None` when it is not one, in which
/// case the instruction falls back to its shell form, as Docker does.
pub(crate) fn json_array(s: &str) -> Option<Vec<String>> {
    let t = s.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str, esc: char) -> Vec<String> {
        split_words(s, esc).into_iter().map(|(_, w)| w).collect()
    }

    #[test]
    fn split_table() {
        let cases: &[(&str, char, &[&str])] = &[
            ("a b  c", '\\', &["a", "b", "c"]),
            ("  a=\"x y\" b='p q'", '\\', &["a=\"x y\"", "b='p q'"]),
            ("a\\ b c", '\\', &["a\\ b", "c"]),
            ("a` b c", '`', &["a` b", "c"]),
            ("'it\\' x", '\\', &["'it\\'", "x"]),
            ("\"a\\\" b\" c", '\\', &["\"a\\\" b\"", "c"]),
            ("", '\\', &[]),
        ];
        for (s, esc, want) in cases {
            assert_eq!(words(s, *esc), *want, "{s:?}");
        }
        assert_eq!(split_words(" a  bc", '\\')[1].0, 4);
    }

    #[test]
    fn unquote_table() {
        assert_eq!(unquote("\"a b\"", '\\'), "a b");
        assert_eq!(unquote("'a\\b'", '\\'), "a\\b");
        assert_eq!(unquote("a\\,b", '\\'), "a,b");
        assert_eq!(unquote("$x", '\\'), "$x");
    }

    #[test]
    fn json_table() {
        assert_eq!(
            json_array(r#"["sh", "-c", "echo hi"]"#),
            Some(vec!["sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(json_array("[]"), Some(vec![]));
        assert_eq!(json_array("['sh']"), None);
        assert_eq!(json_array("[\"a\", 1]"), None);
        assert_eq!(json_array("echo [x]"), None);
        assert_eq!(json_array("[\"a\"] x"), None);
    }
}
