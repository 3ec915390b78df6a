//! Work that needs both the registry and the store: the registry hands over checked streams,
//! the store decides where they land. Neither library knows the other.

pub mod archive;
pub mod build;
pub mod convert;
pub mod create;
pub mod delegate;
pub mod devices;
pub mod host;
pub mod limits;
pub mod local_image;
pub mod logging;
pub mod mpi;
pub mod netns_pool;
pub mod pull;
pub mod push;
pub mod run_flags;
pub mod shared_fuse;
pub mod shared_mounts;
pub mod shared_userns;
pub mod start;

use std::os::unix::fs::MetadataExt;

/// The effective uid of this process (the owner of `/proc/self`), without a syscall wrapper.
pub fn euid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// This user's directory for files that live as long as the machine is up (decision 1 of the
/// design): `/run/berth` for root, `$XDG_RUNTIME_DIR/berth` otherwise, or one of the user's
/// own under the temporary directory where that is not set.
pub fn runtime_dir() -> std::path::PathBuf {
    let uid = euid();
    if uid == 0 {
        return "/run/berth".into();
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => std::path::PathBuf::from(d).join("berth"),
        _ => std::env::temp_dir().join(format!("berth-{uid}")),
    }
}

/// How many blobs move at once: enough to hide latency, few enough not to thrash one disk.
pub const PARALLEL_BLOBS: usize = 4;

/// Runs `f` over `items` on up to `PARALLEL_BLOBS` threads; the first error wins.
pub fn parallel<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(usize, &T) -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<anyhow::Result<R>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_BLOBS.min(items.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= items.len() || failed.load(Ordering::SeqCst) {
                    break;
                }
                let r = f(i, &items[i]);
                if r.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                results.lock().expect("no panics hold this lock")[i] = Some(r);
            });
        }
    });
    let mut out = Vec::with_capacity(items.len());
    for r in results.into_inner().expect("threads joined") {
        match r {
            Some(r) => out.push(r?),
            None => anyhow::bail!("interrupted after an earlier failure"),
        }
    }
    Ok(out)
}

/// The directory of a container's writable layer, for the commands that read or write it from
/// outside the container (`commit`, `diff`, `cp` into a container that is not running). A layer
/// in memory is refused: only the container's own mounts reach it.
pub fn writable_layer(
    store: &berth_store::Store,
    rec: &berth_store::ContainerRecord,
) -> anyhow::Result<std::path::PathBuf> {
    if rec.layer_in_memory {
        anyhow::bail!(
            "the writable layer of container {} is in memory, where only the container itself \
             sees it (writable_layer = \"memory\", the hpc profile's default for --rm)",
            rec.name
        );
    }
    Ok(store.paths().container_upper(&rec.id))
}
