//! The command line itself: help, version, completion, reference and flag errors.

use crate::common::Berth;

#[test]
fn help_version_completion() {
    let b = Berth::new();
    let help = b.ok(&["--help"]);
    for verb in ["pull", "push", "images", "save", "load", "import", "login"] {
        assert!(help.contains(verb), "--help lacks {verb}");
    }
    assert!(b.ok(&["version"]).contains(env!("CARGO_PKG_VERSION")));
    let v: serde_json::Value =
        serde_json::from_str(&b.ok(&["version", "--format", "json"])).unwrap();
    assert_eq!(v["Version"], env!("CARGO_PKG_VERSION"));
    assert!(b.ok(&["completion", "bash"]).contains("berth"));
}

#[test]
fn bad_reference_is_one_line_exit_1() {
    let b = Berth::new();
    let err = b.fails(&["pull", "Busybox:latest"], 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("\"Busybox:latest\"") && err.contains("lowercase"),
        "{err}"
    );
    assert!(!err.contains("panicked") && !err.contains("backtrace"));
}

#[test]
fn unknown_image_is_named() {
    let b = Berth::new();
    let err = b.fails(&["history", "nosuchimage"], 1);
    assert!(err.contains("nosuchimage"), "{err}");
    let err = b.fails(&["image", "inspect", "nosuchimage"], 1);
    assert!(err.contains("nosuchimage"), "{err}");
}

#[test]
fn unreachable_registry_names_address() {
    let b = Berth::new();
    let port = berth_testkit::free_port();
    let r = format!("127.0.0.1:{port}/x/y:1");
    let err = b.fails(&["pull", "--tls-verify=false", &r], 1);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn bad_config_names_file_and_line() {
    let b = Berth::new();
    let dir = b.home().join(".config/berth");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        "insecure_registries = [\"a\"]\nnope = 1\n",
    )
    .unwrap();
    let err = b.fails(&["images"], 1);
    assert!(err.contains("config.toml:2"), "{err}");
}

/// Docker's flags also take `=true`/`=false`, and nothing after the image is one of run's
/// options; both compared with Docker where it runs.
#[test]
fn flag_values_and_the_end_of_options_match_docker() {
    use crate::dockerd::{Dockerd, BUSYBOX};
    let cases: &[&[&str]] = &[
        &["run", "--rm=true", "-i=false", BUSYBOX, "echo", "a"],
        &["run", "--rm", "-t=false", BUSYBOX, "echo", "b"],
        &["run", "--rm", "--entrypoint", "sh", BUSYBOX, "-c", "echo c"],
        &["run", "--rm", BUSYBOX, "echo", "--rm", "-l", "-c"],
        &[
            "run",
            "--rm",
            "--init=false",
            "--privileged=false",
            BUSYBOX,
            "true",
        ],
        &["run", "--rm=maybe", BUSYBOX, "true"],
    ];
    let b = Berth::new();
    b.import_busybox(BUSYBOX);
    let kept = ["run", "--rm=false", "--name", "kept", BUSYBOX, "true"];
    b.ok(&kept);
    assert_eq!(
        b.ok(&["ps", "-aq", "--filter", "name=kept"])
            .lines()
            .count(),
        1
    );
    let Some(d) = Dockerd::start() else {
        return;
    };
    d.load_from(&b, BUSYBOX);
    let differences = d.differences(&b, cases.iter().map(|c| c.to_vec()));
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
