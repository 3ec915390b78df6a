//! `save`/`load`/`import` round trips, interop with podman and skopeo both ways, `commit` and `export`.

use std::process::{Command, Stdio};

use crate::common::{have, Berth};

#[test]
fn save_load_round_trip_both_formats() {
    let b = Berth::new();
    let id = b.import_busybox("localhost/rt:1");
    let manifest = b.inspect("localhost/rt:1")["Descriptor"]["digest"].clone();
    for format in ["docker-archive", "oci-archive"] {
        let file = b.dir.path().join(format!("{format}.tar"));
        b.ok(&[
            "save",
            "--format",
            format,
            "-o",
            file.to_str().unwrap(),
            "localhost/rt:1",
        ]);
        let other = Berth::new();
        let out = other.ok(&["load", "-i", file.to_str().unwrap()]);
        assert!(
            out.contains("Loaded image: localhost/rt:1"),
            "{format}: {out}"
        );
        let img = other.inspect("localhost/rt:1");
        assert_eq!(img["Id"], id.as_str(), "{format}");
        if format == "oci-archive" {
            assert_eq!(
                img["Descriptor"]["digest"], manifest,
                "oci-archive keeps the manifest"
            );
        }
    }
}

#[test]
fn save_to_stdout_load_from_stdin() {
    let b = Berth::new();
    let id = b.import_busybox("localhost/pipe:1");
    let other = Berth::new();
    let mut save = b
        .cmd()
        .args(["save", "localhost/pipe:1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = other
        .cmd()
        .arg("load")
        .stdin(save.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(save.wait().unwrap().success());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(other.inspect("localhost/pipe:1")["Id"], id.as_str());
}

#[test]
fn import_applies_changes_from_stdin() {
    let b = Berth::new();
    let tar = std::fs::File::open(berth_testkit::busybox_rootfs_tar()).unwrap();
    let out = b
        .cmd()
        .args([
            "import",
            "-c",
            "ENV A=1",
            "-c",
            "CMD [\"sh\", \"-c\", \"echo hi\"]",
            "-c",
            "WORKDIR /tmp",
            "-m",
            "imported",
            "-",
            "localhost/chg",
        ])
        .stdin(tar)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let img = b.inspect("localhost/chg");
    let env = img["Config"]["Env"].to_string();
    assert!(env.contains("A=1"), "{env}");
    assert_eq!(img["Config"]["Cmd"][2], "echo hi");
    assert_eq!(img["Config"]["WorkingDir"], "/tmp");
    let err = b.fails(
        &[
            "import",
            "-c",
            "FROB x",
            berth_testkit::busybox_rootfs_tar().to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("FROB"), "{err}");
}

fn podman(store: &std::path::Path) -> Command {
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(store.join("root"))
        .arg("--runroot")
        .arg(store.join("run"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]);
    c
}

#[test]
fn podman_interop_both_ways() {
    if !have("podman") {
        eprintln!("podman not installed: skipped");
        return;
    }
    let b = Berth::new();
    let id = b.import_busybox("localhost/interop:1");
    let ours = b.dir.path().join("ours.tar");
    b.ok(&["save", "-o", ours.to_str().unwrap(), "localhost/interop:1"]);
    let pstore = b.dir.path().join("podman");
    let out = podman(&pstore)
        .args(["load", "-i", ours.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "podman load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = podman(&pstore)
        .args([
            "image",
            "inspect",
            "--format",
            "{{.ID}}",
            "localhost/interop:1",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), &id[7..]);

    let theirs = b.dir.path().join("theirs.tar");
    let out = podman(&pstore)
        .args([
            "save",
            "--format",
            "docker-archive",
            "-o",
            theirs.to_str().unwrap(),
            "localhost/interop:1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "podman save: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = Berth::new();
    other.ok(&["load", "-i", theirs.to_str().unwrap()]);
    assert_eq!(other.inspect("localhost/interop:1")["Id"], id.as_str());
}

#[test]
fn skopeo_pushes_and_berth_pulls_and_back() {
    if !have("skopeo") {
        eprintln!("skopeo not installed: skipped");
        return;
    }
    let reg = berth_testkit::Registry::start();
    let b = Berth::new();
    let id = b.import_busybox("localhost/sk:1");
    let oci = b.dir.path().join("sk.oci.tar");
    b.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        oci.to_str().unwrap(),
        "localhost/sk:1",
    ]);
    let dest = format!("{}/skopeo/busybox:1", reg.addr());
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--dest-tls-verify=false",
            &format!("oci-archive:{}", oci.display()),
            &format!("docker://{dest}"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = Berth::new();
    other.ok(&["pull", "--tls-verify=false", &dest]);
    assert_eq!(other.inspect(&dest)["Id"], id.as_str());

    // And back: berth pushes, skopeo reads it into an OCI layout.
    let back = format!("{}/berth/busybox:1", reg.addr());
    other.ok(&["tag", &dest, &back]);
    other.ok(&["push", "--tls-verify=false", &back]);
    let layout = other.dir.path().join("layout");
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{back}"),
            &format!("oci:{}:x", layout.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy back: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `commit`: the container's changes (new files, a deletion) become one layer over its image,
/// without the mount points the runtime made; its command becomes the image's, `--change`
/// and `--message` apply, and a container that changed nothing adds an empty history entry.
#[test]
fn commit_a_containers_changes() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    b.ok(&[
        "run",
        "--name",
        "w",
        "localhost/bb",
        "sh",
        "-c",
        "echo data > /made; rm /bin/vi; mkdir -p /opt/x && echo y > /opt/x/y",
    ]);
    let id = b.ok(&[
        "commit",
        "-m",
        "my change",
        "-c",
        "ENV FOO=bar",
        "w",
        "localhost/committed",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "localhost/committed",
            "sh",
            "-c",
            "cat /made /opt/x/y; echo $FOO; test -e /bin/vi || echo no-vi"
        ]),
        "data\ny\nbar\nno-vi\n"
    );
    let img = b.inspect("localhost/committed");
    assert_eq!(
        img["Config"]["Cmd"],
        serde_json::json!([
            "sh",
            "-c",
            "echo data > /made; rm /bin/vi; mkdir -p /opt/x && echo y > /opt/x/y"
        ])
    );
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    // Only the changes: no /dev, /proc, /sys or /etc/hostname placeholders.
    let archive = b.dir.path().join("committed.tar");
    b.ok(&[
        "save",
        "-o",
        archive.to_str().unwrap(),
        "localhost/committed",
    ]);
    let mut outer = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    let mut names = Vec::new();
    for e in outer.entries().unwrap() {
        let e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().to_string();
        if !path.ends_with("layer.tar") && !path.starts_with("blobs/") {
            continue;
        }
        let mut inner = tar::Archive::new(e);
        let list: Vec<String> = inner
            .entries()
            .unwrap()
            .map(|x| x.unwrap().path().unwrap().to_string_lossy().to_string())
            .collect();
        if list.iter().any(|n| n == "made") {
            names = list;
        }
    }
    names.sort();
    assert_eq!(
        names,
        ["bin/", "bin/.wh.vi", "made", "opt/", "opt/x/", "opt/x/y"],
        "{names:?}"
    );
    let history = b.ok(&["history", "localhost/committed"]);
    assert!(history.contains("my change"), "{history}");

    // export: the image's files with the container's changes, as one tar.
    let exported = b.dir.path().join("w.tar");
    b.ok(&["export", "-o", exported.to_str().unwrap(), "w"]);
    let mut listed: Vec<String> = tar::Archive::new(std::fs::File::open(&exported).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().to_string())
        .collect();
    listed.sort();
    for want in ["made", "opt/x/y", "bin/sh", "etc/passwd"] {
        assert!(listed.iter().any(|n| n == want), "{want} missing");
    }
    for gone in ["bin/vi", "bin/.wh.vi", "etc/hostname", "proc/"] {
        assert!(!listed.iter().any(|n| n == gone), "{gone} exported");
    }
    let piped = b.cmd().args(["export", "w"]).output().unwrap();
    assert!(piped.status.success());
    assert_eq!(
        piped.stdout.len() as u64,
        std::fs::metadata(&exported).unwrap().len()
    );

    // Nothing changed: the same layers, one more history entry.
    b.ok(&["run", "--name", "idle", "localhost/bb", "true"]);
    b.ok(&["commit", "idle", "localhost/same"]);
    let same = b.inspect("localhost/same");
    assert_eq!(same["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    let err = b.fails(&["commit", "no-such-container"], 1);
    assert!(err.contains("no-such-container"), "{err}");
}
