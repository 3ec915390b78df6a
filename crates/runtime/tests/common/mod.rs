//! Shared helpers for the container tests and examples: a busybox root filesystem, specs in
//! the shape the `oci` crate produces, and a way to run a container with captured output.
#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_runtime::{Bundle, Container, Rootfs, RuntimeError, Stdio};
use oci_spec::runtime::{
    LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, RootBuilder, Spec,
    UserBuilder,
};

/// Container creation clones the calling thread only: no other test thread may be inside the
/// allocator or hold a lock at that moment, or the child can wait forever on a lock nobody in
/// it will release. Each test therefore takes its turn for all of its life (its [`Fixture`]
/// holds a [`Turn`]), not just around the clone.
static SERIAL: Mutex<()> = Mutex::new(());

thread_local! {
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// This thread's turn; taken again by the same thread (a second fixture, a helper) it nests.
pub struct Turn(Option<std::sync::MutexGuard<'static, ()>>);

/// Waits for this thread's turn.
pub fn turn() -> Turn {
    let depth = DEPTH.get();
    DEPTH.set(depth + 1);
    if depth > 0 {
        return Turn(None);
    }
    Turn(Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner())))
}

impl Drop for Turn {
    fn drop(&mut self) {
        DEPTH.set(DEPTH.get() - 1);
    }
}

const APPLETS: [&str; 19] = [
    "sh", "true", "false", "cat", "echo", "id", "ls", "sleep", "hostname", "mount", "readlink",
    "grep", "stat", "kill", "wc", "pwd", "touch", "mkdir", "unshare",
];

/// Writes a minimal busybox root filesystem into `dir`.
pub fn busybox_rootfs(dir: &Path) {
    for sub in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    fs::write(
        dir.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )
    .unwrap();
}

/// A Docker-like spec (new user, mount, pid, ipc, uts and network namespaces, the usual
/// mounts, masked paths and capabilities) running `args` as container root, mapped to the
/// caller.
pub fn spec(args: &[&str]) -> Spec {
    let mut spec = Spec::default();
    spec.set_root(Some(
        RootBuilder::default()
            .path("rootfs")
            .readonly(false)
            .build()
            .unwrap(),
    ));
    spec.set_hostname(Some("berth-test".into()));
    let mut process = spec.process().clone().unwrap();
    process.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
    spec.set_process(Some(process));
    let mut linux = spec.linux().clone().unwrap();
    let mut namespaces = linux.namespaces().clone().unwrap();
    namespaces.push(
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::User)
            .build()
            .unwrap(),
    );
    linux.set_namespaces(Some(namespaces));
    let map = |host: u32| {
        LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(host)
            .size(1u32)
            .build()
            .unwrap()
    };
    linux.set_uid_mappings(Some(vec![map(rustix::process::geteuid().as_raw())]));
    linux.set_gid_mappings(Some(vec![map(rustix::process::getegid().as_raw())]));
    spec.set_linux(Some(linux));
    spec
}

/// Removes namespaces of the given kinds from `spec`.
pub fn without_namespaces(spec: &mut Spec, kinds: &[LinuxNamespaceType]) {
    let mut linux = spec.linux().clone().unwrap();
    let ns = linux
        .namespaces()
        .clone()
        .unwrap()
        .into_iter()
        .filter(|n| !kinds.contains(&n.typ()))
        .collect();
    linux.set_namespaces(Some(ns));
    spec.set_linux(Some(linux));
}

/// Sets the process's uid and gid.
pub fn set_user(spec: &mut Spec, uid: u32, gid: u32) {
    let mut process = spec.process().clone().unwrap();
    process.set_user(UserBuilder::default().uid(uid).gid(gid).build().unwrap());
    spec.set_process(Some(process));
}

/// A container's root filesystem and state in one temporary directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    _turn: Turn,
}

impl Fixture {
    pub fn new() -> Fixture {
        let turn = turn();
        let dir = tempfile::Builder::new()
            .prefix("berth-rt-")
            .tempdir_in("/tmp")
            .unwrap();
        busybox_rootfs(&dir.path().join("rootfs"));
        fs::create_dir(dir.path().join("state")).unwrap();
        Fixture { dir, _turn: turn }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn bundle(&self, spec: Spec) -> Bundle {
        Bundle {
            rootfs: Rootfs::Dir(self.path("rootfs")),
            spec,
            cpu_affinity: None,
            state_dir: self.path("state"),
            init: false,
            preserve_fds: Vec::new(),
            default_seccomp: None,
            network_namespace: None,
        }
    }
}

/// What a container printed and how it ended.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Creates, starts and waits for a container with captured output.
pub fn run(bundle: &Bundle) -> Result<Outcome, RuntimeError> {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let stdio = Stdio::Files {
        stdin: None,
        stdout: out.try_clone().unwrap(),
        stderr: err.try_clone().unwrap(),
    };
    let mut container = {
        let _turn = turn();
        Container::create(bundle, stdio)?
    };
    container.start()?;
    let code = container.wait(false)?;
    Ok(Outcome {
        code,
        stdout: read_all(out),
        stderr: read_all(err),
    })
}

pub fn read_all(mut f: fs::File) -> String {
    use std::io::Seek;
    f.rewind().unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    s
}
