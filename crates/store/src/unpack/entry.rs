//! Writing one tar entry into a layer directory, never outside it.

use std::ffi::OsStr;
use std::fs::{self, File, FileTimes, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{fchown, lchown, symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use berth_types::Digest;
use rustix::fs::{AtFlags, FileType, Mode, Timestamps, XattrFlags, CWD};
use tar::EntryType;

use super::fsutil::{clear, dirs_intact, link_stays_inside, normalise, walk_dirs, ParentError};
use crate::error::{IoContext, StoreError};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "user.overlay.opaque";

/// A directory whose mode and mtime are applied after all entries, so that a read-only
/// directory can still receive its children and its mtime is not bumped by them.
struct PendingDir {
    path: PathBuf,
    mode: u32,
    mtime: u64,
}

/// State of one layer unpack into `root`, a private temp directory.
pub(super) struct Unpacker {
    root: PathBuf,
    blob: Digest,
    privileged: bool,
    pub(super) warnings: Vec<String>,
    pub(super) size: u64,
    dirs: Vec<PendingDir>,
    buf: Vec<u8>,
    /// Failed chowns, reported once: a non-root caller that asked for a privileged unpack
    /// would otherwise get one warning per entry.
    chown_failures: usize,
    first_chown_failure: Option<String>,
}

impl Unpacker {
    pub(super) fn new(root: PathBuf, blob: Digest, rootless: bool) -> Unpacker {
        Unpacker {
            root,
            blob,
            privileged: !rootless,
            warnings: Vec::new(),
            size: 0,
            dirs: Vec::new(),
            buf: vec![0; 256 * 1024],
            chown_failures: 0,
            first_chown_failure: None,
        }
    }

    fn warn(&mut self, name: &str, what: impl std::fmt::Display) {
        self.warnings.push(format!("{name}: {what}"));
    }

    fn corrupt(&self, e: io::Error) -> StoreError {
        StoreError::CorruptLayer {
            blob: self.blob.clone(),
            reason: e.to_string(),
        }
    }

    /// Applies one entry. Unsafe or unsupported entries are skipped with a warning; only
    /// filesystem failures and unreadable input are errors.
    pub(super) fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<(), StoreError> {
        let raw = e.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let kind = e.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        let Some((comps, absolute)) = normalise(&raw) else {
            self.warn(&name, "skipped: path contains \"..\"");
            return Ok(());
        };
        if absolute {
            self.warn(&name, "absolute path made relative to the layer root");
        }
        let header = e.header();
        let mode = header.mode().map_err(|e| self.corrupt(e))? & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        let Some((&base, parents)) = comps.split_last() else {
            if kind == EntryType::Directory {
                // The layer root itself: keep it writable by its owner so it can be renamed
                // into place and later removed.
                let root = self.root.clone();
                self.chown(&name, &root, uid, gid);
                self.dirs.push(PendingDir {
                    path: root,
                    mode: mode | 0o700,
                    mtime,
                });
            }
            return Ok(());
        };
        let base_bytes = base.as_bytes();
        if base_bytes.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return self.whiteout(&name, parents, base);
        }
        let Some(parent) = self.parent(&name, parents, true)? else {
            return Ok(());
        };
        let target = parent.join(base);
        let xattrs = self.xattrs(&name, e)?;
        match kind {
            EntryType::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    _ => {
                        clear(&target).at(&target)?;
                        fs::DirBuilder::new().create(&target).at(&target)?;
                    }
                }
                self.chown(&name, &target, uid, gid);
                self.dirs.push(PendingDir {
                    path: target.clone(),
                    mode,
                    mtime,
                });
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                clear(&target).at(&target)?;
                self.regular(&name, &target, e, mode, uid, gid, mtime)?;
            }
            EntryType::Symlink => {
                let Some(link) = e.link_name_bytes().map(|l| l.into_owned()) else {
                    self.warn(&name, "skipped: symlink without a target");
                    return Ok(());
                };
                clear(&target).at(&target)?;
                symlink(OsStr::from_bytes(&link), &target).at(&target)?;
                // A symlink's size is its target's length, as `lstat` and Docker count it.
                self.size += link.len() as u64;
                self.chown(&name, &target, uid, gid);
                set_mtime(&target, mtime);
            }
            EntryType::Link => {
                let link = e
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                let Some(source) = self.hardlink_source(&name, &link)? else {
                    return Ok(());
                };
                if source == target {
                    return Ok(());
                }
                clear(&target).at(&target)?;
                // linkat without AT_SYMLINK_FOLLOW links the named inode itself, never what
                // a symlink there points to.
                rustix::fs::linkat(CWD, &source, CWD, &target, AtFlags::empty())
                    .map_err(io::Error::from)
                    .at(&target)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                if kind != EntryType::Fifo && !self.privileged {
                    self.warn(&name, "skipped: device nodes need root");
                    return Ok(());
                }
                let file_type = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    e.header().device_major().ok().flatten().unwrap_or(0),
                    e.header().device_minor().ok().flatten().unwrap_or(0),
                );
                let mode = self.filter_mode(&name, mode);
                clear(&target).at(&target)?;
                if let Err(err) =
                    rustix::fs::mknodat(CWD, &target, file_type, Mode::from_raw_mode(mode), dev)
                {
                    self.warn(&name, format_args!("skipped: cannot create node: {err}"));
                    return Ok(());
                }
                self.chown(&name, &target, uid, gid);
                // mknod applies the umask; the image's mode is what the container expects.
                if let Err(err) = fs::set_permissions(&target, Permissions::from_mode(mode)) {
                    self.warn(&name, format_args!("cannot set mode: {err}"));
                }
                set_mtime(&target, mtime);
            }
            other => {
                self.warn(
                    &name,
                    format_args!("skipped: unsupported entry type {other:?}"),
                );
                return Ok(());
            }
        }
        self.apply_xattrs(&name, &target, &xattrs);
        Ok(())
    }

    /// The safe parent directory, `None` (with a warning) when a component is a symlink.
    fn parent(
        &mut self,
        name: &str,
        parents: &[&OsStr],
        create: bool,
    ) -> Result<Option<PathBuf>, StoreError> {
        match walk_dirs(&self.root, parents, create) {
            Ok(p) => Ok(Some(p)),
            Err(ParentError::Symlink(p)) => {
                let rel = self.rel(&p);
                self.warn(name, format_args!("skipped: parent {rel} is a symlink"));
                Ok(None)
            }
            Err(ParentError::Missing(p)) => {
                let rel = self.rel(&p);
                self.warn(
                    name,
                    format_args!("skipped: {rel} does not exist in this layer"),
                );
                Ok(None)
            }
            Err(ParentError::Io(p, e)) => Err(StoreError::io(p, e)),
        }
    }

    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .unwrap_or(p)
            .display()
            .to_string()
    }

    #[allow(clippy::too_many_arguments)]
    fn regular<R: Read>(
        &mut self,
        name: &str,
        target: &Path,
        e: &mut tar::Entry<'_, R>,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: u64,
    ) -> Result<(), StoreError> {
        // O_EXCL: the name was just cleared, and an exclusive create never follows a symlink.
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(target)
            .at(target)?;
        loop {
            let n = match e.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(self.corrupt(err)),
            };
            f.write_all(&self.buf[..n]).at(target)?;
            self.size += n as u64;
        }
        if self.privileged {
            if let Err(err) = fchown(&f, Some(uid), Some(gid)) {
                self.chown_failed(name, uid, gid, err);
            }
        }
        // After chown, which clears setuid bits.
        let mode = self.filter_mode(name, mode);
        f.set_permissions(Permissions::from_mode(mode)).at(target)?;
        let t = UNIX_EPOCH + Duration::from_secs(mtime);
        let _ = f.set_times(FileTimes::new().set_accessed(t).set_modified(t));
        Ok(())
    }

    fn filter_mode(&mut self, name: &str, mode: u32) -> u32 {
        if !self.privileged && mode & 0o6000 != 0 {
            self.warn(name, "setuid/setgid bits dropped (rootless unpack)");
            return mode & !0o6000;
        }
        mode
    }

    fn chown(&mut self, name: &str, path: &Path, uid: u32, gid: u32) {
        if self.privileged {
            if let Err(err) = lchown(path, Some(uid), Some(gid)) {
                self.chown_failed(name, uid, gid, err);
            }
        }
    }

    fn chown_failed(&mut self, name: &str, uid: u32, gid: u32, err: io::Error) {
        self.chown_failures += 1;
        if self.first_chown_failure.is_none() {
            self.first_chown_failure = Some(format!("{name}: cannot set owner {uid}:{gid}: {err}"));
        }
    }

    /// Resolves a hardlink's target inside this layer, or warns and returns `None`.
    fn hardlink_source(&mut self, name: &str, link: &[u8]) -> Result<Option<PathBuf>, StoreError> {
        let shown = String::from_utf8_lossy(link).into_owned();
        let Some((comps, _)) = normalise(link) else {
            self.warn(
                name,
                format_args!("skipped: hardlink target {shown} contains \"..\""),
            );
            return Ok(None);
        };
        let Some((&base, parents)) = comps.split_last() else {
            self.warn(name, "skipped: hardlink to the layer root");
            return Ok(None);
        };
        let Some(dir) = self.parent(name, parents, false)? else {
            return Ok(None);
        };
        let source = dir.join(base);
        match fs::symlink_metadata(&source) {
            Ok(m) if m.is_dir() => {
                self.warn(
                    name,
                    format_args!("skipped: hardlink target {shown} is a directory"),
                );
                Ok(None)
            }
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&source).at(&source)?;
                if link_stays_inside(parents, target.as_os_str().as_bytes()) {
                    Ok(Some(source))
                } else {
                    self.warn(
                        name,
                        format_args!("skipped: hardlink target {shown} is a symlink leading outside the layer"),
                    );
                    Ok(None)
                }
            }
            Ok(_) => Ok(Some(source)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                self.warn(
                    name,
                    format_args!("skipped: hardlink target {shown} is not in this layer"),
                );
                Ok(None)
            }
            Err(err) => Err(StoreError::io(source, err)),
        }
    }

    /// Converts an OCI whiteout into overlayfs's own format.
    fn whiteout(&mut self, name: &str, parents: &[&OsStr], base: &OsStr) -> Result<(), StoreError> {
        let Some(dir) = self.parent(name, parents, true)? else {
            return Ok(());
        };
        if base == OPAQUE_MARKER {
            if let Err(err) = rustix::fs::lsetxattr(&dir, OPAQUE_XATTR, b"y", XattrFlags::empty()) {
                self.warn(
                    name,
                    format_args!(
                        "cannot set {OPAQUE_XATTR} ({err}); kept the opaque marker as a file"
                    ),
                );
                let marker = dir.join(base);
                clear(&marker).at(&marker)?;
                File::create(&marker).at(&marker)?;
            }
            return Ok(());
        }
        let hidden = &base.as_bytes()[WHITEOUT_PREFIX.len()..];
        if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            // Other `.wh..wh.` names are AUFS bookkeeping (hardlink dirs), meaningless here.
            return Ok(());
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            self.warn(name, "skipped: malformed whiteout");
            return Ok(());
        }
        let target = dir.join(OsStr::from_bytes(hidden));
        clear(&target).at(&target)?;
        let made = rustix::fs::mknodat(
            CWD,
            &target,
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        );
        if let Err(err) = made {
            self.warn(
                name,
                format_args!("cannot create an overlay whiteout ({err}); kept it as an empty file"),
            );
            let marker = dir.join(base);
            clear(&marker).at(&marker)?;
            File::create(&marker).at(&marker)?;
        }
        Ok(())
    }

    fn xattrs<R: Read>(
        &mut self,
        name: &str,
        e: &mut tar::Entry<'_, R>,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        let Some(exts) = e.pax_extensions().map_err(|err| self.corrupt(err))? else {
            return Ok(out);
        };
        let mut rejected = Vec::new();
        for ext in exts {
            let ext = ext.map_err(|err| self.corrupt(err))?;
            let Ok(key) = ext.key() else { continue };
            let Some(attr) = key.strip_prefix("SCHILY.xattr.") else {
                continue;
            };
            // A layer must not forge overlayfs metadata (opaque dirs, redirects, metacopy):
            // that is this store's to write.
            if attr.contains(".overlay.") {
                rejected.push(attr.to_string());
                continue;
            }
            if !attr.starts_with("user.") && !self.privileged {
                continue;
            }
            out.push((attr.to_string(), ext.value_bytes().to_vec()));
        }
        for attr in rejected {
            self.warn(name, format_args!("ignored extended attribute {attr}"));
        }
        Ok(out)
    }

    fn apply_xattrs(&mut self, name: &str, path: &Path, xattrs: &[(String, Vec<u8>)]) {
        for (attr, value) in xattrs {
            if let Err(err) = rustix::fs::lsetxattr(path, attr.as_str(), value, XattrFlags::empty())
            {
                self.warn(
                    name,
                    format_args!("cannot set extended attribute {attr}: {err}"),
                );
            }
        }
    }

    /// Applies directory modes and mtimes, deepest first. A directory that a later entry
    /// replaced (or hid behind a symlink) is skipped, so a chmod never lands outside.
    pub(super) fn finish_dirs(&mut self) -> Result<(), StoreError> {
        let dirs = std::mem::take(&mut self.dirs);
        for d in dirs.iter().rev() {
            if !dirs_intact(&self.root, &d.path) {
                continue;
            }
            let mode = if d.path == self.root {
                d.mode
            } else {
                let name = self.rel(&d.path);
                self.filter_mode(&name, d.mode)
            };
            fs::set_permissions(&d.path, Permissions::from_mode(mode)).at(&d.path)?;
            set_mtime(&d.path, d.mtime);
        }
        if let Some(first) = self.first_chown_failure.take() {
            let more = self.chown_failures - 1;
            self.warnings.push(if more == 0 {
                first
            } else {
                format!("{first} (and {more} more entries kept the caller's ownership)")
            });
        }
        Ok(())
    }
}

fn set_mtime(path: &Path, mtime: u64) {
    let ts = rustix::fs::Timespec {
        tv_sec: mtime.min(i64::MAX as u64) as i64,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    let _ = rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW);
}
