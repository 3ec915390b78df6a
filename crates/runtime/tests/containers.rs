//! Real containers from a busybox root, checked from the outside. Run as root and as an
//! unprivileged user (single-id map); no test needs more than unprivileged user namespaces.

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use berth_runtime::{exec, Container, Rootfs, RuntimeError, Stdio};
use common::{run, spec, Fixture};
use oci_spec::runtime::{LinuxNamespaceType, MountBuilder, RootBuilder};

fn code(args: &[&str]) -> i32 {
    let f = Fixture::new();
    run(&f.bundle(spec(args))).unwrap().code
}

#[test]
fn exit_codes() {
    assert_eq!(code(&["true"]), 0);
    assert_eq!(code(&["false"]), 1);
    assert_eq!(code(&["sh", "-c", "exit 7"]), 7);
}

#[test]
fn killed_by_signal_is_128_plus_n() {
    // pid 1 of a pid namespace ignores signals it has no handler for, even from itself.
    let f = Fixture::new();
    let mut s = spec(&["sh", "-c", "kill -TERM $$"]);
    common::without_namespaces(&mut s, &[LinuxNamespaceType::Pid]);
    assert_eq!(run(&f.bundle(s)).unwrap().code, 143);
}

#[test]
fn missing_command_is_not_found() {
    let f = Fixture::new();
    let err = run(&f.bundle(spec(&["no-such-command"]))).unwrap_err();
    assert!(matches!(err, RuntimeError::NotFound { .. }), "{err}");
    assert_eq!(err.exit_code(), 127);
    assert!(err.to_string().contains("no-such-command"));
}

#[test]
fn non_executable_file_is_126() {
    let f = Fixture::new();
    fs::write(f.path("rootfs/bin/data"), "not a program").unwrap();
    let err = run(&f.bundle(spec(&["/bin/data"]))).unwrap_err();
    assert_eq!(err.exit_code(), 126, "{err}");
}

#[test]
fn hostname_uid_and_pid_namespace() {
    let f = Fixture::new();
    let out = run(&f.bundle(spec(&["sh", "-c", "hostname; id -u; echo $$"]))).unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "berth-test\n0\n1\n");
}

#[test]
fn proc_is_the_containers() {
    let f = Fixture::new();
    let out = run(&f.bundle(spec(&["ls", "/proc"]))).unwrap();
    let pids: Vec<&str> = out
        .stdout
        .split_whitespace()
        .filter(|s| s.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(pids, ["1"], "{}", out.stdout);
}

#[test]
fn only_stdio_descriptors_are_open() {
    let f = Fixture::new();
    let out = run(&f.bundle(spec(&["ls", "/proc/self/fd"]))).unwrap();
    // 3 is the directory ls itself is reading.
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3"],
        "{}",
        out.stderr
    );
}

#[test]
fn masked_paths_are_hidden() {
    let f = Fixture::new();
    // This kernel may have no /proc/kcore at all; either way nothing of it is readable.
    let script =
        "cat /proc/kcore 2>/dev/null | wc -c; wc -c < /proc/timer_list; stat -f -c %T /proc/acpi";
    let out = run(&f.bundle(spec(&["sh", "-c", script]))).unwrap();
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "tmpfs"],
        "{}",
        out.stderr
    );
}

#[test]
fn missing_cwd_is_created() {
    let f = Fixture::new();
    let mut s = spec(&["sh", "-c", "pwd"]);
    let mut p = s.process().clone().unwrap();
    p.set_cwd(PathBuf::from("/work/deep/dir"));
    s.set_process(Some(p));
    let out = run(&f.bundle(s)).unwrap();
    assert_eq!(out.stdout, "/work/deep/dir\n", "{}", out.stderr);
}

#[test]
fn readonly_root_refuses_writes() {
    let f = Fixture::new();
    let mut s = spec(&["touch", "/newfile"]);
    s.set_root(Some(
        RootBuilder::default()
            .path("rootfs")
            .readonly(true)
            .build()
            .unwrap(),
    ));
    let out = run(&f.bundle(s)).unwrap();
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("Read-only"), "{}", out.stderr);
    // /tmp-like tmpfs mounts stay writable.
    let mut s = spec(&["touch", "/dev/shm/ok"]);
    s.set_root(Some(
        RootBuilder::default()
            .path("rootfs")
            .readonly(true)
            .build()
            .unwrap(),
    ));
    assert_eq!(run(&f.bundle(s)).unwrap().code, 0);
}

fn with_mount(
    mut s: oci_spec::runtime::Spec,
    source: PathBuf,
    dest: &str,
    options: &[&str],
) -> oci_spec::runtime::Spec {
    let mut mounts = s.mounts().clone().unwrap_or_default();
    mounts.push(
        MountBuilder::default()
            .destination(dest)
            .typ("bind")
            .source(source)
            .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
            .build()
            .unwrap(),
    );
    s.set_mounts(Some(mounts));
    s
}

#[test]
fn bind_mounts_rw_and_ro() {
    let f = Fixture::new();
    let data = f.path("data");
    fs::create_dir(&data).unwrap();
    let s = with_mount(
        spec(&["sh", "-c", "echo hello > /data/file"]),
        data.clone(),
        "/data",
        &["rbind", "rw"],
    );
    assert_eq!(run(&f.bundle(s)).unwrap().code, 0);
    assert_eq!(fs::read_to_string(data.join("file")).unwrap(), "hello\n");

    let s = with_mount(
        spec(&["sh", "-c", "cat /data/file && echo x > /data/other"]),
        data.clone(),
        "/data",
        &["rbind", "ro", "nosuid"],
    );
    let out = run(&f.bundle(s)).unwrap();
    assert_eq!(out.stdout, "hello\n");
    assert_ne!(out.code, 0);
    assert!(!data.join("other").exists());
}

#[test]
fn bind_of_a_single_file_creates_the_target() {
    let f = Fixture::new();
    let file = f.path("hosts");
    fs::write(&file, "127.0.0.1 berth\n").unwrap();
    let s = with_mount(
        spec(&["cat", "/etc/new/hosts"]),
        file,
        "/etc/new/hosts",
        &["bind", "ro"],
    );
    assert_eq!(run(&f.bundle(s)).unwrap().stdout, "127.0.0.1 berth\n");
}

#[test]
fn symlink_in_image_does_not_redirect_a_mount_to_the_host() {
    let f = Fixture::new();
    std::os::unix::fs::symlink("/etc", f.path("rootfs/mnt")).unwrap();
    let src = f.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("marker"), "inside\n").unwrap();
    // Resolved in the root, /mnt -> /etc is the image's /etc: the marker shows up there and
    // the host's /etc is untouched.
    let s = with_mount(spec(&["cat", "/etc/marker"]), src, "/mnt", &["rbind"]);
    let out = run(&f.bundle(s)).unwrap();
    assert_eq!(out.stdout, "inside\n", "{}", out.stderr);
    assert!(!PathBuf::from("/etc/marker").exists());
}

#[test]
fn overlay_writes_land_in_upper() {
    let f = Fixture::new();
    for d in ["upper", "work"] {
        fs::create_dir(f.path(d)).unwrap();
    }
    let mut bundle = f.bundle(spec(&["sh", "-c", "echo new > /created && rm /etc/group"]));
    bundle.rootfs = Rootfs::Overlay {
        lower: vec![f.path("rootfs")],
        upper: f.path("upper"),
        work: f.path("work"),
        discard: false,
    };
    let out = run(&bundle).unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        fs::read_to_string(f.path("upper/created")).unwrap(),
        "new\n"
    );
    assert!(!f.path("rootfs/created").exists());
    assert!(f.path("rootfs/etc/group").exists());
}

#[test]
fn exec_joins_pid_namespace_and_hostname() {
    let f = Fixture::new();
    let bundle = f.bundle(spec(&["sleep", "30"]));
    let mut container = {
        let _turn = common::turn();
        Container::create(&bundle, Stdio::Inherit).unwrap()
    };
    container.start().unwrap();
    let pid = container.pid();
    let out = tempfile::tempfile().unwrap();
    let mut process = bundle.spec.process().clone().unwrap();
    process.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "hostname; readlink /proc/self/ns/pid; ls -d /proc/[0-9]* | wc -l".into(),
    ]));
    let stdio = Stdio::Files {
        stdin: None,
        stdout: out.try_clone().unwrap(),
        stderr: tempfile::tempfile().unwrap(),
    };
    let code = {
        let _turn = common::turn();
        exec(pid, &process, stdio, false).unwrap()
    };
    berth_runtime::kill(pid, libc_sigkill()).unwrap();
    assert_eq!(container.wait(false).unwrap(), 137);
    assert_eq!(code, 0);
    let ns = fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let text = common::read_all(out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "berth-test");
    if let Some(ns) = ns {
        assert_eq!(lines[1], ns.to_string_lossy());
    }
    // sleep (pid 1), sh, ls: only the container's processes are visible.
    assert!(lines[2].trim().parse::<u32>().unwrap() <= 4, "{text}");
}

fn libc_sigkill() -> i32 {
    berth_runtime::signal_by_name("KILL").unwrap()
}

#[test]
fn exec_of_missing_command_is_127() {
    let f = Fixture::new();
    let bundle = f.bundle(spec(&["sleep", "30"]));
    let mut container = {
        let _turn = common::turn();
        Container::create(&bundle, Stdio::Inherit).unwrap()
    };
    container.start().unwrap();
    let mut process = bundle.spec.process().clone().unwrap();
    process.set_args(Some(vec!["nope".into()]));
    let err = {
        let _turn = common::turn();
        exec(container.pid(), &process, Stdio::Inherit, false).unwrap_err()
    };
    assert_eq!(err.exit_code(), 127, "{err}");
    berth_runtime::kill(container.pid(), libc_sigkill()).unwrap();
    container.wait(false).unwrap();
}

#[test]
fn setup_errors_name_the_mount() {
    let f = Fixture::new();
    let s = with_mount(
        spec(&["true"]),
        f.path("does-not-exist"),
        "/data",
        &["rbind"],
    );
    let err = run(&f.bundle(s)).unwrap_err();
    assert!(err.to_string().contains("/data"), "{err}");
    assert_eq!(err.exit_code(), 125);
}

#[test]
fn signals_are_forwarded_by_the_monitor() {
    let f = Fixture::new();
    let exe = std::env::var_os("BERTH_RUN_EXAMPLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let me = std::env::current_exe().unwrap();
            me.parent().unwrap().parent().unwrap().join("examples/run")
        });
    if !exe.exists() {
        panic!(
            "example binary {} missing: build it with cargo build --examples",
            exe.display()
        );
    }
    let mut child = std::process::Command::new(exe)
        .arg(f.path("rootfs"))
        .arg(f.path("state"))
        .args([
            "sh",
            "-c",
            "trap 'exit 42' USR1; echo ready > /dev/shm/ready; while :; do sleep 0.1; done",
        ])
        .spawn()
        .unwrap();
    // Wait until the trap is installed: the container announces it on its own stdout path.
    std::thread::sleep(Duration::from_millis(700));
    berth_runtime::kill(
        child.id() as i32,
        berth_runtime::signal_by_name("USR1").unwrap(),
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42));
}

/// The caller's first range in /etc/subuid or /etc/subgid (root may map anything).
fn subordinate_range(file: &str) -> Option<(u32, u32)> {
    let uid = rustix::process::geteuid().as_raw();
    if uid == 0 {
        return Some((100_000, 65_536));
    }
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    let name = passwd
        .lines()
        .find(|l| l.split(':').nth(2) == Some(&uid.to_string()))?
        .split(':')
        .next()?
        .to_owned();
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.split(':');
        let owner = parts.next()?;
        (owner == name || owner == uid.to_string())
            .then(|| Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?)))?
    })
}

#[test]
fn subordinate_ids_through_newuidmap() {
    let (Some(uids), Some(gids)) = (
        subordinate_range("/etc/subuid"),
        subordinate_range("/etc/subgid"),
    ) else {
        eprintln!("no subordinate ids for this user: skipped");
        return;
    };
    let f = Fixture::new();
    let mut s = spec(&[
        "sh",
        "-c",
        "id -u; id -g; touch /tmp/x; stat -c %u:%g /tmp/x",
    ]);
    let range = |own: u32, (start, count): (u32, u32)| {
        vec![
            oci_spec::runtime::LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(own)
                .size(1u32)
                .build()
                .unwrap(),
            oci_spec::runtime::LinuxIdMappingBuilder::default()
                .container_id(1u32)
                .host_id(start)
                .size(count)
                .build()
                .unwrap(),
        ]
    };
    let mut linux = s.linux().clone().unwrap();
    linux.set_uid_mappings(Some(range(rustix::process::geteuid().as_raw(), uids)));
    linux.set_gid_mappings(Some(range(rustix::process::getegid().as_raw(), gids)));
    s.set_linux(Some(linux));
    common::set_user(&mut s, 1000, 1000);
    // /tmp must be writable by uid 1000 in the container.
    let mut mounts = s.mounts().clone().unwrap_or_default();
    mounts.push(
        MountBuilder::default()
            .destination("/tmp")
            .typ("tmpfs")
            .source("tmpfs")
            .options(vec!["mode=1777".to_string()])
            .build()
            .unwrap(),
    );
    s.set_mounts(Some(mounts));
    let out = run(&f.bundle(s)).unwrap();
    assert_eq!(out.stdout, "1000\n1000\n1000:1000\n", "{}", out.stderr);
}

#[test]
fn rlimits_are_lowered_and_raising_fails_naming_the_limit() {
    let f = Fixture::new();
    // The default spec asks for RLIMIT_NOFILE 1024:1024.
    let out = run(&f.bundle(spec(&["sh", "-c", "ulimit -n"]))).unwrap();
    assert_eq!(out.stdout, "1024\n");
    let mut s = spec(&["true"]);
    let mut p = s.process().clone().unwrap();
    p.set_rlimits(Some(vec![oci_spec::runtime::PosixRlimitBuilder::default()
        .typ(oci_spec::runtime::PosixRlimitType::RlimitNofile)
        .soft(u64::MAX - 1)
        .hard(u64::MAX - 1)
        .build()
        .unwrap()]));
    s.set_process(Some(p));
    let err = run(&f.bundle(s)).unwrap_err();
    assert!(err.to_string().contains("RLIMIT_NOFILE"), "{err}");
}

#[test]
fn cpu_affinity_is_applied() {
    let f = Fixture::new();
    let mut bundle = f.bundle(spec(&["grep", "Cpus_allowed_list", "/proc/self/status"]));
    bundle.cpu_affinity = Some(vec![0, 100_000]);
    let out = run(&bundle).unwrap();
    assert_eq!(
        out.stdout.split_whitespace().last(),
        Some("0"),
        "{}",
        out.stderr
    );
}

#[test]
fn tty_comes_from_the_containers_devpts() {
    let Some(script) = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        eprintln!("script(1) not installed: skipped");
        return;
    };
    let f = Fixture::new();
    let exe = std::env::var_os("BERTH_RUN_EXAMPLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let me = std::env::current_exe().unwrap();
            me.parent().unwrap().parent().unwrap().join("examples/run")
        });
    let inner = format!(
        "stty cols 99 rows 33; {} {} {} sh -c 'tty; stty size; exit 4'",
        exe.display(),
        f.path("rootfs").display(),
        f.path("state").display()
    );
    let out = std::process::Command::new(script)
        .args(["-qec", &inner, "/dev/null"])
        .env("BERTH_TTY", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("33 99"), "{text}");
}

#[test]
fn overlay_with_more_layers_than_one_page_of_options() {
    let f = Fixture::new();
    for d in ["upper", "work"] {
        fs::create_dir(f.path(d)).unwrap();
    }
    let mut lower = Vec::new();
    for i in 0..80 {
        let layer = f.path(&format!(
            "layers/a-rather-long-layer-directory-name-to-fill-the-page-{i:03}"
        ));
        fs::create_dir_all(layer.join("layers")).unwrap();
        fs::write(layer.join(format!("layers/{i}")), "").unwrap();
        lower.push(layer);
    }
    lower.reverse();
    lower.push(f.path("rootfs"));
    // With a discarded upper layer, also through this path: overlayfs's `volatile`.
    let mut bundle = f.bundle(spec(&[
        "sh",
        "-c",
        "ls /layers | wc -l; grep -c fsync=volatile /proc/self/mountinfo",
    ]));
    bundle.rootfs = Rootfs::Overlay {
        lower,
        upper: f.path("upper"),
        work: f.path("work"),
        discard: true,
    };
    let out = run(&bundle).unwrap();
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["80", "1"],
        "{}",
        out.stderr
    );
}
