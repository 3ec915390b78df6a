//! Decompression and hashing of a layer on a thread of their own, so that they run while the
//! unpacking thread waits on the kernel creating files.
//!
//! Once file creation is cheap (a journaled file system, inodes not freshly deleted), a cold
//! pull's time is mostly inflate and SHA-256; the tar parser and the system calls that create
//! files are the other half. On two cores the two halves overlap almost fully.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{self, ScopedJoinHandle};

use berth_types::{Digest, DigestWriter};

/// Bytes per chunk handed over: large enough that the hand-off costs nothing, small enough
/// that the consumer starts early and memory stays bounded (`CHUNKS` in flight).
const CHUNK: usize = 256 * 1024;
const CHUNKS: usize = 4;

/// The reading end: what the producer decoded, in order, then its error or end.
pub struct Decoded {
    chunks: Receiver<io::Result<Vec<u8>>>,
    spare: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for Decoded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done {
                return Ok(0);
            }
            match self.chunks.recv() {
                Ok(Ok(chunk)) => {
                    let used = std::mem::replace(&mut self.current, chunk);
                    // The producer may have gone: the buffer is then simply dropped.
                    let _ = self.spare.try_send(used);
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads `decoder` to its end on a scoped thread, hashing every byte into `hasher`; returns
/// the reader of the bytes and the handle that yields the digest. Dropping the reader early
/// stops the thread at its next chunk.
pub fn decode_in_background<'scope, R: Read + Send + 'scope>(
    scope: &'scope thread::Scope<'scope, '_>,
    mut decoder: R,
    mut hasher: DigestWriter,
) -> (Decoded, ScopedJoinHandle<'scope, Digest>) {
    let (tx, chunks) = sync_channel::<io::Result<Vec<u8>>>(CHUNKS);
    let (spare, spares) = sync_channel::<Vec<u8>>(CHUNKS + 2);
    let handle = scope.spawn(move || {
        loop {
            let mut buf = spares
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
            buf.resize(CHUNK, 0);
            let n = match fill(&mut decoder, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    break;
                }
            };
            buf.truncate(n);
            hasher.update(&buf);
            if n == 0 || tx.send(Ok(buf)).is_err() {
                break;
            }
        }
        hasher.finish()
    });
    let reader = Decoded {
        chunks,
        spare,
        current: Vec::new(),
        pos: 0,
        done: false,
    };
    (reader, handle)
}

/// Reads until `buf` is full or the stream ends.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_everything_in_order_and_hashes_it() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let mut expected = DigestWriter::sha256();
        expected.update(&data);
        let (out, digest) = thread::scope(|s| {
            let (mut r, h) = decode_in_background(s, &data[..], DigestWriter::sha256());
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            (out, h.join().unwrap())
        });
        assert_eq!(out, data);
        assert_eq!(digest, expected.finish());
    }

    #[test]
    fn reports_the_producers_error_and_stops_when_dropped() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "corrupt deflate stream",
                ))
            }
        }
        thread::scope(|s| {
            let (mut r, h) = decode_in_background(s, Failing, DigestWriter::sha256());
            let err = r.read(&mut [0u8; 8]).unwrap_err();
            assert!(err.to_string().contains("corrupt deflate"));
            h.join().unwrap();
            // An endless producer stops once nobody reads.
            let (r, h) = decode_in_background(s, io::repeat(7), DigestWriter::sha256());
            drop(r);
            h.join().unwrap();
        });
    }
}
