//! Mount points that the runtime made for a RUN step, taken out of the step's layer.
//!
//! The runtime creates the targets of its mounts (`/dev/pts`, `/proc`, `/etc/hosts`, …) in the
//! overlay's upper directory when the image lacks them. They belong to the container, not to
//! the image: Docker and BuildKit leave them out of a RUN's layer, and a RUN that changes
//! nothing else has an empty layer.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::files::Merged;

/// Mount targets and their parents, deepest first, so a parent is empty once its stubs are gone.
const TARGETS: &[&str] = &[
    "dev/mqueue",
    "dev/pts",
    "dev/shm",
    "dev",
    "proc",
    "sys",
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "etc",
];

/// Removes from `upper` the mount stubs still as the runtime made them: empty files and
/// directories that the lower layers (`lower`, top layer first) lack, and empty directories
/// that only repeat a lower directory with the same mode. Anything the step put there stays.
pub(super) fn remove(upper: &Path, lower: &[PathBuf]) {
    let merged = Merged { dirs: lower };
    for rel in TARGETS {
        let p = upper.join(rel);
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        let below = merged
            .lookup(rel)
            .and_then(|l| fs::symlink_metadata(l).ok());
        if meta.is_dir() {
            let empty = fs::read_dir(&p).is_ok_and(|mut d| d.next().is_none());
            let same = below
                .as_ref()
                .is_none_or(|b| b.is_dir() && b.mode() & 0o7777 == meta.mode() & 0o7777);
            if empty && same && !super::layer::is_opaque(&p) {
                let _ = fs::remove_dir(&p);
            }
        } else if meta.is_file() && meta.len() == 0 && below.is_none() {
            let _ = fs::remove_file(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_untouched_stubs_go() {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        fs::create_dir_all(lower.join("dev")).unwrap();
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::write(lower.join("etc/hosts"), "").unwrap();
        for d in ["dev/pts", "dev/shm", "proc", "etc", "sys/kernel"] {
            fs::create_dir_all(upper.join(d)).unwrap();
        }
        fs::set_permissions(upper.join("etc"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(upper.join("dev/shm/kept"), "x").unwrap();
        fs::write(upper.join("etc/hostname"), "").unwrap();
        remove(&upper, &[lower]);
        assert!(!upper.join("dev/pts").exists());
        assert!(upper.join("dev/shm/kept").exists());
        assert!(!upper.join("proc").exists());
        assert!(upper.join("sys/kernel").exists());
        assert!(!upper.join("etc/hostname").exists());
        // Its mode differs from the lower /etc: a change of the step's own.
        assert!(upper.join("etc").exists());
    }
}
