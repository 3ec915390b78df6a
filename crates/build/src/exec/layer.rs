//! Layer tars: from an overlay upper directory (whiteouts converted to OCI's `.wh.` names) or
//! from a list of files, written gzip- (or zstd-) compressed while both digests are computed.

use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_types::{Digest, DigestWriter};
use flate2::write::GzEncoder;

/// Deflate level 1: build layers are written on every uncached step, where speed matters more
/// than the last few per cent of size.
const GZIP_LEVEL: u32 = 1;
/// Files at least this big are sampled, and stored without compression when their first
/// bytes do not compress (archives, media, binaries of random-looking data).
const SAMPLE: usize = 64 << 10;

/// Passes bytes through while hashing them.
struct Hashing<W: Write> {
    inner: W,
    hash: DigestWriter,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The gzip stream as a series of members, each compressed at one level: a run of
/// incompressible file data goes into a member of stored blocks, which costs a copy instead
/// of a futile deflate. Readers of layers read concatenated members as one stream (gzip's
/// own rule, and what Go's, zlib's and Berth's readers do).
/// A zstd layer is one frame: zstd passes incompressible data through cheaply by itself.
struct Members<W: Write> {
    gz: Option<GzEncoder<W>>,
    zstd: Option<zstd::stream::write::Encoder<'static, W>>,
    level: u32,
}

/// How a layer is compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compression {
    /// gzip (Docker's default, readable everywhere).
    #[default]
    Gzip,
    /// zstd (`--compression zstd`): faster to write and read, smaller.
    Zstd,
}

impl Compression {
    /// The OCI media type of a layer compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// zstd's default level: faster than gzip level 1 at a better ratio.
const ZSTD_LEVEL: i32 = 3;

impl<W: Write> Members<W> {
    fn new(w: W, c: Compression) -> io::Result<Members<W>> {
        Ok(match c {
            Compression::Gzip => Members {
                gz: Some(GzEncoder::new(w, flate2::Compression::new(GZIP_LEVEL))),
                zstd: None,
                level: GZIP_LEVEL,
            },
            Compression::Zstd => Members {
                gz: None,
                zstd: Some(zstd::stream::write::Encoder::new(w, ZSTD_LEVEL)?),
                level: GZIP_LEVEL,
            },
        })
    }

    fn inner(&mut self) -> &mut dyn Write {
        match (&mut self.gz, &mut self.zstd) {
            (Some(g), _) => g,
            (_, Some(z)) => z,
            _ => unreachable!("present until finished"),
        }
    }

    /// Ends the current gzip member and starts one at `level`, unless it is at `level`
    /// already.
    fn set_level(&mut self, level: u32) -> io::Result<()> {
        if level != self.level {
            if let Some(g) = self.gz.take() {
                self.gz = Some(GzEncoder::new(g.finish()?, flate2::Compression::new(level)));
            }
            self.level = level;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        match (self.gz.take(), self.zstd.take()) {
            (Some(g), _) => g.finish(),
            (_, Some(z)) => z.finish(),
            _ => unreachable!("present until finished"),
        }
    }
}

impl<W: Write> Write for Members<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner().flush()
    }
}

/// Whether the first bytes of `path` do not compress: deflate saves under 5 % of them.
fn incompressible(path: &Path) -> bool {
    let mut head = vec![0u8; SAMPLE];
    let Ok(n) = File::open(path).and_then(|mut f| f.read(&mut head)) else {
        return false;
    };
    let mut z = flate2::Compress::new(flate2::Compression::new(GZIP_LEVEL), false);
    let mut out = Vec::with_capacity(n + n / 8 + 64);
    if z.compress_vec(&head[..n], &mut out, flate2::FlushCompress::Finish)
        .is_err()
    {
        return false;
    }
    z.total_out() * 100 >= z.total_in() * 95
}

type Inner = Hashing<Members<Hashing<BufWriter<File>>>>;

/// A compressed layer being written to `path`.
pub struct LayerWriter {
    tar: tar::Builder<Inner>,
    path: PathBuf,
    /// Entries written so far; an empty layer is not worth storing.
    pub entries: usize,
    /// `SOURCE_DATE_EPOCH`: no entry is recorded as newer, so that the same inputs give the
    /// same layer digest whenever they are built.
    clamp: Option<u64>,
}

/// A finished layer file with its digests.
pub struct LayerFile {
    /// The compressed file.
    pub path: PathBuf,
    /// Digest of the compressed file.
    pub blob: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
}

/// How ids on the host map to ids in the image: `(container, host, count)` ranges.
#[derive(Debug, Clone, Default)]
pub struct IdMaps {
    /// uid ranges.
    pub uids: Vec<(u32, u32, u32)>,
    /// gid ranges.
    pub gids: Vec<(u32, u32, u32)>,
}

fn to_container(map: &[(u32, u32, u32)], host: u32) -> u32 {
    if map.is_empty() {
        return host;
    }
    map.iter()
        .find(|(_, h, n)| host >= *h && host - h < *n)
        .map_or(65534, |(c, h, _)| c + (host - h))
}

impl LayerWriter {
    /// Starts a layer file at `path`, compressed as `c` says.
    pub fn create_with(path: &Path, c: Compression) -> io::Result<LayerWriter> {
        let file = File::create(path)?;
        let blob = Hashing {
            inner: BufWriter::new(file),
            hash: DigestWriter::sha256(),
        };
        let gz = Members::new(blob, c)?;
        let mut tar = tar::Builder::new(Hashing {
            inner: gz,
            hash: DigestWriter::sha256(),
        });
        tar.mode(tar::HeaderMode::Complete);
        tar.follow_symlinks(false);
        Ok(LayerWriter {
            tar,
            path: path.to_path_buf(),
            entries: 0,
            clamp: None,
        })
    }

    /// Records every later entry with a modification time of at most `epoch` (seconds).
    pub fn clamp_mtimes(&mut self, epoch: Option<u64>) {
        self.clamp = epoch;
    }

    fn clamped(&self, mtime: u64) -> u64 {
        self.clamp.map_or(mtime, |c| mtime.min(c))
    }

    /// Adds `host` (a file, directory, symlink or fifo; never followed) as `name`, with
    /// `owner` replacing its ids and `mode` its permission bits when given.
    pub fn add(
        &mut self,
        name: &str,
        host: &Path,
        meta: &Metadata,
        owner: (u32, u32),
        mode: Option<u32>,
    ) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
        h.set_mtime(self.clamped(h.mtime()?));
        h.set_uid(owner.0.into());
        h.set_gid(owner.1.into());
        let perm = mode.unwrap_or(meta.mode() & 0o7777);
        h.set_mode(perm);
        let ft = meta.file_type();
        let name = name.trim_start_matches('/');
        if ft.is_dir() {
            h.set_size(0);
            self.tar
                .append_data(&mut h, format!("{name}/"), io::empty())?;
        } else if ft.is_symlink() {
            h.set_size(0);
            let target = fs::read_link(host)?;
            self.tar.append_link(&mut h, name, target)?;
        } else if ft.is_file() {
            let zstd = self.tar.get_ref().inner.zstd.is_some();
            let level = if !zstd && meta.len() >= SAMPLE as u64 && incompressible(host) {
                0
            } else {
                GZIP_LEVEL
            };
            self.tar.get_mut().inner.set_level(level)?;
            let f = File::open(host)?;
            self.tar.append_data(&mut h, name, f)?;
        } else if ft.is_fifo() {
            h.set_size(0);
            self.tar.append_data(&mut h, name, io::empty())?;
        } else {
            // Device nodes cannot be created without privileges, so a build never makes one.
            return Ok(());
        }
        self.entries += 1;
        Ok(())
    }

    /// Adds a directory entry that has no source on the host (a parent made for a copy).
    pub fn add_dir(&mut self, name: &str, mode: u32, owner: (u32, u32)) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_uid(owner.0.into());
        h.set_gid(owner.1.into());
        h.set_mtime(0);
        h.set_size(0);
        let name = name.trim_start_matches('/').trim_end_matches('/');
        self.tar
            .append_data(&mut h, format!("{name}/"), io::empty())?;
        self.entries += 1;
        Ok(())
    }

    /// Adds an entry of an `ADD`ed archive as `name`, with its type, mode, times, contents and
    /// ids (unless `owner` replaces them); a hard link points at `link`, its target rebased.
    /// Device nodes are left out, as a build never makes one.
    pub fn add_tar_entry<R: io::Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        name: &str,
        link: Option<&str>,
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        use tar::EntryType as T;
        let src = e.header();
        let kind = src.entry_type();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(src.mode()? & 0o7777);
        let (uid, gid) = match owner {
            Some(o) => o,
            None => (src.uid()? as u32, src.gid()? as u32),
        };
        h.set_uid(uid.into());
        h.set_gid(gid.into());
        h.set_mtime(self.clamped(src.mtime()?));
        h.set_size(0);
        match kind {
            T::Directory => {
                self.tar
                    .append_data(&mut h, format!("{name}/"), io::empty())?;
            }
            T::Regular | T::Continuous => {
                h.set_entry_type(T::Regular);
                h.set_size(e.size());
                self.tar.append_data(&mut h, name, e)?;
            }
            T::Symlink => {
                let target = e.link_name()?.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{name}: symlink without a target"),
                    )
                })?;
                self.tar.append_link(&mut h, name, target)?;
            }
            T::Link => {
                let Some(target) = link else { return Ok(()) };
                self.tar.append_link(&mut h, name, target)?;
            }
            T::Fifo => {
                self.tar.append_data(&mut h, name, io::empty())?;
            }
            _ => return Ok(()),
        }
        self.entries += 1;
        Ok(())
    }

    /// An empty regular file: an OCI whiteout marker.
    fn add_marker(&mut self, name: &str) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_size(0);
        self.tar.append_data(&mut h, name, io::empty())?;
        self.entries += 1;
        Ok(())
    }

    /// Adds every entry of an overlay upper directory, in name order. A 0:0 character device
    /// is overlayfs's deletion mark and becomes `.wh.NAME`; an opaque directory (its lower
    /// contents hidden) gets a `.wh..wh..opq` entry.
    pub fn add_upper(&mut self, upper: &Path, ids: &IdMaps) -> io::Result<()> {
        self.walk_upper(upper, "", ids, &|_| false)
    }

    /// As [`LayerWriter::add_upper`], leaving out the paths (relative, no leading `/`) for
    /// which `skip` is true, with everything below them: a container's mount points, whose
    /// placeholders the runtime made and under which nothing written reaches the upper
    /// directory.
    pub fn add_upper_except(
        &mut self,
        upper: &Path,
        ids: &IdMaps,
        skip: &dyn Fn(&str) -> bool,
    ) -> io::Result<()> {
        self.walk_upper(upper, "", ids, skip)
    }

    fn walk_upper(
        &mut self,
        dir: &Path,
        rel: &str,
        ids: &IdMaps,
        skip: &dyn Fn(&str) -> bool,
    ) -> io::Result<()> {
        let mut names: Vec<_> = fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            let host = dir.join(&name);
            let name = name.to_string_lossy();
            let path = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            if skip(&path) {
                continue;
            }
            let meta = fs::symlink_metadata(&host)?;
            let ft = meta.file_type();
            if ft.is_char_device() && meta.rdev() == 0 {
                let marker = match path.rsplit_once('/') {
                    Some((parent, base)) => format!("{parent}/.wh.{base}"),
                    None => format!(".wh.{path}"),
                };
                self.add_marker(&marker)?;
                continue;
            }
            let owner = (
                to_container(&ids.uids, meta.uid()),
                to_container(&ids.gids, meta.gid()),
            );
            self.add(&path, &host, &meta, owner, None)?;
            if ft.is_dir() {
                if is_opaque(&host) {
                    self.add_marker(&format!("{path}/.wh..wh..opq"))?;
                }
                self.walk_upper(&host, &path, ids, skip)?;
            }
        }
        Ok(())
    }

    /// Ends the tar and the gzip stream and returns the digests.
    pub fn finish(self) -> io::Result<LayerFile> {
        let tar_out = self.tar.into_inner()?;
        let diff_id = tar_out.hash.finish();
        let blob_out = tar_out.inner.finish()?;
        let Hashing { mut inner, hash } = blob_out;
        inner.flush()?;
        inner.get_ref().sync_all()?;
        Ok(LayerFile {
            path: self.path,
            blob: hash.finish(),
            diff_id,
        })
    }
}

/// Whether overlayfs marked the directory opaque: `trusted.` as root, `user.` in a user
/// namespace (the `userxattr` mount option).
/// Whether `dir`, in an overlay upper directory, hides what the lower layers have below it.
pub fn is_opaque(dir: &Path) -> bool {
    ["user.overlay.opaque", "trusted.overlay.opaque"]
        .iter()
        .any(|attr| {
            let mut buf = [0u8; 4];
            matches!(rustix::fs::lgetxattr(dir, *attr, &mut buf), Ok(n) if buf[..n] == *b"y")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_host_ids_into_the_image() {
        let map = [(0, 1000, 1), (1, 100_000, 65536)];
        assert_eq!(to_container(&map, 1000), 0);
        assert_eq!(to_container(&map, 100_001), 2);
        assert_eq!(to_container(&map, 5), 65534);
        assert_eq!(to_container(&[], 5), 5);
    }

    #[test]
    fn incompressible_files_go_into_stored_members() {
        let dir = tempfile::tempdir().unwrap();
        let up = dir.path().join("up");
        fs::create_dir_all(&up).unwrap();
        // Bytes no deflate can shrink (a xorshift sequence), then text that compresses well.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        fs::write(up.join("a-noise"), &noise).unwrap();
        fs::write(up.join("b-text"), "hello layer\n".repeat(20_000)).unwrap();
        assert!(incompressible(&up.join("a-noise")));
        assert!(!incompressible(&up.join("b-text")));
        let mut w = LayerWriter::create_with(&dir.path().join("l.tgz"), Compression::Gzip).unwrap();
        w.add_upper(&up, &IdMaps::default()).unwrap();
        let f = w.finish().unwrap();
        let gz = fs::read(&f.path).unwrap();
        // Stored, not deflated: barely bigger than the noise plus the compressed text.
        assert!(gz.len() < noise.len() + 20_000, "{}", gz.len());
        let mut tar = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(Digest::sha256_of(&tar), f.diff_id);
        let mut ar = tar::Archive::new(&tar[..]);
        let mut sizes = Vec::new();
        for e in ar.entries().unwrap() {
            sizes.push(e.unwrap().size());
        }
        assert_eq!(sizes, [300_000, 240_000]);
    }

    #[test]
    fn converts_whiteouts_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let up = dir.path().join("up");
        fs::create_dir_all(up.join("etc")).unwrap();
        fs::write(up.join("etc/a"), "x").unwrap();
        let out = dir.path().join("l.tgz");
        let mut w = LayerWriter::create_with(&out, Compression::Gzip).unwrap();
        w.add_upper(&up, &IdMaps::default()).unwrap();
        w.add_marker("etc/.wh.gone").unwrap();
        let f = w.finish().unwrap();
        let gz = fs::read(&f.path).unwrap();
        assert_eq!(Digest::sha256_of(&gz), f.blob);
        let mut names = Vec::new();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&gz[..]));
        for e in ar.entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        assert_eq!(names, ["etc/", "etc/a", "etc/.wh.gone"]);
    }

    #[test]
    fn zstd_layers_decode_to_their_diff_id() {
        let dir = tempfile::tempdir().unwrap();
        let up = dir.path().join("up");
        fs::create_dir_all(&up).unwrap();
        fs::write(up.join("a"), "zstd layer\n".repeat(1000)).unwrap();
        let out = dir.path().join("l.tar.zst");
        let mut w = LayerWriter::create_with(&out, Compression::Zstd).unwrap();
        w.add_upper(&up, &IdMaps::default()).unwrap();
        let f = w.finish().unwrap();
        let z = fs::read(&f.path).unwrap();
        assert_eq!(Digest::sha256_of(&z), f.blob);
        let tar = zstd::stream::decode_all(&z[..]).unwrap();
        assert_eq!(Digest::sha256_of(&tar), f.diff_id);
    }
}
