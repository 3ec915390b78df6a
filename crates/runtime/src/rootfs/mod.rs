//! Building the container's filesystem view inside its new mount namespace: the root
//! (overlay or bind), the spec's mounts in order, `/dev`, masked and read-only paths, the
//! read-only root, and finally `pivot_root` with the old root detached.

mod devices;
mod mounts;
mod options;
mod paths;
mod resolve;
mod upper;

use std::ffi::CString;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use crate::error::{Failure, Step};
use crate::Rootfs;

/// Everything the container's init needs to know to build its root, decided by the monitor.
pub(crate) struct RootfsPlan<'a> {
    pub(crate) rootfs: &'a Rootfs,
    pub(crate) spec: &'a oci_spec::runtime::Spec,
    /// Where the root is mounted before `pivot_root` (inside the private state dir).
    pub(crate) mount_point: PathBuf,
    pub(crate) new_pid_ns: bool,
    pub(crate) new_net_ns: bool,
    pub(crate) in_user_ns: bool,
    /// Whether gid 5 (tty) exists in the container, for devpts's `gid=5`.
    pub(crate) tty_gid_mapped: bool,
}

impl RootfsPlan<'_> {
    fn readonly_root(&self) -> bool {
        self.spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false)
    }
}

/// Builds the root and enters it. Runs in the container's init, in its new mount namespace.
/// `enter_network` moves the init into its network namespace: it runs before the first sysfs
/// mount and again (doing nothing by then, if it did) before `before_pivot`, which runs once
/// every mount is in place, before the root is made read-only and entered: the point of the
/// spec's hooks that look at the container's files from outside.
pub(crate) fn setup(
    plan: &RootfsPlan<'_>,
    enter_network: &mut dyn FnMut() -> Result<(), Failure>,
    before_pivot: &mut dyn FnMut() -> Result<(), Failure>,
) -> Result<(), Failure> {
    // Nothing done from here on may propagate back to the host's mount table.
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(Failure::at(Step::Propagation, "/"))?;
    let root = prepare_root(plan)?;
    if let Root::Layers(l) = &root {
        let mounts = plan.spec.mounts().as_deref().unwrap_or_default();
        for (i, m) in mounts.iter().enumerate() {
            // A target under an earlier mount (/dev/pts under the /dev tmpfs) is made on that
            // mount, not on the overlay: a directory in the upper layer would only be hidden.
            if mounts[..i].iter().any(|e| {
                m.destination() != e.destination() && m.destination().starts_with(e.destination())
            }) {
                continue;
            }
            let dir = match m.source().as_ref() {
                Some(src) if is_bind(m) => std::fs::metadata(src).is_ok_and(|md| md.is_dir()),
                _ => true,
            };
            upper::prepare_target(l.lower, &l.upper, m.destination(), dir);
        }
    }
    mount_root(plan, &root)?;
    let root = resolve::open_root(&plan.mount_point)
        .map_err(Failure::at(Step::MountRoot, plan.mount_point.display()))?;
    for m in plan.spec.mounts().as_deref().unwrap_or_default() {
        if m.typ().as_deref() == Some("sysfs") {
            enter_network()?;
        }
        mounts::mount_one(&root, m, plan)?;
    }
    if let Some(devices) = plan
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
    {
        devices::bind_spec_devices(&root, devices)?;
    }
    let linux = plan.spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        paths::mask(&root, Path::new(p))?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        paths::make_readonly(&root, Path::new(p))?;
    }
    drop(root);
    enter_network()?;
    before_pivot()?;
    if plan.readonly_root() {
        let flags = options::current_flags(
            resolve::open_root(&plan.mount_point).map_err(Failure::at(Step::Remount, "/"))?,
        )
        .map_err(Failure::at(Step::Remount, "/"))?;
        rustix::mount::mount_remount(
            &plan.mount_point,
            MountFlags::BIND | MountFlags::RDONLY | flags,
            "",
        )
        .map_err(Failure::at(Step::Remount, "/ read-only"))?;
    }
    pivot(&plan.mount_point)
}

fn is_bind(m: &oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o == "bind" || o == "rbind")
}

/// What is mounted as the root: a directory, or layers with overlayfs.
enum Root<'a> {
    Dir(&'a Path),
    Layers(Layers<'a>),
}

/// The overlay's directories.
struct Layers<'a> {
    lower: &'a [PathBuf],
    upper: PathBuf,
    work: PathBuf,
    discard: bool,
}

/// Where the overlay's layers are; for a writable layer in memory, mounts its tmpfs on the
/// mount point first (the overlay goes on top of it, so the root's path stays the same).
fn prepare_root<'a>(plan: &RootfsPlan<'a>) -> Result<Root<'a>, Failure> {
    match plan.rootfs {
        Rootfs::Dir(dir) => Ok(Root::Dir(dir)),
        Rootfs::Overlay {
            lower,
            upper,
            work,
            discard,
        } => Ok(Root::Layers(Layers {
            lower,
            upper: upper.clone(),
            work: work.clone(),
            discard: *discard,
        })),
        Rootfs::OverlayInMemory { lower } => {
            let target = &plan.mount_point;
            let fail =
                |e| Failure::new(Step::MountRoot, format!("tmpfs on {}", target.display()), e);
            rustix::mount::mount("tmpfs", target, "tmpfs", MountFlags::empty(), c"mode=0755")
                .map_err(|e| fail(e.into()))?;
            let (upper, work) = (target.join("upper"), target.join("work"));
            for d in [&upper, &work] {
                std::fs::create_dir(d).map_err(fail)?;
            }
            // Nothing to sync on a tmpfs, so no `volatile` (and none of the files it adds).
            Ok(Root::Layers(Layers {
                lower,
                upper,
                work,
                discard: false,
            }))
        }
    }
}

/// Mounts the image on the mount point: overlayfs over the layers, or a bind of a directory.
fn mount_root(plan: &RootfsPlan<'_>, root: &Root<'_>) -> Result<(), Failure> {
    let target = &plan.mount_point;
    let l = match root {
        Root::Dir(dir) => {
            return rustix::mount::mount_bind_recursive(*dir, target)
                .map_err(Failure::at(Step::MountRoot, dir.display()))
        }
        Root::Layers(l) => l,
    };
    let fail = |e| {
        Failure::new(
            Step::MountRoot,
            format!("overlay on {}", target.display()),
            e,
        )
    };
    match overlay_options(l.lower, &l.upper, &l.work, l.discard) {
        Ok(data) => rustix::mount::mount(
            "overlay",
            target,
            "overlay",
            MountFlags::empty(),
            data.as_c_str(),
        )
        .map_err(|e| fail(e.into())),
        // Too many layers for one page of options, or paths overlayfs would split: the new
        // mount API takes one layer per call, unescaped (Linux 6.8+).
        Err(_) => {
            mount_overlay_per_layer(l.lower, &l.upper, &l.work, l.discard, target).map_err(fail)
        }
    }
}

/// Mounts overlayfs with `fsconfig(lowerdir+)`, one call per layer.
fn mount_overlay_per_layer(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    discard: bool,
    target: &Path,
) -> std::io::Result<()> {
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for dir in lower {
        rustix::mount::fsconfig_set_string(&fs, "lowerdir+", dir)?;
    }
    rustix::mount::fsconfig_set_string(&fs, "upperdir", upper)?;
    rustix::mount::fsconfig_set_string(&fs, "workdir", work)?;
    rustix::mount::fsconfig_set_flag(&fs, "userxattr")?;
    if discard {
        rustix::mount::fsconfig_set_flag(&fs, "volatile")?;
    }
    rustix::mount::fsconfig_create(&fs)?;
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

/// The overlay mount data. `userxattr` makes overlayfs read `user.overlay.*` attributes, the
/// only ones an unprivileged store can write, and is also what lets it mount in a user namespace;
/// `volatile` for an upper layer deleted after use (`discard`).
fn overlay_options(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    discard: bool,
) -> std::io::Result<CString> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_owned());
    if lower.is_empty() {
        return Err(invalid("no lower layers"));
    }
    let mut data = String::from("lowerdir=");
    for (i, dir) in lower.iter().enumerate() {
        let s = dir
            .to_str()
            .ok_or_else(|| invalid("layer path is not utf-8"))?;
        if s.contains([':', ',', '\\']) {
            return Err(invalid("layer path contains ':', ',' or '\\'"));
        }
        if i > 0 {
            data.push(':');
        }
        data.push_str(s);
    }
    for (key, dir) in [("upperdir", upper), ("workdir", work)] {
        let s = dir
            .to_str()
            .ok_or_else(|| invalid("upper or work path is not utf-8"))?;
        data.push_str(&format!(",{key}={s}"));
    }
    data.push_str(",userxattr");
    if discard {
        data.push_str(",volatile");
    }
    // mount(2) takes at most one page of options.
    if data.len() >= 4096 {
        return Err(invalid("too many layers for one mount call"));
    }
    CString::new(data).map_err(|_| invalid("nul byte in layer path"))
}

/// `pivot_root(".", ".")` then a lazy unmount of the old root stacked on top, as runc does:
/// no directory for the old root is needed and nothing of the host stays reachable.
fn pivot(new_root: &Path) -> Result<(), Failure> {
    let at = |what: &str| Failure::at(Step::PivotRoot, format!("{what} {}", new_root.display()));
    rustix::process::chdir(new_root).map_err(at("chdir"))?;
    rustix::process::pivot_root(".", ".").map_err(at("into"))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).map_err(at("detach old root from"))?;
    rustix::process::chdir("/").map_err(at("chdir / in"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_data() {
        let layers = ["/l/top".into(), "/l/base".into()];
        let (u, w) = (Path::new("/u"), Path::new("/w"));
        let d = overlay_options(&layers, u, w, false).unwrap();
        assert_eq!(
            d.to_str().unwrap(),
            "lowerdir=/l/top:/l/base,upperdir=/u,workdir=/w,userxattr"
        );
        let d = overlay_options(&layers, u, w, true).unwrap();
        assert!(d.to_str().unwrap().ends_with(",userxattr,volatile"));
        assert!(overlay_options(&["/a:b".into()], u, w, false).is_err());
        assert!(overlay_options(&[], u, w, false).is_err());
    }
}
