//! Pieces shared by both formats: verified hand-over to the sink, and tar member writing.

use std::io::{self, Read, Write};

use berth_types::Digest;

use crate::error::ArchiveError;
use crate::index::ArchiveIndex;
use crate::stream::{Verdict, VerifyingReader};
use crate::ImageSink;

/// What `save` errors name as the file: the output is a stream, not always a path.
pub(crate) const OUTPUT: &str = "saved archive";

/// `blobs/<algorithm>/<hex>`, where OCI layouts keep a blob.
pub(crate) fn blob_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm(), d.hex())
}

/// Turns a [`VerifyingReader`]'s verdict into an error naming `entry` and both values.
pub(crate) fn check_verdict<R: Read>(
    reader: &VerifyingReader<R>,
    file: &str,
    entry: &str,
    expected: Option<&Digest>,
    expected_size: Option<u64>,
) -> Result<(), ArchiveError> {
    match reader.verdict() {
        Verdict::Digest { actual } => Err(ArchiveError::DigestMismatch {
            file: file.to_string(),
            entry: entry.to_string(),
            expected: expected.cloned().unwrap_or_else(|| actual.clone()),
            actual: actual.clone(),
        }),
        Verdict::Size { actual } => Err(ArchiveError::SizeMismatch {
            file: file.to_string(),
            entry: entry.to_string(),
            expected: expected_size.unwrap_or_default(),
            actual: *actual,
        }),
        Verdict::Pending | Verdict::Ok(..) => Ok(()),
    }
}

/// Streams member `name` into the sink, checked against `expected` digest and size when given.
///
/// Our own check runs whatever the sink does, so a mismatch is always reported with both
/// digests, and the sink's returned digest must agree with what was actually read.
pub(crate) fn put_entry(
    index: &ArchiveIndex<'_>,
    sink: &mut dyn ImageSink,
    name: &str,
    by: &str,
    expected: Option<&Digest>,
    expected_size: Option<u64>,
) -> Result<(Digest, u64), ArchiveError> {
    let file = &index.display;
    let (reader, _) = index.open(name, by)?;
    let mut verifying = VerifyingReader::new(reader, expected, expected_size);
    let stored = sink.put_blob(&mut verifying, expected);
    check_verdict(&verifying, file, name, expected, expected_size)?;
    let (digest, size) = stored.map_err(|e| ArchiveError::sink(file, name, e))?;
    // A sink that stopped early has stored something else than the member; finish reading so
    // the comparison below covers the whole member.
    verifying
        .drain()
        .map_err(|e| ArchiveError::io(file, format!("reading entry {name}"), e))?;
    check_verdict(&verifying, file, name, expected, expected_size)?;
    match verifying.verdict() {
        Verdict::Ok(d, n) if *d == digest && *n == size => Ok((digest, size)),
        Verdict::Ok(d, n) => Err(ArchiveError::invalid(
            file,
            name,
            format!("store recorded {digest} ({size} bytes) for content {d} ({n} bytes)"),
        )),
        _ => Ok((digest, size)),
    }
}

/// Hands in-memory bytes (a manifest built here, a config) to the sink.
pub(crate) fn put_bytes(
    sink: &mut dyn ImageSink,
    file: &str,
    what: &str,
    bytes: &[u8],
) -> Result<Digest, ArchiveError> {
    let expected = Digest::sha256_of(bytes);
    let (digest, _) = sink
        .put_blob(&mut io::Cursor::new(bytes), Some(&expected))
        .map_err(|e| ArchiveError::sink(file, what, e))?;
    if digest != expected {
        return Err(ArchiveError::DigestMismatch {
            file: file.to_string(),
            entry: what.to_string(),
            expected,
            actual: digest,
        });
    }
    Ok(digest)
}

/// A header for a plain member: fixed owner, mode and time, so saving the same image twice gives
/// the same bytes.
fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// Writes a directory member.
pub(crate) fn append_dir<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
) -> Result<(), ArchiveError> {
    let mut h = header(tar::EntryType::Directory, 0, 0o755);
    builder
        .append_data(&mut h, path, io::empty())
        .map_err(|e| ArchiveError::io(OUTPUT, format!("writing {path}"), e))
}

/// Writes a member of `size` bytes read from `data`.
///
/// `data` must yield exactly `size` bytes; callers wrap sources in a [`VerifyingReader`] with that
/// size, whose failure surfaces here as an I/O error and is then reported by its verdict.
pub(crate) fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    data: impl Read,
) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, size, 0o644);
    builder.append_data(&mut h, path, data)
}

/// Writes an in-memory member.
pub(crate) fn append_bytes<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
) -> Result<(), ArchiveError> {
    append(builder, path, bytes.len() as u64, bytes)
        .map_err(|e| ArchiveError::io(OUTPUT, format!("writing {path}"), e))
}

/// Writes a blob from the caller's source as member `path`, checking it against `digest` and
/// `size` as it streams.
pub(crate) fn append_verified<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    source: impl Read,
    digest: &Digest,
    size: u64,
) -> Result<(), ArchiveError> {
    let mut reader = VerifyingReader::new(source, Some(digest), Some(size));
    let written = append(builder, path, size, &mut reader);
    check_verdict(
        &reader,
        OUTPUT,
        &digest.to_string(),
        Some(digest),
        Some(size),
    )?;
    written.map_err(|e| ArchiveError::io(OUTPUT, format!("writing {path}"), e))?;
    // The tar writer stops at `size`; the verdict only exists once the end has been seen.
    reader
        .drain()
        .and_then(|()| match reader.verdict() {
            Verdict::Pending => Err(io::Error::other("blob not read to the end")),
            _ => Ok(()),
        })
        .map_err(|e| ArchiveError::io(OUTPUT, format!("reading blob {digest}"), e))?;
    check_verdict(
        &reader,
        OUTPUT,
        &digest.to_string(),
        Some(digest),
        Some(size),
    )
}
