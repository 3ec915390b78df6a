//! One tar of an image's merged file system: what a container would see, without unpacking.
//!
//! Layers are read top first. A path is written the first time it is met, so an upper layer's
//! version wins; whiteouts (`.wh.NAME`) and opaque markers (`.wh..wh..opq`) hide what lower
//! layers hold at or below them and are not written themselves. The result is an ordinary tar
//! whose entries may come before their parent directory (an upper layer's file, a lower layer's
//! directory): tools that build file systems from tars (`mksquashfs -tar`) create missing
//! parents and apply the directory's entry when it comes.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use berth_types::{inside_root, Digest};

use crate::stream::{decompress, sniff};
use crate::{ArchiveError, BlobSource};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// What [`flatten`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flattened {
    /// Entries written.
    pub entries: u64,
    /// Entries of lower layers left out: shadowed, whited out or under an opaque directory.
    pub hidden: u64,
    /// Permission bits of the root directory, from the top-most layer that has a `./` entry.
    pub root_mode: Option<u32>,
}

/// Writes the merged file system of `layers` (compressed or plain layer blobs, bottom first,
/// as in an image manifest) to `out` as one tar. `progress` is called with the number of
/// compressed bytes read from the blobs as they are consumed.
pub fn flatten(
    src: &dyn BlobSource,
    layers: &[Digest],
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<Flattened, ArchiveError> {
    let mut builder = tar::Builder::new(out);
    let mut done = Flattened::default();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    // Whiteouts (the path and all below it) and opaque directories (all below them) of the
    // layers above the current one.
    let mut hidden = Hidden::default();
    for digest in layers.iter().rev() {
        let file = digest.to_string();
        let io_err = |what: &str, e: io::Error| ArchiveError::Io {
            file: file.clone(),
            what: what.to_string(),
            source: e,
        };
        let blob = src
            .open(digest)
            .map_err(|e| io_err("opening the layer", e))?;
        let counted = Counting {
            inner: blob,
            report: &mut *progress,
        };
        let (compression, raw) = sniff(counted).map_err(|e| io_err("reading the layer", e))?;
        let reader = decompress(io::BufReader::new(raw), compression)
            .map_err(|e| io_err("decompressing the layer", e))?;
        let mut archive = tar::Archive::new(reader);
        let mut this_layer = Hidden::default();
        let entries = archive
            .entries()
            .map_err(|e| io_err("reading the layer", e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| io_err("reading an entry", e))?;
            let raw_path = entry
                .path()
                .map_err(|e| io_err("reading an entry name", e))?
                .into_owned();
            let path = inside_root(&raw_path).ok_or_else(|| ArchiveError::UnsafeEntry {
                file: file.clone(),
                entry: raw_path.display().to_string(),
                reason: "the name climbs out with ..".into(),
            })?;
            if path.as_os_str().is_empty() {
                if done.root_mode.is_none() {
                    done.root_mode = entry.header().mode().ok().map(|m| m & 0o7777);
                }
                continue;
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name == OPAQUE {
                this_layer
                    .opaque
                    .insert(path.parent().map(Path::to_path_buf).unwrap_or_default());
                continue;
            }
            if let Some(target) = name.strip_prefix(WHITEOUT) {
                this_layer.whited.insert(path.with_file_name(target));
                continue;
            }
            if hidden.hides(&path) || !seen.insert(path.clone()) {
                done.hidden += 1;
                continue;
            }
            let mut header = entry.header().clone();
            let kind = header.entry_type();
            if kind.is_hard_link() || kind.is_symlink() {
                let target = entry
                    .link_name()
                    .map_err(|e| io_err("reading a link target", e))?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                // Hard links name a path in the same tree; symlink targets are kept as written.
                let target = if kind.is_hard_link() {
                    inside_root(&target).ok_or_else(|| ArchiveError::UnsafeEntry {
                        file: file.clone(),
                        entry: raw_path.display().to_string(),
                        reason: format!("hard link target {} climbs out", target.display()),
                    })?
                } else {
                    target
                };
                builder
                    .append_link(&mut header, &path, &target)
                    .map_err(|e| io_err("writing an entry", e))?;
            } else {
                if let Some(pax) = entry
                    .pax_extensions()
                    .map_err(|e| io_err("reading extended attributes", e))?
                {
                    let xattrs: Vec<(String, Vec<u8>)> = pax
                        .flatten()
                        .filter_map(|x| {
                            let key = x.key().ok()?;
                            key.starts_with("SCHILY.xattr.")
                                .then(|| (key.to_string(), x.value_bytes().to_vec()))
                        })
                        .collect();
                    if !xattrs.is_empty() {
                        builder
                            .append_pax_extensions(
                                xattrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
                            )
                            .map_err(|e| io_err("writing extended attributes", e))?;
                    }
                }
                builder
                    .append_data(&mut header, &path, &mut entry)
                    .map_err(|e| io_err("writing an entry", e))?;
            }
            done.entries += 1;
        }
        hidden.whited.extend(this_layer.whited);
        hidden.opaque.extend(this_layer.opaque);
    }
    builder
        .into_inner()
        .and_then(|w| w.flush())
        .map_err(|e| ArchiveError::Io {
            file: "<output>".into(),
            what: "finishing the tar".into(),
            source: e,
        })?;
    Ok(done)
}

/// The permission bits of the root directory as the top-most layer with a `./` entry (its
/// first entry, when present) gives them; reads one tar header per layer.
pub fn root_mode(src: &dyn BlobSource, layers: &[Digest]) -> Option<u32> {
    for digest in layers.iter().rev() {
        let (compression, raw) = sniff(src.open(digest).ok()?).ok()?;
        let reader = decompress(io::BufReader::new(raw), compression).ok()?;
        let mut archive = tar::Archive::new(reader);
        let Some(Ok(first)) = archive.entries().ok()?.next() else {
            continue;
        };
        if inside_root(&first.path().ok()?).is_some_and(|p| p.as_os_str().is_empty()) {
            return first.header().mode().ok().map(|m| m & 0o7777);
        }
    }
    None
}

/// Paths that layers above have removed.
#[derive(Default)]
struct Hidden {
    /// `.wh.NAME`: the path and everything below it.
    whited: HashSet<PathBuf>,
    /// `.wh..wh..opq` in a directory: everything below it, not the directory itself.
    opaque: HashSet<PathBuf>,
}

impl Hidden {
    fn hides(&self, path: &Path) -> bool {
        (!self.whited.is_empty() && path.ancestors().any(|a| self.whited.contains(a)))
            || (!self.opaque.is_empty()
                && path.ancestors().skip(1).any(|a| self.opaque.contains(a)))
    }
}

/// Counts the bytes read through it and reports them.
struct Counting<'a, R> {
    inner: R,
    report: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.report)(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Blobs(HashMap<Digest, Vec<u8>>);

    impl BlobSource for Blobs {
        fn open(&self, d: &Digest) -> io::Result<Box<dyn Read>> {
            Ok(Box::new(io::Cursor::new(self.0[d].clone())))
        }
        fn size(&self, d: &Digest) -> io::Result<u64> {
            Ok(self.0[d].len() as u64)
        }
    }

    fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            match data {
                Some(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, path, d.as_bytes()).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o750);
                    b.append_data(&mut h, path, io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn merged(layers: Vec<Vec<u8>>) -> (Vec<(String, String)>, Flattened) {
        let mut blobs = HashMap::new();
        let mut order = Vec::new();
        for l in layers {
            let d = Digest::sha256_of(&l);
            order.push(d.clone());
            blobs.insert(d, l);
        }
        let mut out = Vec::new();
        let mut read = 0;
        let stats = flatten(&Blobs(blobs), &order, &mut out, &mut |n| read += n).unwrap();
        assert!(read > 0);
        let mut a = tar::Archive::new(io::Cursor::new(out));
        let mut got = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().display().to_string();
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            got.push((p, s));
        }
        got.sort();
        (got, stats)
    }

    #[test]
    fn upper_layers_win_and_whiteouts_hide() {
        let base = layer(&[
            ("./", None),
            ("etc/", None),
            ("etc/a", Some("base a")),
            ("etc/b", Some("base b")),
            ("opt/", None),
            ("opt/old", Some("old")),
            ("gone/", None),
            ("gone/x", Some("x")),
        ]);
        let top = layer(&[
            ("etc/a", Some("top a")),
            ("etc/.wh.b", Some("")),
            ("opt/.wh..wh..opq", Some("")),
            ("opt/new", Some("new")),
            (".wh.gone", Some("")),
        ]);
        let (got, stats) = merged(vec![base, top]);
        let want: Vec<(String, String)> = [
            ("etc", ""),
            ("etc/a", "top a"),
            ("opt", ""),
            ("opt/new", "new"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(stats.root_mode, Some(0o750));
        // base's etc/a, etc/b, opt/old, gone and gone/x
        assert_eq!(stats.hidden, 5);
    }

    #[test]
    fn climbing_names_are_refused() {
        // The tar crate refuses to write such a name, so it goes into the header by hand.
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..9].copy_from_slice(b"../escape");
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b"x"[..]).unwrap();
        let bad = b.into_inner().unwrap();
        let d = Digest::sha256_of(&bad);
        let mut blobs = HashMap::new();
        blobs.insert(d.clone(), bad);
        let err = flatten(&Blobs(blobs), &[d], &mut Vec::new(), &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("climbs out"), "{err}");
    }
}
