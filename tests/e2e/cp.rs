//! `cp` as `docker cp`: both ways, through a running container's volumes, binds and tmpfs,
//! a stopped container's layers, volumes and binds, Docker's rules for where a copy lands,
//! `-` for tar streams, and paths that stay inside the container.

use std::path::Path;
use std::process::Stdio;

use berth_testkit::unprivileged_user;

use crate::common::Berth;
use crate::rootless::AsUser;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walk(dir, dir);
    out.sort();
    out
}

fn walk(base: &Path, dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        out.push(p.strip_prefix(base).unwrap().display().to_string());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(base, &p));
        }
    }
    out
}

/// A running container with a volume, a bind, a tmpfs and a directory of its own.
fn running(b: &Berth, host: &Path) {
    std::fs::create_dir_all(host.join("bind")).unwrap();
    std::fs::write(host.join("bind/b.txt"), "from the bind\n").unwrap();
    b.ok(&["volume", "create", "vol"]);
    let bind = format!("{}:/bind", host.join("bind").display());
    b.ok(&[
        "run",
        "-d",
        "--name",
        "c",
        "-v",
        "vol:/data",
        "-v",
        &bind,
        "--tmpfs",
        "/scratch",
        "localhost/bb",
        "sh",
        "-c",
        "echo vol > /data/v.txt; echo tmp > /scratch/t.txt; mkdir -p /dir/sub; \
         echo x > /dir/sub/x; ln -s / /data/root; hostname > /data/name; touch /ready; \
         sleep 100",
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while b
        .cmd()
        .args(["exec", "c", "test", "-e", "/ready"])
        .status()
        .unwrap()
        .code()
        != Some(0)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the container did not get ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn cp_out_of_a_running_container_reaches_its_mounts() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let host = b.dir.path().join("host");
    running(&b, &host);
    let to = |name: &str| host.join(name);
    for (src, want) in [
        ("/data/v.txt", "vol\n"),
        ("/bind/b.txt", "from the bind\n"),
        ("/scratch/t.txt", "tmp\n"),
    ] {
        let dest = to(Path::new(src).file_name().unwrap().to_str().unwrap());
        b.ok(&["cp", &format!("c:{src}"), dest.to_str().unwrap()]);
        assert_eq!(read(&dest), want, "{src}");
    }
    // An absolute symlink in the container leads to the container's root, not the host's.
    b.ok(&[
        "cp",
        "c:/data/root/etc/hostname",
        to("hn").to_str().unwrap(),
    ]);
    assert_eq!(read(&to("hn")), b.ok(&["exec", "c", "hostname"]));
    assert_ne!(read(&to("hn")), read(Path::new("/etc/hostname")));

    // Docker's rules: a directory to a new name, into an existing directory, its contents
    // with "/.", a file over a file, and not a directory over a file.
    b.ok(&["cp", "c:/dir", to("new").to_str().unwrap()]);
    assert_eq!(files(&to("new")), ["sub", "sub/x"]);
    std::fs::create_dir(to("existing")).unwrap();
    b.ok(&["cp", "c:/dir", to("existing").to_str().unwrap()]);
    assert_eq!(files(&to("existing")), ["dir", "dir/sub", "dir/sub/x"]);
    b.ok(&["cp", "c:/dir/.", to("contents").to_str().unwrap()]);
    assert_eq!(files(&to("contents")), ["sub", "sub/x"]);
    std::fs::write(to("file"), "old\n").unwrap();
    b.ok(&["cp", "c:/data/v.txt", to("file").to_str().unwrap()]);
    assert_eq!(read(&to("file")), "vol\n");
    let err = b.fails(&["cp", "c:/dir", to("file").to_str().unwrap()], 1);
    assert!(
        err.contains("cannot copy a directory onto the file"),
        "{err}"
    );
    let err = b.fails(&["cp", "c:/nope", to("x").to_str().unwrap()], 1);
    assert_eq!(
        err.trim(),
        "Error: cp: could not find the file /nope in container c"
    );

    // "-": a tar stream on stdout.
    let out = b.cmd().args(["cp", "c:/dir", "-"]).output().unwrap();
    assert!(out.status.success());
    let mut names: Vec<String> = tar::Archive::new(&out.stdout[..])
        .entries()
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path().unwrap().display().to_string();
            p.trim_end_matches('/').to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["dir", "dir/sub", "dir/sub/x"]);
    b.ok(&["rm", "-f", "c"]);
}

#[test]
fn cp_into_a_running_container_reaches_its_mounts() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let host = b.dir.path().join("host");
    running(&b, &host);
    let file = host.join("h.txt");
    std::fs::write(&file, "hi\n").unwrap();
    let f = file.to_str().unwrap();
    b.ok(&["cp", f, "c:/scratch/"]);
    b.ok(&["cp", f, "c:/scratch/renamed"]);
    b.ok(&["cp", f, "c:/data"]);
    b.ok(&["cp", f, "c:/bind/in.txt"]);
    assert_eq!(
        b.ok(&[
            "exec",
            "c",
            "cat",
            "/scratch/h.txt",
            "/scratch/renamed",
            "/data/h.txt"
        ]),
        "hi\nhi\nhi\n"
    );
    assert_eq!(read(&host.join("bind/in.txt")), "hi\n");
    // Owned by the container's root, as Docker makes them.
    assert_eq!(
        b.ok(&["exec", "c", "stat", "-c", "%u:%g", "/scratch/h.txt"]),
        "0:0\n"
    );
    // A directory, and a tar stream on stdin into a directory.
    std::fs::create_dir_all(host.join("tree/a")).unwrap();
    std::fs::write(host.join("tree/a/f"), "f\n").unwrap();
    b.ok(&["cp", host.join("tree").to_str().unwrap(), "c:/scratch/t2"]);
    assert_eq!(b.ok(&["exec", "c", "cat", "/scratch/t2/a/f"]), "f\n");
    let mut tarball = tar::Builder::new(Vec::new());
    tarball
        .append_path_with_name(&file, "streamed.txt")
        .unwrap();
    let tarball = tarball.into_inner().unwrap();
    let mut child = b
        .cmd()
        .args(["cp", "-", "c:/data"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &tarball).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(b.ok(&["exec", "c", "cat", "/data/streamed.txt"]), "hi\n");
    // A symlink in the container is followed inside it: /data/root is the container's /.
    b.ok(&["cp", f, "c:/data/root/tmp/"]);
    assert_eq!(b.ok(&["exec", "c", "cat", "/tmp/h.txt"]), "hi\n");
    assert!(!Path::new("/tmp/h.txt").exists() || read(Path::new("/tmp/h.txt")) != "hi\n");
    let err = b.fails(&["cp", f, "c:/nodir/x"], 1);
    assert_eq!(
        err.trim(),
        "Error: cp: no such directory: /nodir (in container c)"
    );
    let err = b.fails(&["cp", "/no/such/file", "c:/data"], 1);
    assert!(
        err.contains("/no/such/file") && err.lines().count() == 1,
        "{err}"
    );
    b.ok(&["rm", "-f", "c"]);
}

#[test]
fn cp_with_a_stopped_container_uses_its_layers_volumes_and_binds() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let host = b.dir.path().join("host");
    running(&b, &host);
    let ro = host.join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    b.ok(&["stop", "-t", "0", "c"]);
    for (src, want) in [
        ("/data/v.txt", "vol\n"),
        ("/bind/b.txt", "from the bind\n"),
        ("/dir/sub/x", "x\n"),
    ] {
        let dest = host.join("out");
        b.ok(&["cp", &format!("c:{src}"), dest.to_str().unwrap()]);
        assert_eq!(read(&dest), want, "{src}");
    }
    let err = b.fails(
        &[
            "cp",
            "c:/data/root/etc/hostname",
            host.join("x").to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("goes through a symlink"), "{err}");
    let file = host.join("h.txt");
    std::fs::write(&file, "hi\n").unwrap();
    let f = file.to_str().unwrap();
    b.ok(&["cp", f, "c:/dir/sub/"]);
    b.ok(&["cp", f, "c:/etc/copied"]);
    b.ok(&["cp", f, "c:/data/"]);
    b.ok(&["start", "c"]);
    assert_eq!(
        b.ok(&[
            "exec",
            "c",
            "cat",
            "/dir/sub/h.txt",
            "/etc/copied",
            "/data/h.txt"
        ]),
        "hi\nhi\nhi\n"
    );
    b.ok(&["rm", "-f", "c"]);
    let bind = format!("{}:/ro:ro", ro.display());
    b.ok(&["create", "--name", "r", "-v", &bind, "localhost/bb", "true"]);
    let err = b.fails(&["cp", f, "r:/ro/"], 1);
    assert!(err.contains("read-only"), "{err}");
    b.ok(&["rm", "r"]);
}

#[test]
fn cp_as_an_unprivileged_user() {
    let u = AsUser::new(unprivileged_user());
    u.import("localhost/bb");
    u.ok(&[
        "run",
        "-d",
        "--name",
        "c",
        "--tmpfs",
        "/scratch",
        "localhost/bb",
        "sh",
        "-c",
        "echo tmp > /scratch/t.txt; sleep 100",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = u.home.join("t.txt");
    u.ok(&["cp", "c:/scratch/t.txt", out.to_str().unwrap()]);
    assert_eq!(read(&out), "tmp\n");
    u.ok(&["cp", out.to_str().unwrap(), "c:/scratch/back.txt"]);
    assert_eq!(u.ok(&["exec", "c", "cat", "/scratch/back.txt"]), "tmp\n");
    assert_eq!(
        u.ok(&["exec", "c", "stat", "-c", "%u", "/scratch/back.txt"]),
        "0\n"
    );
    u.ok(&["rm", "-f", "c"]);
}
