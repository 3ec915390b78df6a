//! Seccomp filters and `--init`, in real containers from a busybox root.

mod common;

use std::time::{Duration, Instant};

use berth_runtime::{default_seccomp, seccomp_from_docker_json, Container, Stdio};
use common::{run, spec, Fixture};
use oci_spec::runtime::{LinuxSeccomp, Spec};

fn with_seccomp(mut s: Spec, filter: LinuxSeccomp) -> Spec {
    let mut linux = s.linux().clone().unwrap();
    linux.set_seccomp(Some(filter));
    s.set_linux(Some(linux));
    s
}

fn default_filter() -> LinuxSeccomp {
    default_seccomp(&["CAP_CHOWN".to_string(), "CAP_KILL".to_string()])
}

#[test]
fn default_filter_is_installed_and_denies() {
    let f = Fixture::new();
    let s = with_seccomp(
        spec(&["grep", "^Seccomp:", "/proc/self/status"]),
        default_filter(),
    );
    let out = run(&f.bundle(s)).unwrap();
    assert_eq!(out.stdout.split_whitespace().nth(1), Some("2"), "{out:?}");

    // Creating a user namespace needs no capability: only the filter refuses it.
    let s = with_seccomp(spec(&["unshare", "-U", "true"]), default_filter());
    let out = run(&f.bundle(s)).unwrap();
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("Operation not permitted"), "{out:?}");
    let out = run(&f.bundle(spec(&["unshare", "-U", "true"]))).unwrap();
    assert_eq!(out.code, 0, "{out:?}");

    let s = with_seccomp(
        spec(&[
            "sh",
            "-c",
            "ls / > /dev/null && cat /etc/passwd > /dev/null && sleep 0.1 && id -u && echo $(echo x)",
        ]),
        default_filter(),
    );
    let out = run(&f.bundle(s)).unwrap();
    assert_eq!(out.stdout, "0\nx\n", "{out:?}");
}

#[test]
fn filter_without_no_new_privs_and_with_it() {
    let f = Fixture::new();
    let profile = r#"{"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#;
    let filter = seccomp_from_docker_json(profile, &[]).unwrap();
    for nnp in [false, true] {
        let mut s = with_seccomp(
            spec(&["sh", "-c", "grep NoNewPrivs /proc/self/status; mkdir /x"]),
            filter.clone(),
        );
        let mut p = s.process().clone().unwrap();
        p.set_no_new_privileges(Some(nnp));
        s.set_process(Some(p));
        let out = run(&f.bundle(s)).unwrap();
        assert_ne!(out.code, 0);
        assert!(out.stderr.contains("Operation not permitted"), "{out:?}");
        let want = if nnp { "1" } else { "0" };
        assert!(out.stdout.trim().ends_with(want), "{out:?}");
    }
}

#[test]
fn init_is_pid_1_and_passes_the_status_on() {
    let f = Fixture::new();
    let mut b = f.bundle(spec(&["sh", "-c", "echo $$; exit 5"]));
    b.init = true;
    let out = run(&b).unwrap();
    assert_eq!((out.code, out.stdout.as_str()), (5, "2\n"), "{out:?}");
    b.spec = spec(&["sh", "-c", "kill -TERM $$"]);
    assert_eq!(run(&b).unwrap().code, 143);
    b.spec = spec(&["no-such-command"]);
    assert_eq!(run(&b).unwrap_err().exit_code(), 127);
}

#[test]
fn init_forwards_signals_to_the_command() {
    let f = Fixture::new();
    let mut b = f.bundle(with_seccomp(spec(&["sleep", "30"]), default_filter()));
    b.init = true;
    let mut c = {
        let _turn = common::turn();
        Container::create(&b, Stdio::Inherit).unwrap()
    };
    c.start().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    // A sleep that is pid 1 would ignore this; as pid 2 it dies of it.
    berth_runtime::kill(c.pid(), libc::SIGTERM).unwrap();
    assert_eq!(c.wait(false).unwrap(), 143);
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn exec_confined_applies_the_filter() {
    let f = Fixture::new();
    let filter = default_filter();
    let bundle = f.bundle(with_seccomp(spec(&["sleep", "30"]), filter.clone()));
    let mut container = {
        let _turn = common::turn();
        Container::create(&bundle, Stdio::Inherit).unwrap()
    };
    container.start().unwrap();
    let mut process = bundle.spec.process().clone().unwrap();
    process.set_args(Some(vec![
        "grep".into(),
        "^Seccomp:".into(),
        "/proc/self/status".into(),
    ]));
    let out = tempfile::tempfile().unwrap();
    let stdio = Stdio::Files {
        stdin: None,
        stdout: out.try_clone().unwrap(),
        stderr: tempfile::tempfile().unwrap(),
    };
    let code = {
        let _turn = common::turn();
        let opts = berth_runtime::ExecOptions {
            seccomp: Some(&filter),
            ..Default::default()
        };
        berth_runtime::exec_confined(container.pid(), &process, stdio, &opts).unwrap()
    };
    berth_runtime::kill(container.pid(), libc::SIGKILL).unwrap();
    assert_eq!(container.wait(false).unwrap(), 137);
    assert_eq!(code, 0);
    let text = common::read_all(out);
    assert_eq!(text.split_whitespace().nth(1), Some("2"), "{text}");
}
