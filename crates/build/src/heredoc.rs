//! Heredocs: `RUN <<EOF`, `RUN <<-EOF`, `COPY <<"EOF" /dest`, several on one line.

use crate::words::{split_words, unquote};

/// One here-document attached to a `RUN`, `COPY` or `ADD` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter, without quotes (`EOF` for `<<"EOF"`).
    pub name: String,
    /// The body exactly as written, each line ending in `\n`, the terminator excluded. Leading
    /// tabs are kept even with `<<-`; [`Heredoc::text`] strips them.
    pub content: String,
    /// Whether variables in the body are expanded: false when the delimiter is quoted.
    pub expand: bool,
    /// Whether leading tabs are stripped (`<<-`).
    pub strip_tabs: bool,
    /// The file descriptor written before `<<` (`3<<EOF`), if any.
    pub fd: Option<u32>,
}

impl Heredoc {
    /// The body with leading tabs removed from each line when [`strip_tabs`](Self::strip_tabs)
    /// is set; the body unchanged otherwise.
    pub fn text(&self) -> String {
        if !self.strip_tabs {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// The heredoc markers in one logical line, in order, with empty bodies; `(offset, heredoc)`.
pub(crate) fn markers(line: &str, escape: char) -> Vec<(usize, Heredoc)> {
    let mut out = Vec::new();
    for (off, word) in split_words(line, escape) {
        let digits = word.bytes().take_while(u8::is_ascii_digit).count();
        let Some(rest) = word[digits..].strip_prefix("<<") else {
            continue;
        };
        let (strip_tabs, name) = match rest.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, rest),
        };
        if name.is_empty() || name.contains('<') {
            continue;
        }
        let quoted = name.contains(['"', '\'']);
        if quoted && !balanced_quotes(name) {
            continue;
        }
        let unquoted = unquote(name, escape);
        if unquoted.is_empty() {
            continue;
        }
        out.push((
            off,
            Heredoc {
                name: unquoted,
                content: String::new(),
                expand: !quoted,
                strip_tabs,
                fd: word[..digits].parse().ok(),
            },
        ));
    }
    out
}

fn balanced_quotes(s: &str) -> bool {
    let mut quote = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None => {}
        }
    }
    quote.is_none()
}

/// Whether `line` ends the heredoc `h`.
pub(crate) fn is_terminator(h: &Heredoc, line: &str) -> bool {
    let l = if h.strip_tabs {
        line.trim_start_matches('\t')
    } else {
        line
    };
    l == h.name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<(String, bool, bool, Option<u32>)> {
        markers(line, '\\')
            .into_iter()
            .map(|(_, h)| (h.name, h.expand, h.strip_tabs, h.fd))
            .collect()
    }

    #[test]
    fn marker_table() {
        let t = |n: &str, e, s, fd| (n.to_string(), e, s, fd);
        assert_eq!(names("RUN <<EOF"), vec![t("EOF", true, false, None)]);
        assert_eq!(names("RUN <<-EOT bash"), vec![t("EOT", true, true, None)]);
        assert_eq!(names("RUN <<\"EOF\""), vec![t("EOF", false, false, None)]);
        assert_eq!(names("RUN <<'EOF'"), vec![t("EOF", false, false, None)]);
        assert_eq!(
            names("RUN <<A cat > /a && 3<<'B' cat > /b"),
            vec![t("A", true, false, None), t("B", false, false, Some(3))]
        );
        assert_eq!(names("COPY <<EOF /dest"), vec![t("EOF", true, false, None)]);
        assert!(names("RUN echo '<<EOF'").is_empty());
        assert!(names("RUN echo <<").is_empty());
        assert!(names("RUN cat <<<word").is_empty());
        assert!(names("RUN cat <<'EOF").is_empty());
    }

    #[test]
    fn strip_tabs_text() {
        let h = Heredoc {
            name: "E".into(),
            content: "\t\tone\n\ttwo\n  three\n".into(),
            expand: true,
            strip_tabs: true,
            fd: None,
        };
        assert_eq!(h.text(), "one\ntwo\n  three\n");
        assert!(is_terminator(&h, "\t\tE"));
        let h = Heredoc {
            strip_tabs: false,
            ..h
        };
        assert_eq!(h.text(), h.content);
        assert!(!is_terminator(&h, "\tE"));
    }
}
