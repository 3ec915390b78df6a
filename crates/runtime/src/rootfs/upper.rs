//! Mount points made ready in the overlay's upper layer before the overlay is mounted.
//!
//! A bind mount needs its target to exist. Creating it through the merged overlay copies the
//! parent directory up, which the container's root may not be allowed to do: lower layers
//! from a store another user made (a site's shared cache, owned by the host's root) look
//! owned by `nobody` in the container's user namespace, and nobody's `/etc` is not writable
//! by a root that is only root there. The upper layer belongs to the caller, so the parents
//! and the target are made there directly, with the modes the lower layers give the parents;
//! overlayfs then merges them with the lower directories as usual.

use std::fs::{self, DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// What a path is in the lower layers, looked up top-most first.
enum Lower {
    Dir(u32),
    Other,
    Absent,
}

fn lookup(lower: &[PathBuf], rel: &Path) -> Lower {
    for l in lower {
        match fs::symlink_metadata(l.join(rel)) {
            // A whiteout: absent here and below.
            Ok(m) if m.file_type().is_char_device() && m.rdev() == 0 => return Lower::Absent,
            Ok(m) if m.is_dir() => return Lower::Dir(m.mode() & 0o7777),
            Ok(_) => return Lower::Other,
            Err(_) => continue,
        }
    }
    Lower::Absent
}

/// Creates `dest` (a file, or a directory when `dir`) and its missing parents in `upper`,
/// unless the lower layers already have it. Gives up silently where the lower layers have
/// something other than a directory on the way (a symlink is resolved in the container, not
/// here); the mount then creates its target as before.
pub(super) fn prepare_target(lower: &[PathBuf], upper: &Path, dest: &Path, dir: bool) {
    let parts: Vec<_> = dest
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    if parts.is_empty()
        || parts.len()
            != dest
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .count()
    {
        return;
    }
    let mut rel = PathBuf::new();
    for (i, part) in parts.iter().enumerate() {
        rel.push(part);
        let last = i + 1 == parts.len();
        let in_upper = upper.join(&rel);
        if fs::symlink_metadata(&in_upper).is_ok() {
            if last || !in_upper.is_dir() {
                return;
            }
            continue;
        }
        match lookup(lower, &rel) {
            Lower::Other => return,
            Lower::Dir(_) if last => return,
            Lower::Dir(mode) => {
                if DirBuilder::new().mode(mode).create(&in_upper).is_err() {
                    return;
                }
            }
            Lower::Absent if !last => {
                if DirBuilder::new().mode(0o755).create(&in_upper).is_err() {
                    return;
                }
            }
            Lower::Absent if dir => {
                let _ = DirBuilder::new().mode(0o755).create(&in_upper);
            }
            Lower::Absent => {
                let _ = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(&in_upper);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_take_the_lower_mode_and_existing_targets_are_left() {
        let t = tempfile::tempdir().unwrap();
        let lower = t.path().join("lower");
        let upper = t.path().join("upper");
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::set_permissions(
            lower.join("etc"),
            std::os::unix::fs::PermissionsExt::from_mode(0o751),
        )
        .unwrap();
        fs::write(lower.join("etc/passwd"), "root").unwrap();
        std::os::unix::fs::symlink("/elsewhere", lower.join("link")).unwrap();
        fs::create_dir_all(&upper).unwrap();
        let lowers = vec![lower.clone()];

        prepare_target(&lowers, &upper, Path::new("/etc/hostname"), false);
        assert!(upper.join("etc/hostname").is_file());
        assert_eq!(
            fs::metadata(upper.join("etc")).unwrap().mode() & 0o7777,
            0o751
        );
        prepare_target(&lowers, &upper, Path::new("/etc/passwd"), false);
        assert!(!upper.join("etc/passwd").exists());
        prepare_target(&lowers, &upper, Path::new("/link/x"), true);
        assert!(!upper.join("link").exists());
        prepare_target(&lowers, &upper, Path::new("/new/dir"), true);
        assert!(upper.join("new/dir").is_dir());
        prepare_target(&lowers, &upper, Path::new("/../x"), false);
        assert!(!t.path().join("x").exists());
    }
}
