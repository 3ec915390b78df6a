//! `ADD` of a local tar archive: recognised by content (plain, gzip, bzip2, xz or zstd, as
//! Docker does, whatever the file is called) and unpacked into the destination directory.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// A stream format recognised by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Plain,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

fn codec(head: &[u8]) -> Codec {
    if head.starts_with(&[0x1f, 0x8b]) {
        Codec::Gzip
    } else if head.starts_with(b"BZh") {
        Codec::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Codec::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Codec::Zstd
    } else {
        Codec::Plain
    }
}

/// Whether a 512-byte block starts a POSIX or GNU tar (the `ustar` magic).
fn is_tar_block(b: &[u8]) -> bool {
    b.len() >= 262 && &b[257..262] == b"ustar"
}

/// Calls `f` with the decompressed contents of `path`. xz has no streaming reader in the crate
/// used, so it is decompressed on a thread into a pipe.
fn with_reader<T>(path: &Path, f: impl FnOnce(&mut dyn Read) -> io::Result<T>) -> io::Result<T> {
    let mut file = BufReader::new(File::open(path)?);
    let mut head = [0u8; 6];
    let n = read_full(&mut File::open(path)?, &mut head)?;
    match codec(&head[..n]) {
        Codec::Plain => f(&mut file),
        Codec::Gzip => f(&mut flate2::read::MultiGzDecoder::new(file)),
        Codec::Bzip2 => f(&mut bzip2::read::MultiBzDecoder::new(file)),
        Codec::Zstd => f(&mut zstd::stream::read::Decoder::with_buffer(file)?),
        Codec::Xz => {
            let (mut r, mut w) = io::pipe()?;
            std::thread::scope(|s| {
                let t = s.spawn(move || {
                    let res = lzma_rs::xz_decompress(&mut file, &mut w);
                    drop(w);
                    res
                });
                let out = f(&mut r);
                // Drain, so the decompressor never blocks on a full pipe after a reader error.
                let _ = io::copy(&mut r, &mut io::sink());
                let done = t
                    .join()
                    .map_err(|_| io::Error::other("xz decompression panicked"))?;
                done.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("xz: {e}")))?;
                out
            })
        }
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Whether `path` is a tar archive, compressed or not. A compressed file that is not a tar
/// (a lone `.gz`) is copied as it is, as Docker does.
pub fn is_archive(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.len() < 6 {
        return false;
    }
    with_reader(path, |r| {
        let mut block = [0u8; 512];
        let n = read_full(r, &mut block)?;
        Ok(is_tar_block(&block[..n]))
    })
    .unwrap_or(false)
}

/// A path inside an archive, made relative and refused when it climbs out (`..`).
pub fn clean(name: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Unpacks the archive at `path` (compressed or not) into the directory `dir`, as the build
/// context given on standard input. Entries that would land outside `dir` are refused by `tar`.
pub fn unpack_context(path: &Path, dir: &Path) -> io::Result<()> {
    with_reader(path, |r| {
        let mut ar = tar::Archive::new(r);
        ar.set_preserve_ownerships(false);
        ar.unpack(dir)
    })
}

/// One entry of an archive being read.
pub type Entry<'a, 'r> = tar::Entry<'a, &'r mut dyn Read>;

/// Reads every entry of the archive at `path`, calling `f` with the entry and its cleaned path.
pub fn for_each_entry(
    path: &Path,
    f: &mut dyn FnMut(&mut Entry<'_, '_>, String) -> io::Result<()>,
) -> io::Result<()> {
    with_reader(path, |r| {
        let mut ar = tar::Archive::new(r);
        for e in ar.entries()? {
            let mut e = e?;
            let raw = e.path()?.to_string_lossy().to_string();
            let Some(name) = clean(&raw) else {
                continue;
            };
            f(&mut e, name)?;
        }
        Ok(())
    })
}

/// For each path in the archive at `path`: the position (among entries with a usable name) of
/// its last entry, and whether that entry is a directory. A tar may name a path twice, and
/// extracting it keeps the last; a layer must name each path once (containers/storage refuses
/// duplicates), so `ADD` writes only what extraction would leave.
pub fn last_entries(path: &Path) -> io::Result<std::collections::HashMap<String, (usize, bool)>> {
    let mut last = std::collections::HashMap::new();
    let mut i = 0;
    for_each_entry(path, &mut |e, name| {
        last.insert(name, (i, e.header().entry_type().is_dir()));
        i += 1;
        Ok(())
    })?;
    Ok(last)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn tar_bytes() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "dir/f", &b"abc"[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn recognises_each_codec_and_lists_entries() {
        let dir = tempfile::tempdir().unwrap();
        let plain = tar_bytes();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&plain).unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &plain[..], &mut xz).unwrap();
        let zst = zstd::encode_all(&plain[..], 1).unwrap();
        let cases = [
            ("a.tar", plain.clone()),
            ("a.tgz", gz.finish().unwrap()),
            ("a.tbz", bz.finish().unwrap()),
            ("a.txz", xz),
            ("a.tzst", zst),
        ];
        for (name, bytes) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            assert!(is_archive(&p), "{name}");
            let mut seen = Vec::new();
            for_each_entry(&p, &mut |e, n| {
                let mut s = String::new();
                e.read_to_string(&mut s)?;
                seen.push(format!("{n}={s}"));
                Ok(())
            })
            .unwrap();
            assert_eq!(seen, ["dir/f=abc"], "{name}");
        }
        let lone = dir.path().join("x.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"not a tar at all").unwrap();
        std::fs::write(&lone, gz.finish().unwrap()).unwrap();
        assert!(!is_archive(&lone));
        assert_eq!(clean("./a//b/"), Some("a/b".into()));
        assert_eq!(clean("../etc/passwd"), None);
        assert_eq!(clean("/abs"), Some("abs".into()));
    }
}
