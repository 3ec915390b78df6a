//! Images that are files, not store entries: `berth run FILE.sqsh` and `berth run DIR`.
//!
//! A single-file image is mounted read-only where the container's overlay finds it (see
//! `berth_runtime::mount_squashfs`) and used in place: nothing is unpacked, on any node. A
//! directory is used as the read-only lower layer as it is. Either way the container gets its
//! own writable layer on top, as for store images.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use berth_store::Store;
use berth_types::Digest;
use oci_spec::image::ImageConfiguration;
use serde_json::{json, Value};

use super::create::ImageInput;

const SQUASHFS_SUFFIXES: &[&str] = &[".sqsh", ".sqfs", ".squashfs"];

/// The path `arg` names when it is a local image rather than a reference: an existing file or
/// directory written as a path (`/…`, `./…`, `../…`) or a file with a squashfs suffix.
/// References never start with `/` or `.`, so nothing a registry could serve is taken.
pub fn local_path(arg: &str) -> Option<PathBuf> {
    let looks_like_path = arg.starts_with('/') || arg.starts_with("./") || arg.starts_with("../");
    let squashfs_name = SQUASHFS_SUFFIXES.iter().any(|s| arg.ends_with(s));
    let p = Path::new(arg);
    ((looks_like_path || squashfs_name) && p.exists()).then(|| p.to_path_buf())
}

/// Opens a local image: mounts a single-file image (on a fresh directory of the store's
/// temporary area; through FUSE when `fuse` or when not root) or takes a directory as it is.
pub fn open(store: &Store, path: &Path, fuse: bool) -> Result<ImageInput> {
    let path = path
        .canonicalize()
        .with_context(|| format!("cannot open image {}", path.display()))?;
    if path.is_dir() {
        return Ok(ImageInput {
            id: Digest::sha256_of(path.as_os_str().as_encoded_bytes()),
            config: default_config()?,
            lower_dirs: vec![path.clone()],
            host_config: serde_json::Map::from_iter([(
                "RootfsDir".to_string(),
                json!(path.display().to_string()),
            )]),
        });
    }
    let mut f =
        File::open(&path).with_context(|| format!("cannot open image {}", path.display()))?;
    let trailer = berth_archive::read_config_trailer(&mut f)
        .with_context(|| format!("cannot read image {}", path.display()))?;
    let (id, config) = match trailer {
        Some(bytes) => (
            Digest::sha256_of(&bytes),
            serde_json::from_slice::<ImageConfiguration>(&bytes)
                .with_context(|| format!("{}: invalid image config", path.display()))?,
        ),
        // A squashfs image from another tool: no config, Docker's defaults.
        None => (
            Digest::sha256_of(path.as_os_str().as_encoded_bytes()),
            default_config()?,
        ),
    };
    drop(f);
    // Without root, or when the site says so, a FUSE mount the store's containers share;
    // otherwise a kernel mount of this container's own.
    let shared = fuse || super::euid() != 0;
    let target = if shared {
        super::shared_fuse::acquire(store, &path)?
    } else {
        let target = store.paths().temp("sqsh");
        std::fs::create_dir_all(&target)
            .with_context(|| format!("cannot create {}", target.display()))?;
        if let Err(e) = berth_runtime::mount_squashfs(&path, &target, false) {
            let _ = std::fs::remove_dir(&target);
            return Err(e.into());
        }
        target
    };
    Ok(ImageInput {
        id,
        config,
        lower_dirs: vec![target.clone()],
        host_config: serde_json::Map::from_iter([
            ("Squashfs".to_string(), json!(path.display().to_string())),
            (
                "SquashfsMount".to_string(),
                json!(target.display().to_string()),
            ),
            ("SquashfsFuse".to_string(), json!(shared)),
            ("SquashfsShared".to_string(), json!(shared)),
        ]),
    })
}

/// Mounts a container's single-file image again where it was, for a container that is started
/// again after [`release`] took the mount down; nothing when it is still there (the `run` that
/// mounted it is starting it) or the image is not a file. Call before any thread is started.
pub fn reopen(host_config: &Value) -> Result<()> {
    let (Some(file), Some(target)) = (
        host_config["Squashfs"].as_str(),
        host_config["SquashfsMount"].as_str(),
    ) else {
        return Ok(());
    };
    if host_config["SquashfsShared"].as_bool() == Some(true) {
        return super::shared_fuse::acquire_at(Path::new(file), Path::new(target));
    }
    let target = Path::new(target);
    if target.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(target)
        .with_context(|| format!("cannot create {}", target.display()))?;
    let fuse = host_config["SquashfsFuse"].as_bool() == Some(true);
    if let Err(e) = berth_runtime::mount_squashfs(Path::new(file), target, fuse) {
        let _ = std::fs::remove_dir(target);
        return Err(e.into());
    }
    Ok(())
}

/// How long a single-file image's file system outlives, as root, the container that mounted
/// it. A container started from the same file meanwhile finds its loop device still bound and
/// mounts the same superblock, whose page cache holds the blocks its programs need already
/// inflated: back-to-back containers from one file (a job script's loop, one task after
/// another) start as fast as from the store instead of inflating the same blocks each time.
const LINGER: std::time::Duration = std::time::Duration::from_secs(3);

/// [`release`] for the container's monitor, leaving behind a `berth __linger` process that
/// holds the kernel-mounted file system for [`LINGER`] through a descriptor of its root: the
/// mount is gone from every namespace at once, the file system is not.
pub fn release_lingering(host_config: &Value) {
    if let (Some(target), Some(file), true) = (
        host_config["SquashfsMount"].as_str(),
        host_config["Squashfs"].as_str(),
        host_config["SquashfsShared"].as_bool() == Some(true),
    ) {
        super::shared_fuse::release(Path::new(target), file, true);
        return;
    }
    if let (Some(target), Some(file), false) = (
        host_config["SquashfsMount"].as_str(),
        host_config["Squashfs"].as_str(),
        host_config["SquashfsFuse"].as_bool() == Some(true),
    ) {
        if let Some(root) = berth_runtime::SquashfsMount::Kernel(PathBuf::from(target)).hold() {
            spawn_linger(root, file, None);
        }
    }
    release(host_config);
}

/// Starts `berth __linger`, which holds `hold` (a kernel mount's root, or a lock on a shared
/// FUSE mount, as its standard input) for [`LINGER`] and then, given `unmount`, takes that FUSE
/// mount down if nobody else holds it. Its own process group, nothing of the caller's terminal
/// or pipes: a `$(berth run …)` does not wait for it. Should it fail to start, what it would
/// have held goes at once (a shared mount stays for the next container to use).
pub fn spawn_linger(hold: std::os::fd::OwnedFd, file: &str, unmount: Option<&Path>) {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg0("berth")
        .arg("__linger")
        .arg(LINGER.as_millis().to_string())
        .arg(file);
    if let Some(dir) = unmount {
        cmd.arg("--unmount").arg(dir);
    }
    let _ = cmd
        .stdin(std::process::Stdio::from(hold))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
}

/// Takes down what [`open`] mounted for a container (its record's `HostConfig`), once it has
/// ended.
pub fn release(host_config: &Value) {
    let Some(target) = host_config["SquashfsMount"].as_str() else {
        return;
    };
    if host_config["SquashfsShared"].as_bool() == Some(true) {
        let file = host_config["Squashfs"].as_str().unwrap_or_default();
        super::shared_fuse::release(Path::new(target), file, false);
        return;
    }
    let target = PathBuf::from(target);
    let mounted = if host_config["SquashfsFuse"].as_bool() == Some(true) {
        berth_runtime::SquashfsMount::Fuse(target.clone())
    } else {
        berth_runtime::SquashfsMount::Kernel(target.clone())
    };
    mounted.release();
    let _ = std::fs::remove_dir(&target);
}

/// The config of an image that carries none: Linux on this machine, nothing else set.
fn default_config() -> Result<ImageConfiguration> {
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let v: Value = json!({
        "architecture": arch,
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    Ok(serde_json::from_value(v)?)
}

/// Takes down what [`open`] mounted when no container was made from it.
pub fn release_input(img: &ImageInput) {
    release(&Value::Object(img.host_config.clone()));
}
