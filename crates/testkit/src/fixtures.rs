//! Root file system tarballs to import as images, and OCI layouts made from them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::cache::{cached, find_program, remove_any, require_program};

/// Bumped whenever the content or layout of a cached fixture changes, so old caches are ignored.
const FIXTURE_VERSION: u32 = 1;
/// Fixed modification time of every busybox tar entry: the tarball, and so the layer digest,
/// is the same on every machine with the same busybox binary.
const MTIME: u64 = 1_700_000_000;
/// The Debian release the Debian fixture is bootstrapped from (the one this project targets).
const DEBIAN_SUITE: &str = "bookworm";

/// A tiny root file system as an uncompressed tar, built once and cached.
///
/// Contents: `/bin/busybox` (the static binary from `busybox-static`) with a symlink in `/bin`
/// for every applet it provides (`sh`, `ls`, `cat`, `echo`, `true`, `false`, `id`, `sleep`,
/// `env`, ...) plus `/usr/bin/env`; `/etc/passwd` and `/etc/group` with `root` (0),
/// `user` (1000, home `/home/user`) and `nobody`/`nogroup` (65534); `/tmp` mode 1777; `/root`
/// mode 0700; empty `/dev`, `/proc`, `/sys`, `/run`, `/var`, `/mnt`, `/etc/hosts` and
/// `/etc/resolv.conf`. Entries are owned by root unless stated, have no `./` prefix, and a
/// fixed mtime, so the tar is reproducible.
///
/// The cache key includes a hash of the busybox binary, so a busybox upgrade builds a new tar.
pub fn busybox_rootfs_tar() -> PathBuf {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let busybox = require_program("busybox");
        let binary =
            fs::read(&busybox).unwrap_or_else(|e| panic!("cannot read {}: {e}", busybox.display()));
        assert!(
            !elf_has_interpreter(&binary),
            "{} is dynamically linked; install busybox-static (scripts/install-deps)",
            busybox.display()
        );
        let hash = hex(&Sha256::digest(&binary))[..16].to_string();
        let name = format!("busybox-rootfs-v{FIXTURE_VERSION}-{hash}.tar");
        cached(&name, |tmp| write_busybox_tar(&busybox, &binary, tmp))
            .unwrap_or_else(|e| panic!("building {name}: {e}"))
    })
    .clone()
}

/// A Debian `bookworm` minbase root file system as an uncompressed tar (about 200 MB), built
/// once with `debootstrap --variant=minbase` and cached.
///
/// The mirror is `$BERTH_DEBIAN_MIRROR`, else the one apt is configured with. As in the
/// official image, `/dev` is empty and apt's lists, package caches and the bootstrap log are
/// removed.
///
/// Returns `None`, after printing why on stderr, when not running as root, when `debootstrap`
/// is missing, or when it fails (for example without network access to the mirror); tests
/// that need it should then skip. The result, failure included, is remembered for the rest of
/// the process so a missing mirror does not cost each test a timeout.
pub fn debian_rootfs_tar() -> Option<PathBuf> {
    static TAR: OnceLock<Option<PathBuf>> = OnceLock::new();
    TAR.get_or_init(|| {
        let name = format!("debian-{DEBIAN_SUITE}-minbase-v{FIXTURE_VERSION}.tar");
        let existing = crate::cache::cache_dir().join(&name);
        if existing.exists() {
            return Some(existing);
        }
        let Some(debootstrap) = find_program("debootstrap") else {
            eprintln!("notice: debootstrap is not installed; Debian fixture unavailable");
            return None;
        };
        if !crate::user::is_root() {
            eprintln!("notice: debootstrap needs root; Debian fixture unavailable");
            return None;
        }
        match cached(&name, |tmp| bootstrap_debian(&debootstrap, tmp)) {
            Ok(path) => Some(path),
            Err(e) => {
                eprintln!("notice: Debian fixture unavailable: {e}");
                None
            }
        }
    })
    .clone()
}

/// Makes an OCI image layout at `layout` (created; must not exist yet) holding one image, tagged
/// `tag`, whose single layer is `rootfs_tar`. Uses `umoci`; the config has `Cmd ["/bin/sh"]`
/// and a standard `PATH`.
pub fn oci_layout_from_tar(rootfs_tar: &Path, layout: &Path, tag: &str) {
    let umoci = require_program("umoci");
    let image = format!("{}:{tag}", layout.display());
    let run = |args: &[&str]| {
        let out = Command::new(&umoci).args(args).output().expect("run umoci");
        assert!(
            out.status.success(),
            "umoci {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let layout_s = layout.to_string_lossy();
    let tar_s = rootfs_tar.to_string_lossy();
    run(&["init", "--layout", &layout_s]);
    run(&["new", "--image", &image]);
    run(&["raw", "add-layer", "--image", &image, &tar_s]);
    run(&[
        "config",
        "--image",
        &image,
        "--config.cmd",
        "/bin/sh",
        "--config.env",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]);
    run(&["gc", "--layout", &layout_s]);
}

fn write_busybox_tar(busybox: &Path, binary: &[u8], out: &Path) -> Result<(), String> {
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| format!("busybox --list: {e}"))?;
    let listing = String::from_utf8_lossy(&list.stdout);
    let mut applets: Vec<&str> = listing
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .collect();
    applets.sort_unstable();
    applets.dedup();
    if !applets.contains(&"sh") {
        return Err(format!("{} provides no `sh` applet", busybox.display()));
    }

    let file = fs::File::create(out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let mut tar = TarWriter(tar::Builder::new(file));
    for (dir, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("home", 0o755),
        ("mnt", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("run", 0o755),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("var", 0o755),
    ] {
        tar.dir(dir, mode, 0)?;
    }
    tar.dir("home/user", 0o755, 1000)?;
    tar.file("bin/busybox", 0o755, binary)?;
    for applet in applets {
        tar.symlink(&format!("bin/{applet}"), "busybox")?;
    }
    // Shebangs like `#!/usr/bin/env sh` are common in scripts tests may run.
    tar.symlink("usr/bin/env", "/bin/busybox")?;
    let passwd = "root:x:0:0:root:/root:/bin/sh\n\
                  user:x:1000:1000:user:/home/user:/bin/sh\n\
                  nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    let group = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n";
    tar.file("etc/passwd", 0o644, passwd.as_bytes())?;
    tar.file("etc/group", 0o644, group.as_bytes())?;
    tar.file("etc/hosts", 0o644, b"")?;
    tar.file("etc/resolv.conf", 0o644, b"")?;
    let file = tar.0.into_inner().map_err(|e| format!("finish tar: {e}"))?;
    file.sync_all().map_err(|e| format!("fsync tar: {e}"))
}

/// Appends reproducible entries (fixed mtime, numeric owners, no user names).
struct TarWriter(tar::Builder<fs::File>);

impl TarWriter {
    fn header(kind: tar::EntryType, mode: u32, id: u64, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(id);
        h.set_gid(id);
        h.set_mtime(MTIME);
        h.set_size(size);
        h
    }

    fn dir(&mut self, path: &str, mode: u32, id: u64) -> Result<(), String> {
        let mut h = Self::header(tar::EntryType::Directory, mode, id, 0);
        self.0
            .append_data(&mut h, format!("{path}/"), std::io::empty())
            .map_err(|e| format!("tar {path}: {e}"))
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<(), String> {
        let mut h = Self::header(tar::EntryType::Regular, mode, 0, data.len() as u64);
        self.0
            .append_data(&mut h, path, data)
            .map_err(|e| format!("tar {path}: {e}"))
    }

    fn symlink(&mut self, path: &str, target: &str) -> Result<(), String> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0, 0);
        self.0
            .append_link(&mut h, path, target)
            .map_err(|e| format!("tar {path}: {e}"))
    }
}

/// True if an x86-64/aarch64-style ELF64 little-endian binary has a PT_INTERP program header,
/// i.e. is dynamically linked and would not run in a rootfs without a libc.
fn elf_has_interpreter(bin: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| bin.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        bin.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bin.get(o..o + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    // Anything but ELF64 little-endian is not checked; the tests would fail visibly anyway.
    if bin.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..usize::from(phnum)).any(|i| {
        let off = phoff as usize + i * usize::from(phentsize);
        u32_at(off) == Some(PT_INTERP)
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Debian mirror to bootstrap from: `$BERTH_DEBIAN_MIRROR`, else the one apt uses.
fn debian_mirror() -> Result<String, String> {
    if let Ok(m) = std::env::var("BERTH_DEBIAN_MIRROR") {
        if !m.is_empty() {
            return Ok(m);
        }
    }
    // apt knows which mirror (possibly a local proxy or snapshot) this machine can reach.
    let configured = Command::new("apt-get")
        .args([
            "indextargets",
            "--format",
            "$(REPO_URI)",
            "Created-By: Packages",
        ])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .and_then(|s| {
            s.lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.contains("-security"))
                .map(str::to_string)
        });
    configured.ok_or_else(|| {
        "apt names no Debian mirror; set BERTH_DEBIAN_MIRROR to one this machine reaches".into()
    })
}

fn bootstrap_debian(debootstrap: &Path, out: &Path) -> Result<(), String> {
    let staging = out.with_extension("rootfs");
    remove_any(&staging);
    let log = out.with_extension("log");
    let mirror = debian_mirror()?;
    eprintln!(
        "notice: bootstrapping Debian {DEBIAN_SUITE} minbase from {mirror} (a few minutes, once)"
    );
    let result = (|| {
        let log_file = fs::File::create(&log).map_err(|e| format!("create log: {e}"))?;
        let status = Command::new("timeout")
            .arg("1200")
            .arg(debootstrap)
            .args(["--variant=minbase", DEBIAN_SUITE])
            .arg(&staging)
            .arg(&mirror)
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file)
            .status()
            .map_err(|e| format!("run debootstrap: {e}"))?;
        if !status.success() {
            let text = fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "debootstrap failed ({status}):\n{}",
                tail.join("\n")
            ));
        }
        // Like the official image: no device nodes, no apt lists or package caches.
        for sub in ["dev", "var/lib/apt/lists", "var/cache/apt/archives"] {
            empty_dir(&staging.join(sub));
        }
        for f in [
            "var/cache/apt/pkgcache.bin",
            "var/cache/apt/srcpkgcache.bin",
            "var/log/bootstrap.log",
        ] {
            remove_any(&staging.join(f));
        }
        // Top-level names listed explicitly so entries carry no `./` prefix.
        let mut top: Vec<String> = fs::read_dir(&staging)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        let status = Command::new("tar")
            .args([
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=*",
                "--sort=name",
            ])
            .arg("-C")
            .arg(&staging)
            .arg("-cf")
            .arg(out)
            .arg("--")
            .args(&top)
            .status()
            .map_err(|e| format!("run tar: {e}"))?;
        if !status.success() {
            return Err(format!("tar of the Debian rootfs failed ({status})"));
        }
        Ok(())
    })();
    remove_any(&staging);
    remove_any(&log);
    result
}

/// Removes everything inside `dir`, keeping `dir` itself.
fn empty_dir(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            remove_any(&e.path());
        }
    }
}
