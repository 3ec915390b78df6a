//! Shared image caches: read-only site stores (`shared_stores` in the config) used before any
//! pull, and starts from a cached image that take no lock at all.

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::{run_as, unprivileged_user};

use crate::common::Berth;

/// Holds an exclusive lock on each file until dropped (`flock` processes, killed by pid).
struct Held(Vec<Child>);

impl Held {
    fn all_in(dir: &std::path::Path) -> Held {
        let mut held = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let mut c = Command::new("flock")
                .arg("-x")
                .arg(e.path())
                .args(["sh", "-c", "echo locked; exec sleep 60"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            // Wait until it holds the lock.
            let mut line = String::new();
            use std::io::BufRead;
            std::io::BufReader::new(c.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line, "locked\n");
            held.push(c);
        }
        assert!(!held.is_empty(), "no lock files in {}", dir.display());
        Held(held)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn starting_a_cached_image_takes_no_lock() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    b.ok(&["run", "--rm", "localhost/bb", "true"]);
    // Every writer lock of the store is held by someone else (a pull, a gc) for a minute.
    let _held = Held::all_in(&b.root().join("locks"));
    let t = Instant::now();
    let mut child = b
        .cmd()
        .args(["run", "--rm", "localhost/bb", "echo", "started"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("berth run waited on a lock");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n");
}

#[test]
fn shared_read_only_store_is_used_before_pulling() {
    // The site's cache: made by root, readable by all, writable by nobody else.
    let site = Berth::new();
    site.import_busybox("localhost/site-bb");
    let root = site.root();
    Command::new("chmod")
        .args(["-R", "go+rX"])
        .arg(&root)
        .status()
        .unwrap();
    let mut dir = root.clone();
    while let Some(parent) = dir.parent() {
        let mode = std::fs::metadata(parent).unwrap().permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(mode | 0o001))
                .unwrap();
        }
        dir = parent.to_path_buf();
    }

    // A user whose own store is empty and whose config names the site's store.
    let user = unprivileged_user();
    let work = tempfile::Builder::new()
        .prefix("berth-shared-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = work.path().join("berth");
    std::fs::copy(env!("CARGO_BIN_EXE_berth"), &bin).unwrap();
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let config = work.path().join("config.toml");
    std::fs::write(
        &config,
        format!("shared_stores = [{:?}]\n", root.display().to_string()),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    Command::new("chown")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(&home)
        .status()
        .unwrap();
    let berth = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.env("HOME", &home)
            .env("BERTH_ROOT", home.join("store"))
            .env("BERTH_CONFIG", &config)
            .env("XDG_RUNTIME_DIR", user.runtime_dir())
            .args(args);
        run_as(&user, &mut c)
    };
    let before = std::fs::read_dir(root.join("locks"))
        .unwrap()
        .flatten()
        .count();
    // --pull never: no registry is asked; the site's copy runs.
    let out = berth(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "localhost/site-bb",
        "echo",
        "from the site",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from the site\n");
    // The user's own store got no image, and the site's store was not written to.
    let out = berth(&["images", "-q"]);
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty());
    let after = std::fs::read_dir(root.join("locks"))
        .unwrap()
        .flatten()
        .count();
    assert_eq!(before, after);
    // A store that is not one is a clear error naming the config entry.
    std::fs::write(&config, "shared_stores = [\"/nonexistent/store\"]\n").unwrap();
    let out = berth(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "localhost/site-bb",
        "true",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("/nonexistent/store"), "{err}");
}
