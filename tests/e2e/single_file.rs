//! Single-file images: `berth convert` to squashfs, `berth run FILE.sqsh` and `berth run DIR`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use berth_testkit::{run_as, unprivileged_user};

use crate::common::{have, Berth};

/// A three-layer image over busybox with deletions (whiteouts) in the upper layers and a
/// config of its own.
const LAYERED: &str = "FROM localhost/bb
RUN mkdir -p /opt/d && echo one > /opt/d/f && echo keep > /opt/k && rm /bin/vi
RUN rm -rf /opt/d && echo two > /opt/k && mkdir /opt/e && echo e > /opt/e/x
ENV GREETING=hello
WORKDIR /opt
ENTRYPOINT [\"/bin/sh\", \"-c\"]
CMD [\"echo $GREETING from $(pwd)\"]
";

/// What the file system looks like from inside: every path with its type, mode and owner, and
/// the content of every regular file (directory sizes are the file system's own business, and
/// the files Berth writes per container differ by design).
const LISTING: &str = "find /bin /etc /opt /root /usr /var 2>/dev/null | sort \
    | grep -vE '^/etc/(hostname|hosts|resolv.conf)$' | while read -r p; do \
    stat -c '%n %F %a %u:%g' \"$p\"; [ -f \"$p\" ] && [ ! -L \"$p\" ] && md5sum \"$p\"; done | md5sum";

fn layered() -> (Berth, tempfile::TempDir) {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), LAYERED).unwrap();
    b.ok(&["build", "-q", "-t", "layered", ctx.path().to_str().unwrap()]);
    (b, ctx)
}

#[test]
fn convert_then_run_in_place() {
    if !have("mksquashfs") {
        eprintln!("skipping: mksquashfs (squashfs-tools) not installed");
        return;
    }
    let (b, _ctx) = layered();
    let work = tempfile::tempdir().unwrap();
    let mut listing_from_store = None;
    for comp in ["zstd", "lz4", "gzip"] {
        let file = work.path().join(format!("layered-{comp}.sqsh"));
        let f = file.to_str().unwrap();
        let out = b.ok(&["convert", "-q", "--compression", comp, "layered", f]);
        assert_eq!(out.trim(), f);
        // An ordinary squashfs file system: the tools of squashfs-tools read it.
        let list = Command::new("unsquashfs").args(["-l", f]).output().unwrap();
        let list = String::from_utf8_lossy(&list.stdout);
        assert!(list.contains("squashfs-root/opt/k"), "{list}");
        assert!(!list.contains("squashfs-root/opt/d"), "{list}");
        assert!(!list.contains("squashfs-root/bin/vi"), "{list}");
        assert!(!list.contains(".wh."), "{list}");
        // zstd at zstd's own default level unless told otherwise.
        if comp == "zstd" {
            let sb = Command::new("unsquashfs").args(["-s", f]).output().unwrap();
            let sb = String::from_utf8_lossy(&sb.stdout);
            assert!(sb.contains("compression-level 3"), "{sb}");
            let f19 = work.path().join("layered-zstd19.sqsh");
            let f19 = f19.to_str().unwrap();
            b.ok(&["convert", "-q", "--compression-level", "19", "layered", f19]);
            let sb = Command::new("unsquashfs")
                .args(["-s", f19])
                .output()
                .unwrap();
            assert!(String::from_utf8_lossy(&sb.stdout).contains("compression-level 19"));
        }

        // ENTRYPOINT, CMD, ENV and WORKDIR come from the file.
        assert_eq!(b.ok(&["run", "--rm", f]), "hello from /opt\n");
        assert_eq!(
            b.ok(&["run", "--rm", "-e", "GREETING=hi", f, "cat /opt/k /opt/e/x"]),
            "two\ne\n"
        );
        // The same tree as the image run from the store.
        let sqsh = b.ok(&["run", "--rm", f, LISTING]);
        let store = listing_from_store
            .get_or_insert_with(|| b.ok(&["run", "--rm", "layered", LISTING]))
            .clone();
        assert_eq!(sqsh, store, "{comp}");
        // Writable on top, and the writes do not reach the file.
        assert_eq!(
            b.ok(&["run", "--rm", f, "echo x > /opt/k && cat /opt/k"]),
            "x\n"
        );
        assert_eq!(b.ok(&["run", "--rm", f, "cat /opt/k"]), "two\n");
    }

    // A one-layer image (converted from its unpacked directory when root): the same tree too.
    let one = work.path().join("bb.sqsh");
    let one = one.to_str().unwrap();
    b.ok(&["convert", "-q", "--compression", "lz4", "localhost/bb", one]);
    assert_eq!(
        b.ok(&["run", "--rm", "--entrypoint", "sh", one, "-c", LISTING]),
        b.ok(&[
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            "localhost/bb",
            "-c",
            LISTING
        ])
    );

    // A one-layer image holding a whiteout (meaningless at the bottom; the store keeps it as a
    // 0:0 device): found while mksquashfs reads the directory, which is then given up for the
    // flattened layer, so the file has no such device.
    let src = work.path().join("wh");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("d/kept"), "k").unwrap();
    std::fs::write(src.join("d/.wh.gone"), "").unwrap();
    let tar = work.path().join("wh.tar");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    b.ok(&["import", tar.to_str().unwrap(), "localhost/wh"]);
    let wh = work.path().join("wh.sqsh");
    b.ok(&[
        "convert",
        "-q",
        "--compression",
        "lz4",
        "localhost/wh",
        wh.to_str().unwrap(),
    ]);
    let out = std::process::Command::new("unsquashfs")
        .arg("-lls")
        .arg(&wh)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("squashfs-root/d/kept"), "{listing}");
    assert!(!listing.contains("gone"), "{listing}");
    assert!(
        std::fs::read_dir(work.path())
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().contains("partial")),
        "temporary file left"
    );

    // Detached: the mount lives as long as the container, then it and its directory go.
    let f = work.path().join("layered-zstd.sqsh");
    let f = f.to_str().unwrap();
    b.ok(&["run", "-d", "--name", "sq", f, "sleep 30"]);
    assert_eq!(b.ok(&["exec", "sq", "cat", "/opt/k"]), "two\n");
    b.ok(&["rm", "-f", "sq"]);
    // Started again after it ended: the file is mounted again, the writable layer kept.
    b.ok(&[
        "run",
        "--name",
        "again",
        f,
        "echo run $(cat /n 2>/dev/null); echo x >> /n",
    ]);
    assert_eq!(b.ok(&["start", "-a", "again"]), "run x\n");
    let err = b.fails(&["commit", "again"], 1);
    assert!(err.contains("not an image of the store"), "{err}");
    b.ok(&["rm", "again"]);
    let tmp = b.root().join("tmp");
    for _ in 0..50 {
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        if !left
            .iter()
            .any(|n| n.to_string_lossy().starts_with("sqsh-"))
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sqsh-"))
        .collect();
    assert!(left.is_empty(), "mount points left behind: {left:?}");
    assert!(b.ok(&["ps", "-aq"]).trim().is_empty());
}

#[test]
fn convert_errors_are_one_line() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let err = b.fails(
        &[
            "convert",
            "--compression",
            "brotli",
            "localhost/bb",
            "/tmp/x.sqsh",
        ],
        1,
    );
    assert!(err.contains("--compression \"brotli\""), "{err}");
    for (args, says) in [
        (
            &["--compression-level", "23"][..],
            "invalid --compression-level 23: zstd takes 1 to 22",
        ),
        (
            &["--compression", "lz4", "--compression-level", "3"][..],
            "lz4 takes no level",
        ),
    ] {
        let mut argv = vec!["convert"];
        argv.extend_from_slice(args);
        argv.extend(["localhost/bb", "/tmp/x.sqsh"]);
        let err = b.fails(&argv, 1);
        assert!(err.contains(says), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert!(!Path::new("/tmp/x.sqsh").exists());
    let err = b.fails(&["convert", "localhost/bb", "/nonexistent/dir/x.sqsh"], 1);
    assert!(err.contains("/nonexistent/dir"), "{err}");
    // Not a squashfs file: the mount fails and says which file.
    let bogus = tempfile::Builder::new().suffix(".sqsh").tempfile().unwrap();
    std::fs::write(bogus.path(), vec![0u8; 8192]).unwrap();
    let p = bogus.path().to_str().unwrap();
    let err = b.fails(&["run", "--rm", p, "true"], 125);
    assert!(err.contains(p), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn run_a_root_file_system_directory() {
    let b = Berth::new();
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-xf")
        .arg(berth_testkit::busybox_rootfs_tar())
        .status()
        .unwrap();
    assert!(status.success());
    let d = dir.path().to_str().unwrap();
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            d,
            "sh",
            "-c",
            "echo in dir; touch /new && echo ok"
        ]),
        "in dir\nok\n"
    );
    // The directory itself is the read-only lower layer: the write went elsewhere.
    assert!(!dir.path().join("new").exists());
}

#[test]
fn root_mounts_through_fuse_when_the_site_says_so() {
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    if !have("mksquashfs") || !have("squashfuse_ll") || !root {
        eprintln!("skipping: needs root, mksquashfs and squashfuse_ll");
        return;
    }
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("bb.sqsh");
    let f = file.to_str().unwrap();
    b.ok(&["convert", "-q", "localhost/bb", f]);
    let conf = b.home().join(".config/berth");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("config.toml"), "squashfs_mount = \"fuse\"\n").unwrap();
    let id = b.ok(&["run", "-d", f, "sleep", "30"]);
    let root = b.root().display().to_string();
    let ours = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&root) && l.contains(" - fuse"))
            .count()
    };
    assert_eq!(ours(), 1, "no FUSE mount of the image under {root}");
    assert_eq!(
        b.ok(&["exec", id.trim(), "cat", "/etc/passwd"])
            .lines()
            .next(),
        Some("root:x:0:0:root:/root:/bin/sh")
    );
    // Containers from the file share the one mount, while they run and a few seconds after.
    assert_eq!(b.ok(&["run", "--rm", f, "echo", "beside"]), "beside\n");
    assert_eq!(ours(), 1, "a second FUSE mount of the same file");
    b.ok(&["rm", "-f", id.trim()]);
    assert_eq!(ours(), 1, "the mount did not linger");
    assert_eq!(b.ok(&["run", "--rm", f, "echo", "after"]), "after\n");
    assert_eq!(ours(), 1, "a second FUSE mount of the same file");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ours() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(ours(), 0, "the FUSE mount outlived its containers");
    // Created and removed without ever running: the mount goes with the container.
    let id = b.ok(&["create", f, "true"]);
    assert_eq!(ours(), 1);
    b.ok(&["rm", id.trim()]);
    assert_eq!(
        ours(),
        0,
        "the FUSE mount outlived a container that never ran"
    );
    // A mount nobody holds (its monitor killed, say) goes with `system prune`.
    b.ok(&["create", "--name", "idle", f, "true"]);
    assert_eq!(ours(), 1);
    b.ok(&["system", "prune", "-f"]);
    assert_eq!(ours(), 0, "system prune left an unused FUSE mount");
    std::fs::write(conf.join("config.toml"), "squashfs_mount = \"nfs\"\n").unwrap();
    let err = b.fails(&["run", "--rm", f, "true"], 125);
    assert!(
        err.contains("config.toml:1: unknown variant `nfs`"),
        "{err}"
    );
}

#[test]
fn unprivileged_run_uses_fuse_or_says_why() {
    if !have("mksquashfs") {
        eprintln!("skipping: mksquashfs (squashfs-tools) not installed");
        return;
    }
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let work = tempfile::Builder::new()
        .prefix("berth-sqsh-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = work.path().join("bb.sqsh");
    b.ok(&["convert", "-q", "localhost/bb", file.to_str().unwrap()]);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let bin = work.path().join("berth");
    std::fs::copy(env!("CARGO_BIN_EXE_berth"), &bin).unwrap();
    let user = unprivileged_user();
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    Command::new("chown")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(&home)
        .status()
        .unwrap();
    let mut c = Command::new(&bin);
    c.env("HOME", &home)
        .env("BERTH_ROOT", home.join("store"))
        .args(["run", "--rm"])
        .arg(&file)
        .args(["echo", "from fuse"]);
    let out = run_as(&user, &mut c);
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert_eq!(String::from_utf8_lossy(&out.stdout), "from fuse\n");
    } else {
        // Where /dev/fuse is root's alone (as on some hosts), the one line says so.
        assert_eq!(out.status.code(), Some(125), "{err}");
        assert!(err.contains("squashfuse"), "{err}");
        assert!(err.contains(file.to_str().unwrap()), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn a_thousand_containers_from_one_file() {
    if !have("mksquashfs") {
        eprintln!("skipping: mksquashfs (squashfs-tools) not installed");
        return;
    }
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("bb.sqsh");
    let f = file.to_str().unwrap();
    b.ok(&["convert", "-q", "localhost/bb", f]);
    // A batch job's fan-out on one node: 1,000 starts, 100 at a time, each from the one
    // file: all succeed, nothing stays.
    let bin = env!("CARGO_BIN_EXE_berth");
    let script = format!(
        "seq 1000 | xargs -P 100 -I{{}} sh -c '{bin} run --rm --network host {f} echo ok{{}} || echo FAILED{{}}'"
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("BERTH_ROOT", b.root())
        .env("HOME", b.home())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("FAILED"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.lines().filter(|l| l.starts_with("ok")).count(), 1000);
    assert!(b.ok(&["ps", "-aq"]).trim().is_empty());

    // As root, containers started while another one runs share its loop device (and the file
    // system's page cache); the device goes with the last of them.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    if root {
        let canonical = std::fs::canonicalize(&file).unwrap();
        let bound = || {
            std::fs::read_dir("/sys/block")
                .unwrap()
                .flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("loop/backing_file"))
                        .is_ok_and(|p| Path::new(p.trim_end()) == canonical)
                })
                .count()
        };
        // The file system outlives its last container by a few seconds (`berth __linger`),
        // and a container started from the file meanwhile mounts it again from that device.
        let gone = |secs| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
            while bound() > 0 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            bound() == 0
        };
        // Starts racing each other may each have bound a device; all go after the fan-out.
        assert!(gone(10), "loop devices left bound after the fan-out");
        b.ok(&["run", "-d", "--name", "holder", f, "sleep", "60"]);
        assert_eq!(bound(), 1);
        for _ in 0..3 {
            assert_eq!(b.ok(&["run", "--rm", f, "echo", "shared"]), "shared\n");
            assert_eq!(bound(), 1);
        }
        b.ok(&["rm", "-f", "holder"]);
        assert!(!gone(1), "the file system did not outlive its container");
        assert!(gone(10), "loop device left bound");
        assert_eq!(b.ok(&["run", "--rm", f, "echo", "once"]), "once\n");
        assert_eq!(bound(), 1);
        assert_eq!(b.ok(&["run", "--rm", f, "echo", "twice"]), "twice\n");
        assert_eq!(bound(), 1, "a second device for the same file");
        assert!(gone(10), "loop device left bound");
    }
    let tmp: Vec<_> = std::fs::read_dir(b.root().join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[test]
fn convert_straight_from_a_registry() {
    if !have("mksquashfs") {
        eprintln!("skipping: mksquashfs (squashfs-tools) not installed");
        return;
    }
    let reg = berth_testkit::Registry::start();
    let (seed, _ctx) = layered();
    let name = format!("{}/t/layered:1", reg.addr());
    seed.ok(&["tag", "layered", &name]);
    seed.ok(&["push", "-q", "--tls-verify=false", &name]);

    // An empty store: the blobs are fetched, converted from, and no image is recorded.
    let b = Berth::new();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("from-registry.sqsh");
    let f = file.to_str().unwrap();
    b.ok(&["convert", "-q", "--tls-verify=false", &name, f]);
    assert!(b.ok(&["images", "-q"]).trim().is_empty());
    assert!(!b
        .root()
        .join("layers")
        .read_dir()
        .unwrap()
        .any(|e| e.unwrap().path().is_dir()));
    assert_eq!(b.ok(&["run", "--rm", f]), "hello from /opt\n");
    assert_eq!(
        b.ok(&["run", "--rm", f, LISTING]),
        seed.ok(&["run", "--rm", "layered", LISTING])
    );
}
