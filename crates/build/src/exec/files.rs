//! Reading sources for `COPY`: `.dockerignore` rules, globs, and the merged view of a stage's
//! layers (top layer wins, overlay whiteouts hide what is below).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// `.dockerignore` patterns, in order; the last one that matches decides.
#[derive(Debug, Default, Clone)]
pub struct Ignore {
    rules: Vec<(bool, Vec<String>)>,
}

impl Ignore {
    /// Parses `.dockerignore` text: one pattern a line, `#` comments, `!` to re-include.
    pub fn parse(text: &str) -> Ignore {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (neg, pat) = match line.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, line),
            };
            let parts: Vec<String> = pat
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .map(String::from)
                .collect();
            if !parts.is_empty() {
                rules.push((neg, parts));
            }
        }
        Ignore { rules }
    }

    /// Whether `rel` (relative to the context, `/`-separated) is left out. A pattern that
    /// matches a parent directory matches everything below it, as with Docker.
    pub fn excluded(&self, rel: &str) -> bool {
        let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        let mut out = false;
        for (neg, pat) in &self.rules {
            let hit = (1..=comps.len()).any(|n| match_path(pat, &comps[..n]));
            if hit {
                out = !neg;
            }
        }
        out
    }
}

/// Matches path components against pattern components; `**` spans any number of them.
fn match_path(pat: &[String], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((p, rest)) if p == "**" => (0..=path.len()).any(|i| match_path(rest, &path[i..])),
        Some((p, rest)) => match path.split_first() {
            Some((c, more)) => glob(p.as_bytes(), c.as_bytes()) && match_path(rest, more),
            None => false,
        },
    }
}

/// Shell-style match of one path component: `*`, `?` and `[…]` classes.
pub fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| glob(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && glob(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(end) = p.iter().position(|&c| c == b']') else {
                return s.first() == Some(&b'[') && glob(&p[1..], &s[1..]);
            };
            let Some(&c) = s.first() else { return false };
            let class = &p[1..end];
            let (neg, class) = match class.first() {
                Some(b'^') | Some(b'!') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != neg && glob(&p[end + 1..], &s[1..])
        }
        Some(b'\\') if p.len() > 1 => s.first() == Some(&p[1]) && glob(&p[2..], &s[1..]),
        Some(&c) => s.first() == Some(&c) && glob(&p[1..], &s[1..]),
    }
}

/// Whether the last path component has glob characters.
pub fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

/// A stage's file system as its layers stack up; `dirs` are the layer directories, top first.
pub struct Merged<'a> {
    /// Unpacked layer directories, top layer first.
    pub dirs: &'a [PathBuf],
}

impl Merged<'_> {
    /// The host path that holds `rel` in the merged view, if it exists.
    pub fn lookup(&self, rel: &str) -> Option<PathBuf> {
        let rel = rel.trim_start_matches('/');
        if rel.is_empty() {
            return self.dirs.first().cloned();
        }
        for d in self.dirs {
            let p = d.join(rel);
            if let Ok(m) = fs::symlink_metadata(&p) {
                if is_whiteout(&m) {
                    return None;
                }
                return Some(p);
            }
        }
        None
    }

    /// The names in directory `rel` of the merged view.
    pub fn list(&self, rel: &str) -> BTreeSet<String> {
        let rel = rel.trim_start_matches('/');
        let mut seen = BTreeSet::new();
        let mut hidden = BTreeSet::new();
        for d in self.dirs {
            let p = d.join(rel);
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            if !m.is_dir() {
                break;
            }
            if let Ok(rd) = fs::read_dir(&p) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    if hidden.contains(&name) || seen.contains(&name) {
                        continue;
                    }
                    match e.metadata() {
                        Ok(m) if is_whiteout(&m) => {
                            hidden.insert(name);
                        }
                        _ => {
                            seen.insert(name);
                        }
                    }
                }
            }
            if super::layer::is_opaque(&p) {
                break;
            }
        }
        seen
    }
}

/// Every path below `root` (relative, `/`-separated, parents before children, sorted), with
/// the host file that holds it; `skip` leaves entries (and what is below them) out.
pub fn walk_host(root: &Path, rel: &str, skip: &dyn Fn(&str) -> bool, out: &mut Vec<String>) {
    let Ok(rd) = fs::read_dir(root.join(rel)) else {
        return;
    };
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    for n in names {
        let r = if rel.is_empty() {
            n
        } else {
            format!("{rel}/{n}")
        };
        if skip(&r) {
            continue;
        }
        out.push(r.clone());
        if fs::symlink_metadata(root.join(&r)).is_ok_and(|m| m.is_dir()) {
            walk_host(root, &r, skip, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_rules() {
        let ig = Ignore::parse("# c\n*.log\n!keep.log\nbuild/\n**/*.tmp\nsecret*\n");
        assert!(ig.excluded("a.log"));
        assert!(!ig.excluded("keep.log"));
        assert!(ig.excluded("build/x/y"));
        assert!(ig.excluded("deep/er/f.tmp"));
        assert!(ig.excluded("f.tmp"));
        assert!(!ig.excluded("sub/a.log"));
        assert!(ig.excluded("secret.txt"));
        assert!(!ig.excluded("src/main.c"));
        assert!(Ignore::parse("*\n!src\n").excluded("x"));
        assert!(!Ignore::parse("*\n!src\n").excluded("src/a"));
    }

    #[test]
    fn globs() {
        assert!(glob(b"*.c", b"main.c"));
        assert!(!glob(b"*.c", b"main.h"));
        assert!(glob(b"f?o", b"foo"));
        assert!(glob(b"[a-c]x", b"bx"));
        assert!(!glob(b"[!a-c]x", b"bx"));
    }
}
