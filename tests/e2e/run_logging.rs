//! `--log-driver`/`--log-opt` (rotation of a detached container's log, `none`), `--expose`,
//! `-P` and `--disable-content-trust`, compared with Docker where it has the same.

use crate::common::Berth;
use crate::dockerd::{code_and_stdout, Dockerd, BUSYBOX};
use crate::run_namespaces::refuses;

#[test]
fn log_rotation_and_no_log() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    // About 70 bytes a record: three records to a file, three files kept.
    let rotated = ["--log-opt", "max-size=200", "--log-opt", "max-file=3"];
    let script = "for i in $(seq 1 20); do echo line $i; done";
    b.ok(&[
        &["run", "-d", "--name", "many"][..],
        &rotated,
        &["localhost/bb", "sh", "-c", script],
    ]
    .concat());
    b.ok(&["wait", "many"]);
    let out = b.ok(&["logs", "many"]);
    let numbers: Vec<u32> = out
        .lines()
        .map(|l| l.trim_start_matches("line ").parse().unwrap())
        .collect();
    assert_eq!(numbers.last(), Some(&20), "{out}");
    assert!(numbers.len() < 20 && numbers.len() >= 6, "{out}");
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{out}");
    let id = b.ok(&["inspect", "-f", "{{.Id}}", "many"]);
    let dir = b.root().join("containers").join(id.trim());
    let mut logs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("container.log"))
        .collect();
    logs.sort();
    assert_eq!(
        logs,
        ["container.log", "container.log.1", "container.log.2"]
    );
    // Following a log across rotations loses no line.
    let slow = "for i in $(seq 1 12); do echo line $i; sleep 0.05; done";
    b.ok(&[
        &["run", "-d", "--name", "slow"][..],
        &rotated,
        &["localhost/bb", "sh", "-c", slow],
    ]
    .concat());
    let out = b.ok(&["logs", "-f", "slow"]);
    let numbers: Vec<u32> = out
        .lines()
        .map(|l| l.trim_start_matches("line ").parse().unwrap())
        .collect();
    assert_eq!(numbers.last(), Some(&12), "{out}");
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{out}");
    // `none` keeps nothing and says so.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "localhost/bb",
        "echo",
        "hi",
    ]);
    b.ok(&["wait", "quiet"]);
    let err = b.fails(&["logs", "quiet"], 1);
    assert!(err.contains("does not support reading"), "{err}");
    refuses(
        &b,
        &[
            (&["--log-opt", "foo=bar"], "unknown log opt 'foo'"),
            (&["--log-opt", "max-size=xx"], "max-size=xx"),
            (&["--log-opt", "labels-regex=("], "regular expression"),
            (&["--log-opt", "compress=true"], "uncompressed"),
            (&["--log-driver", "syslog"], "not supported"),
            (
                &["--log-driver", "none", "--log-opt", "max-size=1k"],
                "driver none",
            ),
            (&["--expose", "80/xyz"], "invalid --expose"),
            (&["-P"], "--network host"),
            (&["--disable-content-trust=false"], "signature"),
        ],
    );
}

#[test]
fn logging_and_ports_match_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    let cases: [&[&str]; 9] = [
        &["--log-driver", "none"],
        &["--log-opt", "max-size=1k", "--log-opt", "max-file=2"],
        &["--log-driver", "syslog"],
        &["--log-driver", "bogus"],
        &["--log-opt", "foo=bar"],
        &["--log-opt", "max-size=xx"],
        &["--log-driver", "none", "--log-opt", "max-size=1k"],
        &["--disable-content-trust"],
        &["--expose", "80"],
    ];
    let mut differences = d.differences(
        &b,
        cases
            .iter()
            .map(|flags| [&["run", "--rm"][..], flags, &[BUSYBOX, "echo", "hi"]].concat()),
    );
    let mut same = |what: String, theirs: (Option<i32>, String), ours: (Option<i32>, String)| {
        if theirs != ours {
            differences.push(format!("{what}:\n docker {theirs:?}\n berth  {ours:?}"));
        }
    };
    let (theirs, ours) = d.both(
        &b,
        &[
            "run",
            "-d",
            "--name",
            "nolog",
            "--log-driver",
            "none",
            BUSYBOX,
            "echo",
            "hi",
        ],
    );
    assert!(theirs.status.success() && ours.status.success());
    d.both(&b, &["wait", "nolog"]);
    let (theirs, ours) = d.both(&b, &["logs", "nolog"]);
    same(
        "logs of --log-driver none".into(),
        code_and_stdout(&theirs),
        code_and_stdout(&ours),
    );
    d.both(&b, &["rm", "-f", "nolog"]);
    // Attributes from labels and the environment, shown by `logs --details`.
    for (name, flags) in [
        ("plain", &[][..]),
        (
            "attrs",
            &[
                "--label",
                "team=a",
                "-e",
                "JOB=7",
                "--log-opt",
                "labels=team,none",
                "--log-opt",
                "env=JOB",
            ],
        ),
    ] {
        let run = [
            &["run", "-d", "--name", name][..],
            flags,
            &[BUSYBOX, "echo", "one"],
        ]
        .concat();
        let (theirs, ours) = d.both(&b, &run);
        assert!(theirs.status.success() && ours.status.success(), "{run:?}");
        d.both(&b, &["wait", name]);
        let (theirs, ours) = d.both(&b, &["logs", "--details", name]);
        same(
            format!("logs --details of {name}"),
            code_and_stdout(&theirs),
            code_and_stdout(&ours),
        );
        d.both(&b, &["rm", "-f", name]);
    }
    for (name, flags) in [
        ("plain", &[][..]),
        (
            "local",
            &[
                "--log-driver",
                "local",
                "--log-opt",
                "max-size=1k",
                "--log-opt",
                "max-file=2",
            ],
        ),
        (
            "exposed",
            &[
                "--network",
                "host",
                "-P",
                "--expose",
                "80",
                "--expose",
                "53/udp",
                "--expose",
                "1000-1001",
            ],
        ),
    ] {
        differences.extend(d.created_differences(
            &b,
            name,
            flags,
            &[
                ".HostConfig.LogConfig.Type",
                ".HostConfig.LogConfig.Config",
                ".Config.ExposedPorts",
                ".HostConfig.PublishAllPorts",
            ],
        ));
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
