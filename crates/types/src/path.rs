//! Paths named from inside a root (an archive's entries, a container's files), as plain names.

use std::path::{Component, Path, PathBuf};

/// `p` relative to the root it is named in (`./a/b/` and `/a/b` → `a/b`, `/` → ``), or
/// `None` when a `..` component would climb out of that root.
pub fn inside_root(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside() {
        assert_eq!(inside_root(Path::new("./a/b/")), Some(PathBuf::from("a/b")));
        assert_eq!(inside_root(Path::new("/a/./b")), Some(PathBuf::from("a/b")));
        assert_eq!(inside_root(Path::new("/")), Some(PathBuf::new()));
        assert_eq!(inside_root(Path::new("a/../b")), None);
    }
}
