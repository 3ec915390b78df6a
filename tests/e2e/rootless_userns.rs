//! Outside a job, the rootless containers of one user share a user namespace per id layout, whose
//! holder waits a while for the next container: the subordinate ids' maps need `newuidmap`
//! and `newgidmap`, which cost a start more than the rest of Berth's work.

use std::time::{Duration, Instant};

use berth_testkit::unprivileged_user;

use crate::rootless::AsUser;

/// The pid in the user's pid file for the shared namespace, and that process's command line.
fn holder(u: &AsUser) -> Option<(i32, String)> {
    let dir = u.user.runtime_dir().join("berth/userns");
    let pid_file = std::fs::read_dir(dir).ok()?.flatten().find(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.starts_with("user-") && name.ends_with(".pid")
    })?;
    let text = std::fs::read_to_string(pid_file.path()).ok()?;
    let pid: i32 = text.split_whitespace().next()?.parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
}

#[test]
fn rootless_hpc_containers_share_a_lingering_user_namespace() {
    let u = AsUser::new(unprivileged_user());
    u.import("localhost/bb");
    let ns = |opts: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(opts);
        a.extend_from_slice(&["localhost/bb", "readlink", "/proc/self/ns/user"]);
        u.ok(&a).trim().to_string()
    };
    // One after the other: the holder outlives the first container.
    let first = ns(&["--hpc"]);
    assert!(first.starts_with("user:["), "{first}");
    assert_eq!(ns(&["--hpc"]), first);
    let (pid, cmdline) = holder(&u).expect("no holder");
    assert!(
        cmdline.contains("__userns") && cmdline.contains("--linger"),
        "{cmdline}"
    );
    // The subordinate ids' maps, as a namespace of the container's own would have.
    let maps = u.ok(&[
        "run",
        "--rm",
        "--hpc",
        "localhost/bb",
        "cat",
        "/proc/self/uid_map",
    ]);
    assert!(maps.lines().count() > 2, "{maps}");
    // The docker profile's maps are another layout, with a namespace of their own, shared by
    // its containers too although each makes its own pid namespace in it.
    let docker = ns(&[]);
    assert_ne!(docker, first);
    assert_eq!(ns(&[]), docker);
    let pids = u.ok(&[
        "run",
        "--rm",
        "localhost/bb",
        "sh",
        "-c",
        "echo $$; ls /proc | grep -c '^[0-9]'",
    ]);
    assert_eq!(pids.lines().next(), Some("1"), "{pids}");

    // A holder that is gone is replaced by the next container.
    kill(pid);
    let t = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ns(&["--hpc"]).starts_with("user:["));
    let (new_pid, _) = holder(&u).expect("no new holder");
    assert_ne!(new_pid, pid);
    kill(new_pid);
}

/// SIGKILL, through kill(1).
fn kill(pid: i32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The network namespace of the thread that makes them ahead of time in the user's holder of
/// `userns`, once it has filled the pool and waits (its namespace no longer changes).
fn maker_netns(u: &AsUser, userns: &str) -> Option<String> {
    let dir = u.user.runtime_dir().join("berth/userns");
    let maker = || {
        let pids = std::fs::read_dir(&dir).ok()?.flatten().filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(e.path()).ok()?;
            (name.ends_with(".pid")).then_some(())?;
            let pid = text.split_whitespace().next()?.parse::<i32>().ok()?;
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).ok()?;
            (ns.to_string_lossy() == userns).then_some(pid)
        });
        pids.flat_map(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
        })
        .flatten()
        .find(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "netns-maker")
        })
        .and_then(|t| std::fs::read_link(t.path().join("ns/net")).ok())
        .map(|l| l.to_string_lossy().into_owned())
    };
    let mut last = None;
    for _ in 0..50 {
        let now = maker();
        if now.is_some() && now == last {
            return now;
        }
        last = now;
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The holder of a user's shared namespace makes docker-profile containers' network
/// namespaces ahead of time; a container gets one of those, its own, with loopback up, and
/// nothing of the host's network.
#[test]
fn rootless_docker_containers_get_network_namespaces_made_ahead() {
    let u = AsUser::new(unprivileged_user());
    u.import("localhost/bb");
    let net = || {
        u.ok(&[
            "run",
            "--rm",
            "localhost/bb",
            "sh",
            "-c",
            "readlink /proc/self/ns/user; readlink /proc/self/ns/net; \
             cat /sys/class/net/lo/flags; ls /sys/class/net",
        ])
    };
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    // Other tests of this user may take from the pool meanwhile, or stop the holder: a few
    // tries, each after a start that makes sure a holder runs and has been asked.
    let mut got = Vec::new();
    for _ in 0..8 {
        let userns = net().lines().next().unwrap_or_default().to_string();
        let ready = maker_netns(&u, &userns);
        let out = net();
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some(userns.as_str()), "{out}");
        let ns = lines.next().unwrap_or_default().to_string();
        assert!(ns.starts_with("net:["), "{out}");
        assert_ne!(ns, host.to_string_lossy(), "the host's");
        // IFF_UP | IFF_LOOPBACK, and no other interface.
        assert_eq!(lines.next(), Some("0x9"), "{out}");
        assert_eq!(lines.collect::<Vec<_>>(), ["lo"], "{out}");
        got.push(ns.clone());
        if ready.as_ref() == Some(&ns) {
            return;
        }
    }
    panic!("no container got a namespace the holder made: {got:?}");
}
