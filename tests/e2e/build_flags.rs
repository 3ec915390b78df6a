//! `berth build` flags beyond the basics: `--pull`, `--platform`, `--progress`, `--push`, a
//! context read from standard input, `NAME.dockerignore` beside the Dockerfile, and
//! reproducible images with `SOURCE_DATE_EPOCH`.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::Berth;

fn ctx(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = d.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    d
}

fn with_stdin(b: &Berth, args: &[&str], input: &[u8]) -> Output {
    let mut child = b
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn dockerfile_specific_ignore_file_wins() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let c = ctx(&[
        ("Dockerfile", "FROM localhost/bb\nCOPY . /ctx/\n"),
        ("app.Dockerfile", "FROM localhost/bb\nCOPY . /ctx/\n"),
        (".dockerignore", "a.txt\n"),
        ("app.Dockerfile.dockerignore", "b.txt\n"),
        ("a.txt", "a\n"),
        ("b.txt", "b\n"),
    ]);
    let dir = c.path().to_str().unwrap();
    let ls = |img: &str| b.ok(&["run", "--rm", img, "ls", "/ctx"]);
    b.ok(&["build", "-t", "plain", dir]);
    let plain = ls("plain");
    assert!(
        !plain.contains("a.txt") && plain.contains("b.txt"),
        "{plain}"
    );
    let f = c.path().join("app.Dockerfile");
    b.ok(&["build", "-t", "app", "-f", f.to_str().unwrap(), dir]);
    let app = ls("app");
    assert!(app.contains("a.txt") && !app.contains("b.txt"), "{app}");
}

#[test]
fn context_from_stdin_as_tar_or_dockerfile() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let c = ctx(&[
        (
            "Dockerfile",
            "FROM localhost/bb\nCOPY hello.txt /hello.txt\n",
        ),
        (
            "other/Custom",
            "FROM localhost/bb\nCOPY hello.txt /custom.txt\n",
        ),
        ("hello.txt", "hi from the tar\n"),
    ]);
    let tar = |z: &str| {
        let out = Command::new("tar")
            .args([z, "-C", c.path().to_str().unwrap(), "-cf", "-", "."])
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let out = with_stdin(
        &b,
        &["build", "-t", "fromtar", "-"],
        &tar("--no-auto-compress"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        b.ok(&["run", "--rm", "fromtar", "cat", "/hello.txt"]),
        "hi from the tar\n"
    );
    // Compressed, with -f naming a file inside the archive.
    let out = with_stdin(
        &b,
        &["build", "-t", "fromtgz", "-f", "other/Custom", "-"],
        &tar("-z"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        b.ok(&["run", "--rm", "fromtgz", "cat", "/custom.txt"]),
        "hi from the tar\n"
    );
    // A lone Dockerfile: the context is empty.
    let df = b"FROM localhost/bb\nRUN echo lone > /lone\n";
    let out = with_stdin(&b, &["build", "-t", "lone", "-"], df);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.ok(&["run", "--rm", "lone", "cat", "/lone"]), "lone\n");
    let out = with_stdin(
        &b,
        &["build", "-"],
        b"FROM localhost/bb\nCOPY hello.txt /\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("<stdin>:2:1") && err.contains("hello.txt"),
        "{err}"
    );
    // -f -: the Dockerfile from standard input, the context a directory.
    let dir = c.path().to_str().unwrap();
    let df = b"FROM localhost/bb\nCOPY hello.txt /via-f.txt\n";
    let out = with_stdin(&b, &["build", "-t", "viaf", "-f", "-", dir], df);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        b.ok(&["run", "--rm", "viaf", "cat", "/via-f.txt"]),
        "hi from the tar\n"
    );
}

#[test]
fn progress_plain_and_tty() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let c = ctx(&[(
        "Dockerfile",
        "FROM localhost/bb\nRUN echo line-one && echo line-two\n",
    )]);
    let dir = c.path().to_str().unwrap();
    let run = |mode: &str| {
        let out = b
            .cmd()
            .args(["build", "--no-cache", "--progress", mode, dir])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let plain = run("plain");
    assert!(plain.contains("#2 line-one\n#2 line-two\n"), "{plain}");
    assert!(!plain.contains('\x1b'), "{plain}");
    let tty = run("tty");
    assert!(tty.contains("#2 RUN echo line-one"), "{tty}");
    assert!(tty.contains("\r\x1b[2K#2 line-two"), "{tty}");
    assert!(!tty.contains("#2 line-one\n"), "{tty}");
    // Not a terminal here: auto is plain.
    assert!(!run("auto").contains('\x1b'));
    b.fails(&["build", "--progress", "fancy", dir], 125);
}

#[test]
fn platform_other_than_the_host_builds_but_does_not_run() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let host = if cfg!(target_arch = "aarch64") {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    let other = if host == "linux/amd64" {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    // No RUN: a foreign scratch image is assembled from files alone.
    let c = ctx(&[
        (
            "Dockerfile",
            "FROM --platform=$TARGETPLATFORM scratch\nCOPY f /f\n",
        ),
        ("f", "x\n"),
    ]);
    let dir = c.path().to_str().unwrap();
    b.ok(&["build", "-t", "foreign", "--platform", other, dir]);
    let v = b.inspect("foreign");
    assert_eq!(v["Architecture"], other.split('/').nth(1).unwrap(), "{v}");

    // A RUN in a stage of another platform: one clear line, exit 1.
    let c = ctx(&[(
        "Dockerfile",
        &format!("FROM --platform={other} scratch\nCOPY --from=localhost/bb /bin/busybox /bin/sh\nRUN true\n"),
    )]);
    let err = b.fails(&["build", c.path().to_str().unwrap()], 1);
    assert!(
        err.contains("Dockerfile:3:1") && err.contains("does not emulate"),
        "{err}"
    );
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("berth:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("does not emulate"), "{err}");

    // The host's own platform runs as usual.
    let c = ctx(&[("Dockerfile", "FROM localhost/bb\nRUN echo ok > /ok\n")]);
    b.ok(&[
        "build",
        "-t",
        "native",
        "--platform",
        host,
        c.path().to_str().unwrap(),
    ]);
    assert_eq!(b.ok(&["run", "--rm", "native", "cat", "/ok"]), "ok\n");
}

#[test]
fn pull_refreshes_base_images() {
    let reg = berth_testkit::Registry::start();
    let base = format!("{}/flags/base:1", reg.addr());
    // A publisher pushes a first base image.
    let publisher = Berth::new();
    publisher.import_busybox("localhost/bb");
    publisher.ok(&["tag", "localhost/bb", &base]);
    publisher.ok(&["push", "--tls-verify=false", &base]);

    let b = Berth::new();
    let c = ctx(&[(
        "Dockerfile",
        &format!("FROM {base}\nRUN ls /marker > /seen 2>&1 || true\n"),
    )]);
    let dir = c.path().to_str().unwrap();
    b.ok(&["build", "--tls-verify=false", "-t", "one", dir]);
    assert!(b
        .ok(&["run", "--rm", "one", "cat", "/seen"])
        .contains("No such file"));

    // A new base under the same name: kept out without --pull, taken with it.
    let n = ctx(&[("Dockerfile", "FROM localhost/bb\nRUN echo new > /marker\n")]);
    publisher.ok(&["build", "-t", &base, n.path().to_str().unwrap()]);
    publisher.ok(&["push", "--tls-verify=false", &base]);
    b.ok(&["build", "--tls-verify=false", "-t", "two", dir]);
    assert!(b
        .ok(&["run", "--rm", "two", "cat", "/seen"])
        .contains("No such file"));
    b.ok(&["build", "--tls-verify=false", "--pull", "-t", "three", dir]);
    assert_eq!(b.ok(&["run", "--rm", "three", "cat", "/seen"]), "/marker\n");
}

#[test]
fn zstd_layers_are_written_pushed_and_pulled() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let c = ctx(&[
        (
            "Dockerfile",
            "FROM localhost/bb\nRUN echo zz > /z\nCOPY f.txt /f.txt\n",
        ),
        ("f.txt", "file\n"),
    ]);
    let dir = c.path().to_str().unwrap();
    let reg = berth_testkit::Registry::start();
    let name = format!("{}/flags/zstd:1", reg.addr());
    b.ok(&["build", "--compression", "zstd", "-t", &name, dir]);
    assert_eq!(
        b.ok(&["run", "--rm", &name, "cat", "/z", "/f.txt"]),
        "zz\nfile\n"
    );
    let blobs = b.root().join("blobs");
    let manifests: Vec<String> = crate::common::files_under(&blobs)
        .into_iter()
        .filter_map(|f| std::fs::read_to_string(blobs.join(f)).ok())
        .filter(|t| t.contains("\"layers\""))
        .collect();
    let zstd = "application/vnd.oci.image.layer.v1.tar+zstd";
    let m = manifests
        .iter()
        .find(|m| m.contains(zstd))
        .expect("a zstd manifest");
    // Two new layers in zstd; the base's keep their gzip.
    assert_eq!(m.matches(zstd).count(), 2, "{m}");
    assert!(
        m.contains("tar+gzip") || m.contains("rootfs.diff.tar.gzip"),
        "{m}"
    );
    let zstd_blobs = crate::common::files_under(&blobs)
        .into_iter()
        .filter(|f| {
            std::fs::read(blobs.join(f)).is_ok_and(|b| b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]))
        })
        .count();
    assert_eq!(zstd_blobs, 2);

    // A gzip build of the same Dockerfile does not take the zstd layers from the cache.
    let err = String::from_utf8_lossy(
        &b.cmd()
            .args(["build", "-t", "gz", dir])
            .output()
            .unwrap()
            .stderr,
    )
    .to_string();
    assert!(err.contains("#2 RUN echo zz"), "{err}");

    b.ok(&["push", "--tls-verify=false", &name]);
    let other = Berth::new();
    other.ok(&["pull", "--tls-verify=false", &name]);
    assert_eq!(other.ok(&["run", "--rm", &name, "cat", "/z"]), "zz\n");
}

#[test]
fn push_after_build_and_its_errors() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let c = ctx(&[("Dockerfile", "FROM localhost/bb\nRUN echo pushed > /p\n")]);
    let dir = c.path().to_str().unwrap();
    // No name: refused before anything is built.
    let out = b.cmd().args(["build", "--push", dir]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--push") && err.contains("-t"), "{err}");
    assert!(!err.contains("RUN"), "built before refusing: {err}");

    let reg = berth_testkit::Registry::start();
    let one = format!("{}/flags/push:1", reg.addr());
    let two = format!("{}/flags/push:2", reg.addr());
    b.ok(&[
        "build",
        "--tls-verify=false",
        "--push",
        "-t",
        &one,
        "-t",
        &two,
        dir,
    ]);
    // BuildKit's spelling of the same.
    let three = format!("{}/flags/other:3", reg.addr());
    b.ok(&[
        "build",
        "--tls-verify=false",
        "--output",
        "type=registry",
        "-t",
        &three,
        dir,
    ]);
    let other = Berth::new();
    for name in [&one, &two, &three] {
        other.ok(&["pull", "--tls-verify=false", name]);
        assert_eq!(other.ok(&["run", "--rm", name, "cat", "/p"]), "pushed\n");
    }
}

#[test]
fn source_date_epoch_gives_the_same_digest_twice() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let build = |epoch: &str, stamp: &str| {
        // Fresh context files each time (other mtimes), and no cache.
        let c = ctx(&[
            (
                "Dockerfile",
                "FROM localhost/bb\nCOPY f.txt /f.txt\nRUN mkdir /made && echo x > /made/file\n",
            ),
            ("f.txt", "same\n"),
        ]);
        std::thread::sleep(Duration::from_millis(1100));
        let out = b
            .cmd()
            .env("SOURCE_DATE_EPOCH", epoch)
            .args(["build", "--no-cache", "-q", "-t", "r"])
            .arg(c.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let cfg: serde_json::Value =
            serde_json::from_str(&b.ok(&["image", "inspect", "r"])).unwrap();
        assert_eq!(cfg[0]["Created"], stamp, "{cfg}");
        let listing = b.ok(&[
            "run",
            "--rm",
            "r",
            "stat",
            "-c",
            "%Y %n",
            "/f.txt",
            "/made",
            "/made/file",
        ]);
        (id, listing)
    };
    let (a, la) = build("1000000000", "2001-09-09T01:46:40Z");
    let (a2, lb) = build("1000000000", "2001-09-09T01:46:40Z");
    assert_eq!(a, a2, "the same inputs built twice differ");
    assert_eq!(
        la,
        "1000000000 /f.txt\n1000000000 /made\n1000000000 /made/file\n"
    );
    assert_eq!(la, lb);
    let (c, _) = build("1000000001", "2001-09-09T01:46:41Z");
    assert_ne!(a, c);
}

/// `--network` is the network of RUN steps without one of their own, `--add-host` adds to their
/// `/etc/hosts`; `--rm` and `--force-rm` are accepted (Berth keeps no intermediate container).
#[test]
fn network_add_host_and_rm_for_run_steps() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let dir = ctx(&[(
        "Dockerfile",
        "FROM localhost/bb\n\
         RUN ls /sys/class/net | tr '\\n' ' ' > /nets && grep db /etc/hosts > /hosts\n\
         RUN --network=host ls /sys/class/net | wc -l > /own\n",
    )]);
    let d = dir.path().to_str().unwrap();
    b.ok(&[
        "build",
        "--rm",
        "--force-rm=true",
        "--network",
        "none",
        "--add-host",
        "db:10.0.0.5",
        "-t",
        "net",
        d,
    ]);
    let nets = b.ok(&["run", "--rm", "net", "cat", "/nets", "/hosts"]);
    assert_eq!(nets, "lo 10.0.0.5\tdb\n");
    // A step's own --network wins: the host's interfaces, more than lo.
    let own = b.ok(&["run", "--rm", "net", "cat", "/own"]);
    assert!(own.trim().parse::<u32>().unwrap() > 1, "{own}");
    let err = b.fails(&["build", "--network", "bogus", "--no-cache", d], 1);
    assert!(err.contains("invalid --network bogus"), "{err}");
}
