//! `--volumes-from CONTAINER[:ro|:rw]`: another container's binds and volumes, at the same
//! places, with their own modes or the one asked for; compared with Docker.

use crate::common::Berth;
use crate::dockerd::{Dockerd, BUSYBOX};

/// Each case: the flags after `run --rm`, then the command.
const CASES: &[&[&str]] = &[
    &["--volumes-from", "src", BUSYBOX, "cat", "/data/f"],
    &[
        "--volumes-from",
        "src",
        BUSYBOX,
        "sh",
        "-c",
        "echo x > /vol/y && cat /vol/y",
    ],
    &["--volumes-from", "src", BUSYBOX, "touch", "/data/z"],
    &["--volumes-from", "src:ro", BUSYBOX, "touch", "/vol/q"],
    &[
        "--volumes-from",
        "src:rw",
        BUSYBOX,
        "sh",
        "-c",
        "cat /vol/y",
    ],
    // A mount of its own at the same place wins.
    &[
        "--volumes-from",
        "src",
        "--tmpfs",
        "/data",
        BUSYBOX,
        "ls",
        "/data",
    ],
    &["--volumes-from", "nosuch", BUSYBOX, "true"],
];

fn source(b: &Berth) -> String {
    let dir = b.dir.path().join("shared");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), "data\n").unwrap();
    format!("{}:/data:ro", dir.display())
}

#[test]
fn volumes_from_another_container() {
    let b = Berth::new();
    b.import_busybox(BUSYBOX);
    let bind = source(&b);
    b.ok(&["volume", "create", "vv"]);
    b.ok(&[
        "create", "--name", "src", "-v", &bind, "-v", "vv:/vol", BUSYBOX, "true",
    ]);
    let expect: &[(i32, &str)] = &[
        (0, "data\n"),
        (0, "x\n"),
        (1, ""),
        (1, ""),
        (0, "x\n"),
        (0, ""),
        (125, ""),
    ];
    for (case, (code, out)) in CASES.iter().zip(expect) {
        let o = b.run(&[&["run", "--rm"][..], case].concat());
        assert_eq!(o.status.code(), Some(*code), "{case:?}");
        assert_eq!(String::from_utf8_lossy(&o.stdout), *out, "{case:?}");
    }
    b.ok(&[
        "create",
        "--name",
        "user",
        "--volumes-from",
        "src:ro",
        BUSYBOX,
        "true",
    ]);
    let from = b.ok(&["inspect", "-f", "{{json .HostConfig.VolumesFrom}}", "user"]);
    assert_eq!(from.trim(), r#"["src:ro"]"#);
    // The volume is in use by the container that inherited it too.
    b.ok(&["rm", "src"]);
    b.fails(&["volume", "rm", "vv"], 1);
    b.ok(&["rm", "user"]);
    b.ok(&["volume", "rm", "vv"]);
}

#[test]
fn volumes_from_matches_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    let bind = source(&b);
    d.both(&b, &["volume", "create", "vv"]);
    let create = [
        "create", "--name", "src", "-v", &bind, "-v", "vv:/vol", BUSYBOX, "true",
    ];
    let (theirs, ours) = d.both(&b, &create);
    assert!(theirs.status.success() && ours.status.success());
    let differences = d.differences(
        &b,
        CASES
            .iter()
            .map(|case| [&["run", "--rm"][..], case].concat()),
    );
    d.both(&b, &["rm", "-f", "src"]);
    d.both(&b, &["volume", "rm", "vv"]);
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
