//! A name → position index of a tar archive on a seekable file.
//!
//! One pass records where each member's data lies; later reads go straight there. That lets
//! `manifest.json` or `index.json` sit anywhere in the archive (Docker writes it last) without
//! holding anything but names and offsets in memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use tar::EntryType;

use crate::error::ArchiveError;

/// JSON documents (manifests, configs, indexes) are read whole; anything larger than this is not a
/// real one, and refusing it keeps a hostile archive from making us allocate without bound.
pub(crate) const MAX_JSON: u64 = 64 << 20;

/// Links are followed at most this deep, which also ends link cycles.
const MAX_LINK_DEPTH: usize = 16;

enum Node {
    File { offset: u64, size: u64 },
    Symlink(String),
    Hardlink(String),
}

/// The members of one archive, by normalised name.
pub(crate) struct ArchiveIndex<'f> {
    file: &'f File,
    /// The archive's path, for messages.
    pub(crate) display: String,
    entries: HashMap<String, Node>,
}

/// Reads one member's bytes by position, so several can be open at once on one file handle.
pub(crate) struct EntryReader<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

impl Read for EntryReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive is truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// `a/./b/` → `a/b`; refuses absolute names and `..` because a member's name is later used to
/// find files the archive refers to, and such names could only point outside it.
pub(crate) fn normalize(name: &str) -> Result<String, &'static str> {
    if name.starts_with('/') {
        return Err("absolute path");
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("path contains .."),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

impl<'f> ArchiveIndex<'f> {
    /// Reads every header of `file` (positioned anywhere; tar's own seeking skips data).
    pub(crate) fn build(file: &'f File, display: &str) -> Result<Self, ArchiveError> {
        let io_err = |e| ArchiveError::io(display, "reading tar headers", e);
        let mut reader = file;
        io::Seek::rewind(&mut reader).map_err(io_err)?;
        let mut archive = tar::Archive::new(reader);
        let mut entries = HashMap::new();
        for entry in archive.entries_with_seek().map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = normalize(&raw).map_err(|reason| ArchiveError::UnsafeEntry {
                file: display.to_string(),
                entry: raw.clone(),
                reason: reason.to_string(),
            })?;
            let link = || {
                entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default()
            };
            let node = match entry.header().entry_type() {
                EntryType::Regular | EntryType::Continuous => Node::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
                EntryType::Symlink => Node::Symlink(link()),
                EntryType::Link => Node::Hardlink(link()),
                // Directories and device nodes carry nothing an image needs.
                _ => continue,
            };
            // Later members replace earlier ones of the same name, as when tar extracts.
            entries.insert(name, node);
        }
        Ok(ArchiveIndex {
            file,
            display: display.to_string(),
            entries,
        })
    }

    fn refused_entry(&self, entry: &str, reason: &str) -> ArchiveError {
        ArchiveError::UnsafeEntry {
            file: self.display.clone(),
            entry: entry.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Resolves `name` through links to a regular member: `Ok(None)` when there is none.
    fn resolve(&self, name: &str) -> Result<Option<(u64, u64)>, ArchiveError> {
        let mut current = normalize(name).map_err(|r| self.refused_entry(name, r))?;
        for _ in 0..MAX_LINK_DEPTH {
            let next = match self.entries.get(&current) {
                None => return Ok(None),
                Some(Node::File { offset, size }) => return Ok(Some((*offset, *size))),
                // A hard link's target is a member name, relative to the archive root.
                Some(Node::Hardlink(target)) => {
                    normalize(target).map_err(|r| self.refused_entry(&current, r))?
                }
                // A symlink's target is relative to the link's directory; docker save writes
                // `../<id>/layer.tar` for a layer shared by two images.
                Some(Node::Symlink(target)) => {
                    if target.starts_with('/') {
                        return Err(self.refused_entry(&current, "link target is absolute"));
                    }
                    let mut parts: Vec<&str> = current.split('/').collect();
                    parts.pop();
                    for part in target.split('/') {
                        match part {
                            "" | "." => {}
                            ".." => {
                                if parts.pop().is_none() {
                                    return Err(self.refused_entry(
                                        &current,
                                        "link target leaves the archive",
                                    ));
                                }
                            }
                            p => parts.push(p),
                        }
                    }
                    parts.join("/")
                }
            };
            current = next;
        }
        Err(self.refused_entry(name, "too many levels of links"))
    }

    /// Whether a regular member (possibly through links) has this name.
    pub(crate) fn contains(&self, name: &str) -> Result<bool, ArchiveError> {
        Ok(self.resolve(name)?.is_some())
    }

    /// Opens a member for reading; `by` names the document that referred to it, for the error.
    pub(crate) fn open(
        &self,
        name: &str,
        by: &str,
    ) -> Result<(EntryReader<'f>, u64), ArchiveError> {
        let (offset, size) = self.resolve(name)?.ok_or_else(|| ArchiveError::Missing {
            file: self.display.clone(),
            entry: name.to_string(),
            by: by.to_string(),
        })?;
        let reader = EntryReader {
            file: self.file,
            pos: offset,
            end: offset + size,
        };
        Ok((reader, size))
    }

    /// Reads a small member (a JSON document) whole.
    pub(crate) fn read_small(&self, name: &str, by: &str) -> Result<Vec<u8>, ArchiveError> {
        let (mut reader, size) = self.open(name, by)?;
        if size > MAX_JSON {
            return Err(ArchiveError::invalid(
                &self.display,
                name,
                format!("{size} bytes is too large for a json document"),
            ));
        }
        let mut buf = Vec::with_capacity(size as usize);
        reader
            .read_to_end(&mut buf)
            .map_err(|e| ArchiveError::io(&self.display, format!("reading entry {name}"), e))?;
        Ok(buf)
    }
}
