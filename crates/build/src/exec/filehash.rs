//! Content digests of `COPY`/`ADD` sources, remembered across builds by file identity and
//! timestamps, as git's index does: an unchanged rebuild need not read 50 MB to find its
//! cache key.
//!
//! A file's digest is reused when its device, inode, size, modification time and change time
//! (which no user can set back) are all the same as when it was hashed. A file changed in the
//! last seconds is hashed but not remembered: a second change within the same timestamp tick
//! would otherwise go unseen.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Files changed less than this many seconds ago are not remembered.
const SETTLE_SECS: i64 = 2;
/// Beyond this many entries, only the files of the current build are kept.
const MAX_ENTRIES: usize = 100_000;

/// What identifies a file's contents without reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Known {
    stamp: Stamp,
    sha256: String,
}

/// Remembered digests, by host path.
#[derive(Debug, Default)]
pub struct FileDigests {
    known: HashMap<String, Known>,
    used: HashMap<String, Known>,
    changed: bool,
}

impl FileDigests {
    /// Reads the digests remembered at `path`; none when it is missing or unreadable.
    pub fn load(path: &Path) -> FileDigests {
        let known = fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        FileDigests {
            known,
            ..FileDigests::default()
        }
    }

    /// Writes them back (aside and renamed) when something was learnt.
    pub fn save(&self, path: &Path) {
        if !self.changed {
            return;
        }
        let mut all = self.known.clone();
        if all.len() + self.used.len() > MAX_ENTRIES {
            all.clear();
        }
        all.extend(self.used.clone());
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if let Ok(bytes) = serde_json::to_vec(&all) {
            if fs::write(&tmp, bytes).is_ok() {
                let _ = fs::rename(&tmp, path);
            }
        }
    }

    /// The SHA-256 (hex) of the regular file `host`, whose metadata is `m`.
    pub fn digest(&mut self, host: &Path, m: &fs::Metadata) -> std::io::Result<String> {
        let key = host.to_string_lossy().to_string();
        let stamp = Stamp::of(m);
        if let Some(k) = self.known.get(&key).filter(|k| k.stamp == stamp) {
            let k = k.clone();
            self.used.insert(key, k.clone());
            return Ok(k.sha256);
        }
        let sha256 = hash_file(host)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if now - stamp.ctime.0.max(stamp.mtime.0) >= SETTLE_SECS {
            let k = Known {
                stamp,
                sha256: sha256.clone(),
            };
            self.known.insert(key.clone(), k.clone());
            self.used.insert(key, k);
            self.changed = true;
        }
        Ok(sha256)
    }
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_settled_files_and_sees_changes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, "one").unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mut d = FileDigests::default();
        let m = fs::metadata(&f).unwrap();
        let first = d.digest(&f, &m).unwrap();
        // Just changed (ctime is now): hashed, not remembered.
        assert!(!d.changed);
        // Pretend it settled: a remembered stamp is trusted without reading the file.
        d.known.insert(
            f.to_string_lossy().to_string(),
            Known {
                stamp: Stamp::of(&m),
                sha256: "remembered".into(),
            },
        );
        assert_eq!(d.digest(&f, &m).unwrap(), "remembered");
        fs::write(&f, "two").unwrap();
        let m = fs::metadata(&f).unwrap();
        let second = d.digest(&f, &m).unwrap();
        assert_ne!(second, "remembered");
        assert_ne!(first, second);
        let index = dir.path().join("digests.json");
        d.changed = true;
        d.save(&index);
        let back = FileDigests::load(&index);
        assert!(back.known.contains_key(&f.to_string_lossy().to_string()));
    }
}
