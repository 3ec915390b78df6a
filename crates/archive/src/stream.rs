//! Streaming helpers: compression sniffing, and readers and writers that hash what passes.

use std::io::{self, BufRead, Read, Write};

use berth_types::{Digest, DigestWriter};

/// How a stream is compressed, as told by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// Sniffs the magic number; media types are not trusted because docker-archives carry none
    /// and stores sometimes record a layer's type loosely.
    pub(crate) fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Reads the first bytes of `reader` to learn its compression and hands back a reader that
/// still yields every byte: a single `read` may return fewer bytes than a magic number (pipes),
/// so this reads until it has enough or the stream ends.
pub(crate) fn sniff<R: Read>(mut reader: R) -> io::Result<(Compression, impl Read)> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match reader.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let compression = Compression::sniff(&head[..got]);
    Ok((
        compression,
        io::Cursor::new(head[..got].to_vec()).chain(reader),
    ))
}

/// A reader that yields the decompressed form of `reader`.
pub(crate) fn decompress<'a, R: BufRead + 'a>(
    reader: R,
    compression: Compression,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        // MultiGzDecoder: pigz and some tools write concatenated members, which are one stream.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
    })
}

/// What a [`VerifyingReader`] found once it reached the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// End not reached yet.
    Pending,
    /// Digest (and size, when one was expected) matched.
    Ok(Digest, u64),
    /// The content hashed to another digest.
    Digest { actual: Digest },
    /// The content had another length.
    Size { actual: u64 },
}

/// Hashes and counts everything read through it and checks both at the end.
///
/// On a mismatch the final read fails, so a consumer that stores as it reads (the caller's store)
/// never commits wrong content even if it does not verify; the verdict then says why, so the
/// error reported names both digests whatever the consumer made of the failed read.
pub(crate) struct VerifyingReader<R> {
    inner: R,
    hash: Option<DigestWriter>,
    expected: Option<Digest>,
    expected_size: Option<u64>,
    verdict: Verdict,
}

impl<R: Read> VerifyingReader<R> {
    pub(crate) fn new(inner: R, expected: Option<&Digest>, expected_size: Option<u64>) -> Self {
        let hash = expected.map_or_else(DigestWriter::sha256, Digest::writer);
        VerifyingReader {
            inner,
            hash: Some(hash),
            expected: expected.cloned(),
            expected_size,
            verdict: Verdict::Pending,
        }
    }

    pub(crate) fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// Reads whatever the consumer left unread, so the verdict covers the whole stream.
    pub(crate) fn drain(&mut self) -> io::Result<()> {
        if self.verdict == Verdict::Pending {
            io::copy(self, &mut io::sink())?;
        }
        Ok(())
    }

    fn conclude(&mut self) -> io::Result<()> {
        let Some(hash) = self.hash.take() else {
            return Ok(());
        };
        let len = hash.len();
        let actual = hash.finish();
        self.verdict = match (&self.expected, self.expected_size) {
            (_, Some(size)) if size != len => Verdict::Size { actual: len },
            (Some(want), _) if *want != actual => Verdict::Digest { actual },
            _ => Verdict::Ok(actual, len),
        };
        match self.verdict {
            Verdict::Ok(..) => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "content does not match its digest or size",
            )),
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.verdict {
            Verdict::Pending => {}
            Verdict::Ok(..) => return Ok(0),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "content does not match its digest or size",
                ))
            }
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.conclude()?;
            return Ok(0);
        }
        if let Some(h) = self.hash.as_mut() {
            h.update(&buf[..n]);
            // Stop a source that runs long before it fills a tar entry past its header's size.
            if self.expected_size.is_some_and(|s| h.len() > s) {
                self.verdict = Verdict::Size { actual: h.len() };
                self.hash = None;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "content is longer than its recorded size",
                ));
            }
        }
        Ok(n)
    }
}

/// Passes writes through to `inner` while hashing them.
pub(crate) struct HashingWriter<W> {
    pub(crate) inner: W,
    pub(crate) hash: DigestWriter,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hash: DigestWriter::sha256(),
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
