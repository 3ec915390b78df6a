//! `ADD` of `http://` and `https://` sources: where each download lands, `--checksum`, and the
//! download itself through the backend.
//!
//! As in BuildKit, a downloaded file is 0600 unless `--chmod` says otherwise, takes its
//! modification time from `Last-Modified`, and is never unpacked. With `--checksum` the step's
//! cache key is the checksum itself, so a cached rebuild does not touch the network; without
//! it the file is downloaded while planning, and its digest goes into the key.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use berth_types::BuildBackend;
use sha2::{Digest as _, Sha256, Sha384, Sha512};

use super::plan::{CopyPlan, Scratch};
use super::{backend_err, copy, Ctx};

/// Whether an `ADD` source is a URL to download.
pub(super) fn is_url(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

/// Whether an `ADD` source names a Git repository, which Berth does not fetch. Only the plain
/// spellings count: a URL whose path ends in `.git`, and `git@host:path`.
pub(super) fn is_git(src: &str) -> bool {
    src.starts_with("git@") || (is_url(src) && url_path(src).ends_with(".git"))
}

/// The path of a URL, without its query and fragment (still percent-encoded).
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['#', '?']).next().unwrap_or(rest);
    rest.find('/').map_or("", |i| &rest[i..])
}

/// The file name a download is saved under in a destination directory: the last segment of
/// the URL's path, percent-decoded; `None` when there is none.
pub(super) fn file_name(url: &str) -> Option<String> {
    let last = url_path(url).rsplit('/').next()?;
    let name = percent_decode(last);
    let bad = name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']);
    (!bad).then_some(name)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|c| hex(*c)),
            b.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where the download of `url` lands: `dest` itself, or `dest/NAME` when `into_dir` (the
/// destination ends in `/`, or the instruction has several sources).
pub(super) fn target(url: &str, dest: &str, into_dir: bool) -> Result<String, String> {
    if !into_dir {
        return Ok(dest.to_string());
    }
    let name = file_name(url).ok_or_else(|| {
        format!("{url}: the URL has no file name to save it under in {dest}; name the file in the destination")
    })?;
    Ok(format!("{}/{name}", dest.trim_end_matches('/')))
}

/// A hash algorithm `--checksum` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Algo {
    Sha256,
    Sha384,
    Sha512,
}

/// `--checksum=ALGO:HEX`, its hex in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Checksum {
    pub(super) algo: Algo,
    pub(super) hex: String,
}

impl Algo {
    fn name(self) -> &'static str {
        match self {
            Algo::Sha256 => "sha256",
            Algo::Sha384 => "sha384",
            Algo::Sha512 => "sha512",
        }
    }
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.algo.name(), self.hex)
    }
}

impl Checksum {
    /// Parses `--checksum`'s value.
    pub(super) fn parse(s: &str) -> Result<Checksum, String> {
        let bad = || {
            format!(
                "invalid --checksum={s}: expected sha256:, sha384: or sha512: and the hex digest"
            )
        };
        let (name, hex) = s.split_once(':').ok_or_else(bad)?;
        let (algo, len) = match name {
            "sha256" => (Algo::Sha256, 64),
            "sha384" => (Algo::Sha384, 96),
            "sha512" => (Algo::Sha512, 128),
            _ => return Err(bad()),
        };
        if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Checksum {
            algo,
            hex: hex.to_ascii_lowercase(),
        })
    }
}

/// A running hash of one of the algorithms.
enum Hasher {
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    fn new(algo: Algo) -> Hasher {
        match algo {
            Algo::Sha256 => Hasher::Sha256(Sha256::new()),
            Algo::Sha384 => Hasher::Sha384(Sha384::new()),
            Algo::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha384(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => format!("{:x}", h.finalize()),
            Hasher::Sha384(h) => format!("{:x}", h.finalize()),
            Hasher::Sha512(h) => format!("{:x}", h.finalize()),
        }
    }
}

/// Writes to the file while hashing what was written.
struct Tee {
    file: BufWriter<File>,
    hash: Hasher,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A URL source of an `ADD`, and where it goes in the image.
struct Remote {
    url: String,
    /// The absolute path in the image.
    dest: String,
    /// The downloaded file, once there is one.
    file: Option<PathBuf>,
}

/// The URL sources of an `ADD`, with the directory their downloads live in until the layer
/// is written.
#[derive(Default)]
pub(super) struct Remotes {
    list: Vec<Remote>,
    checksum: Option<Checksum>,
    dir: Option<Scratch>,
}

/// A finished download: its file and its digest (`ALGO:HEX`).
struct Fetched {
    file: PathBuf,
    digest: String,
    /// The `Last-Modified` time in seconds since the epoch, when the server sent one.
    last_modified: Option<u64>,
}

impl Ctx<'_> {
    /// Plans the URL sources among an `ADD`'s `srcs` (`dest` absolute), refusing Git sources
    /// and a `--checksum` beside other sources. Without a checksum each URL is downloaded now,
    /// since its content is part of the cache key; what the sources add to the key is
    /// appended to `extra`.
    pub(super) fn plan_remote(
        &self,
        srcs: &[String],
        dest: &str,
        checksum: Option<&str>,
        extra: &mut String,
    ) -> Result<Remotes, String> {
        if let Some(g) = srcs.iter().find(|s| is_git(s)) {
            return Err(format!(
                "{g}: Git sources are not supported; clone the repository into the build context"
            ));
        }
        let checksum = checksum.map(Checksum::parse).transpose()?;
        if checksum.is_some() {
            if let Some(l) = srcs.iter().find(|s| !is_url(s)) {
                return Err(format!(
                    "{l}: --checksum applies to http:// and https:// sources only"
                ));
            }
        }
        let into_dir = dest.ends_with('/') || srcs.len() > 1;
        let mut r = Remotes {
            checksum,
            ..Remotes::default()
        };
        for url in srcs.iter().filter(|s| is_url(s)) {
            let dest = target(url, dest, into_dir)?;
            let file = match &r.checksum {
                Some(c) => {
                    extra.push_str(&format!("{url}\0{dest}\0{c}\0"));
                    None
                }
                None => {
                    let f = self.download(&mut r.dir, url, Algo::Sha256)?;
                    // The time is in the layer, so a new one is a new layer, as in BuildKit.
                    let modified = f.last_modified.map(|t| t.to_string()).unwrap_or_default();
                    extra.push_str(&format!("{url}\0{dest}\0{}\0{modified}\0", f.digest));
                    Some(f.file)
                }
            };
            r.list.push(Remote {
                url: url.clone(),
                dest,
                file,
            });
        }
        Ok(r)
    }

    /// Downloads the sources that planning left for later (those with `--checksum`), checks
    /// them, and adds every download to the plan's items.
    pub(super) fn fetch_remote(&self, plan: &mut CopyPlan) -> Result<(), String> {
        let Remotes {
            list,
            checksum,
            dir,
        } = &mut plan.remote;
        for rem in list.iter() {
            let file = match (&rem.file, &checksum) {
                (Some(f), _) => f.clone(),
                (None, Some(sum)) => {
                    let got = self.download(dir, &rem.url, sum.algo)?;
                    if got.digest != sum.to_string() {
                        return Err(format!(
                            "checksum mismatch for {}: expected {sum}, got {}",
                            rem.url, got.digest
                        ));
                    }
                    got.file
                }
                (None, None) => unreachable!("only downloads with a checksum wait"),
            };
            plan.items
                .push(copy::Item::downloaded(rem.dest.clone(), file));
        }
        Ok(())
    }

    /// Downloads `url` into a new file of `dir` (made on first use), saying so in the log.
    fn download(
        &self,
        dir: &mut Option<Scratch>,
        url: &str,
        algo: Algo,
    ) -> Result<Fetched, String> {
        let dir = match dir {
            Some(d) => d,
            None => {
                let d = self.backend.scratch_dir().map_err(backend_err)?;
                dir.insert(Scratch(d))
            }
        };
        (self.log)(&format!("#{} downloading {url}", self.step));
        let n = fs::read_dir(&dir.0).map(|d| d.count()).unwrap_or_default();
        fetch(self.backend, url, &dir.0.join(n.to_string()), algo)
    }
}

/// Downloads `url` to `to` (mode 0600, its time from `Last-Modified`), hashed with `algo`.
fn fetch(backend: &dyn BuildBackend, url: &str, to: &Path, algo: Algo) -> Result<Fetched, String> {
    let cannot = |e: io::Error| format!("cannot write {}: {e}", to.display());
    let file = File::create(to).map_err(cannot)?;
    let mut tee = Tee {
        file: BufWriter::new(file),
        hash: Hasher::new(algo),
    };
    let modified = backend.download(url, &mut tee).map_err(backend_err)?;
    let file = tee.file.into_inner().map_err(|e| cannot(e.into_error()))?;
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(cannot)?;
    if let Some(t) = modified {
        file.set_modified(t).map_err(cannot)?;
    }
    Ok(Fetched {
        file: to.to_path_buf(),
        digest: format!("{}:{}", algo.name(), tee.hash.finish()),
        last_modified: modified
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_git_sources() {
        assert!(is_url("http://h/x") && is_url("https://h/x"));
        assert!(!is_url("ftp://h/x") && !is_url("./http://x") && !is_url("HTTP://h"));
        assert!(is_git("https://example.org/r.git"));
        assert!(is_git("https://example.org/r.git#main"));
        assert!(is_git("git@example.org:r"));
        assert!(!is_git("https://example.org/r.git.tar.gz"));
        assert!(!is_git("local.git"));
    }

    #[test]
    fn file_names_from_urls() {
        assert_eq!(file_name("http://h/a/b.tgz").as_deref(), Some("b.tgz"));
        assert_eq!(file_name("http://h:80/b?x=/y#z/w").as_deref(), Some("b"));
        assert_eq!(file_name("https://h/a%20b").as_deref(), Some("a b"));
        assert_eq!(file_name("https://h/a%2Fb"), None);
        assert_eq!(file_name("https://h/a/"), None);
        assert_eq!(file_name("https://h"), None);
        assert_eq!(file_name("https://h?q=/x"), None);
        assert_eq!(file_name("https://h/.."), None);
    }

    #[test]
    fn download_targets() {
        let t = |u, d, i| target(u, d, i);
        assert_eq!(t("http://h/f.txt", "/x", false).unwrap(), "/x");
        assert_eq!(t("http://h/f.txt", "/x/", true).unwrap(), "/x/f.txt");
        assert_eq!(t("http://h/", "/x", false).unwrap(), "/x");
        let e = t("http://h/", "/x/", true).unwrap_err();
        assert!(e.contains("http://h/") && e.contains("no file name"), "{e}");
    }

    #[test]
    fn checksums() {
        let hex = "AB".repeat(32);
        let c = Checksum::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(c.algo, Algo::Sha256);
        assert_eq!(c.to_string(), format!("sha256:{}", hex.to_lowercase()));
        assert!(Checksum::parse(&format!("sha384:{}", "0".repeat(96))).is_ok());
        assert!(Checksum::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        for bad in [
            "sha256:abc",
            "md5:00",
            "00",
            &format!("sha256:{}", "g".repeat(64)),
        ] {
            let e = Checksum::parse(bad).unwrap_err();
            assert!(
                e.starts_with("invalid --checksum=") && e.contains(bad),
                "{e}"
            );
        }
        let empty = |algo| Hasher::new(algo).finish();
        assert_eq!(
            empty(Algo::Sha256),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            empty(Algo::Sha384),
            "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da\
             274edebfe76f65fbd51ad2f14898b95b"
        );
        assert_eq!(
            empty(Algo::Sha512),
            "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce\
             47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
        );
    }
}
