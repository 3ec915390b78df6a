//! Loop devices (a file as a read-only block device) and moving this process into new
//! namespaces: the calls that work on the calling process rather than on a container.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

// From <linux/loop.h>; the libc crate does not carry them.
const LOOP_CTL_GET_FREE: libc::Ioctl = 0x4C82;
const LOOP_CONFIGURE: libc::Ioctl = 0x4C0A;
const LOOP_GET_STATUS64: libc::Ioctl = 0x4C05;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

impl LoopInfo64 {
    fn empty() -> LoopInfo64 {
        LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: 0,
            lo_file_name: [0; 64],
            lo_crypt_name: [0; 64],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        }
    }
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// A loop device already bound read-only to `file` (the same device and inode, whole file),
/// opened: while the handle or a mount from it lives, autoclear cannot unbind it. Mounting it
/// again gives the same squashfs superblock, so every container started from one image file
/// shares one page cache instead of inflating the same blocks again. `path` is the file's
/// canonical path, to skip devices bound to other files without opening them.
pub(crate) fn find_attached(file: &File, path: &std::path::Path) -> Option<(File, PathBuf)> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let want = path.as_os_str().as_encoded_bytes();
    for e in std::fs::read_dir("/sys/block").ok()?.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str().filter(|n| n.starts_with("loop")) else {
            continue;
        };
        // Only a bound device has a backing file; the kernel writes its path with a newline.
        match std::fs::read(e.path().join("loop/backing_file")) {
            Ok(b) if b.strip_suffix(b"\n").unwrap_or(&b) == want => {}
            _ => continue,
        }
        let dev_path = PathBuf::from(format!("/dev/{name}"));
        let Ok(dev) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&dev_path)
        else {
            continue;
        };
        // Checked after the open that pins the binding: it may have changed in between.
        let mut info = LoopInfo64::empty();
        // SAFETY: LOOP_GET_STATUS64 writes one struct loop_info64, which `info` is (repr(C),
        // laid out as in <linux/loop.h>), alive for the duration of the call.
        let r = unsafe {
            libc::ioctl(
                dev.as_raw_fd(),
                LOOP_GET_STATUS64,
                &mut info as *mut LoopInfo64,
            )
        };
        if r == 0
            && info.lo_inode == meta.ino()
            && info.lo_device == meta.dev()
            && info.lo_flags & LO_FLAGS_READ_ONLY != 0
            && info.lo_offset == 0
            && info.lo_sizelimit == 0
        {
            return Some((dev, dev_path));
        }
    }
    None
}

/// Binds `file` to a free loop device, read-only and cleared automatically once the last user
/// (a mount, or the returned handle) lets go. Returns the open device and its path.
pub(crate) fn attach_read_only(file: &File) -> io::Result<(File, PathBuf)> {
    let ctl = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/loop-control")?;
    // Another process may take the free device between the two calls: then ask again.
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)?;
        let config = LoopConfig {
            fd: file.as_raw_fd() as u32,
            block_size: 0,
            info: LoopInfo64 {
                lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
                ..LoopInfo64::empty()
            },
            reserved: [0; 8],
        };
        // SAFETY: LOOP_CONFIGURE reads one struct loop_config, which `config` is (repr(C),
        // laid out as in <linux/loop.h>), alive for the duration of the call.
        let r = unsafe {
            libc::ioctl(
                dev.as_raw_fd(),
                LOOP_CONFIGURE,
                &config as *const LoopConfig,
            )
        };
        if r == 0 {
            return Ok((dev, path));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(e);
        }
    }
    Err(io::Error::other("no free loop device after 16 tries"))
}

/// Gives this process a mount namespace of its own (a copy of the current one), so mounts
/// made from now on vanish with it when the process and its children are gone.
pub(crate) fn unshare_mount_namespace() -> io::Result<()> {
    // SAFETY: unshare(CLONE_NEWNS) only changes which mount namespace this process uses; it
    // touches no memory. The caller is single-threaded (CLONE_NEWNS implies CLONE_FS, which
    // the kernel refuses with EINVAL otherwise).
    let r = unsafe { libc::unshare(libc::CLONE_NEWNS) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `unshare(flags)`: moves the calling thread into new namespaces of the `CLONE_NEW*` kinds
/// given (the whole process, for the kinds the kernel allows only single-threaded callers).
pub(crate) fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare only changes which namespaces the caller uses and touches no memory; the
    // kernel refuses (EINVAL) kinds that need a single-threaded caller from any other.
    let r = unsafe { libc::unshare(flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Moves this process into a new user namespace, where it has every capability once its maps
/// are written.
pub(crate) fn unshare_user_namespace() -> io::Result<()> {
    // SAFETY: unshare(CLONE_NEWUSER) only changes this process's user namespace and touches no
    // memory. The kernel refuses it (EINVAL) unless the process is single-threaded.
    let r = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
