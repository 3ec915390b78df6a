//! Tests against the machine's real cgroupfs.
//!
//! They need root and a v1 or hybrid layout for the limit tests (the layout of Berth's usual
//! test machines); elsewhere they print why and pass. Every cgroup they create is removed by a
//! guard even when an assertion fails, and they touch no cgroup they did not create.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use berth_cgroups::{
    detect, manager_for, own_cgroup_paths, parse_proc_cgroup, CgroupError, CgroupManager, Layout,
    Resources, SIGKILL, UNIFIED,
};

fn uid() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

/// The layout, when this machine can run the root v1 tests.
fn root_v1_layout(test: &str) -> Option<Layout> {
    if uid() != 0 {
        eprintln!("skipping {test}: needs root");
        return None;
    }
    match detect() {
        Ok(layout @ (Layout::V1 { .. } | Layout::Hybrid { .. })) => Some(layout),
        Ok(other) => {
            eprintln!("skipping {test}: layout is {}, not v1/hybrid", other.kind());
            None
        }
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            None
        }
    }
}

fn unique_id(tag: &str) -> String {
    format!("test-{}-{tag}", std::process::id())
}

/// Kills what is left in the cgroup and removes it, whatever happened in the test.
struct Guard {
    manager: Box<dyn CgroupManager>,
    children: Vec<Child>,
}

impl Guard {
    fn new(manager: Box<dyn CgroupManager>) -> Self {
        Guard {
            manager,
            children: Vec::new(),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !self.manager.paths().is_empty() {
            let _ = self.manager.thaw();
            let _ = self.manager.kill_all(SIGKILL);
            let _ = self.manager.destroy();
        }
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The container's directory in the hierarchy mounted at `mount`.
fn dir_under(paths: &[PathBuf], mount: &Path) -> PathBuf {
    paths
        .iter()
        .find(|p| p.starts_with(mount))
        .unwrap_or_else(|| panic!("no cgroup under {} in {paths:?}", mount.display()))
        .clone()
}

fn proc_cgroup(pid: u32) -> BTreeMap<String, String> {
    parse_proc_cgroup(&fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap()).unwrap()
}

fn joined(own: &str, name: &str) -> String {
    if own == "/" {
        format!("/{name}")
    } else {
        format!("{own}/{name}")
    }
}

#[test]
fn limits_pids_freeze_stats_and_destroy_on_v1() {
    let Some(layout) = root_v1_layout("limits test") else {
        return;
    };
    let v1 = layout.v1_controllers().unwrap().clone();
    let id = unique_id("limits");
    let name = format!("berth-{id}");
    let mut guard = Guard::new(manager_for(&id, &layout));
    guard.manager.create().expect("create");
    let paths = guard.manager.paths();
    assert!(!paths.is_empty());
    let own = own_cgroup_paths().unwrap();
    for p in &paths {
        assert!(p.is_dir(), "{} missing", p.display());
        assert_eq!(p.file_name().unwrap().to_str().unwrap(), name);
    }

    let warnings = guard
        .manager
        .apply(&Resources {
            memory: Some(64 << 20),
            memory_swap: None,
            cpus: Some(0.5),
            cpuset_cpus: Some("0".to_string()),
            pids_limit: Some(20),
            ..Resources::default()
        })
        .expect("apply");
    eprintln!("warnings: {warnings:?}");

    let mem = dir_under(&paths, &v1["memory"]);
    assert_eq!(
        read(&mem.join("memory.limit_in_bytes")),
        (64u64 << 20).to_string()
    );
    if mem.join("memory.memsw.limit_in_bytes").exists() {
        // Docker's default: as much swap as memory.
        assert_eq!(
            read(&mem.join("memory.memsw.limit_in_bytes")),
            (128u64 << 20).to_string()
        );
    }
    let cpu = dir_under(&paths, &v1["cpu"]);
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
    let cpuset = dir_under(&paths, &v1["cpuset"]);
    assert_eq!(read(&cpuset.join("cpuset.cpus")), "0");
    assert!(
        !read(&cpuset.join("cpuset.mems")).is_empty(),
        "cpuset.mems was not copied"
    );
    let pids_dir = dir_under(&paths, &v1["pids"]);
    assert_eq!(read(&pids_dir.join("pids.max")), "20");

    let child = Command::new("sleep").arg("5").spawn().unwrap();
    let pid = child.id();
    guard.children.push(child);
    guard.manager.add_pid(pid as i32).expect("add_pid");

    // The process is in berth-<id> directly below our own cgroup, in every hierarchy we use.
    let theirs = proc_cgroup(pid);
    for c in ["memory", "cpu", "cpuacct", "cpuset", "pids", "freezer"] {
        if v1.contains_key(c) {
            assert_eq!(theirs[c], joined(&own[c], &name), "controller {c}");
        }
    }
    assert_eq!(guard.manager.pids().unwrap(), vec![pid as i32]);
    let allowed = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        allowed
            .lines()
            .filter_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .any(|v| v.trim() == "0"),
        "cpuset not in effect: {allowed}"
    );

    guard.manager.freeze().expect("freeze");
    let freezer = dir_under(&paths, &v1["freezer"]);
    assert_eq!(read(&freezer.join("freezer.state")), "FROZEN");
    let state = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    eprintln!(
        "frozen process: {}",
        state
            .lines()
            .find(|l| l.starts_with("State:"))
            .unwrap_or("?")
    );
    guard.manager.thaw().expect("thaw");
    assert_eq!(read(&freezer.join("freezer.state")), "THAWED");

    let stats = guard.manager.stats().expect("stats");
    eprintln!("stats: {stats:?}");
    assert_eq!(stats.memory_limit, Some(64 << 20));
    assert_eq!(stats.pids, Some(1));
    assert!(stats.memory_usage.is_some());
    assert!(stats.cpu_usage_ns.is_some());

    guard.manager.kill_all(SIGKILL).expect("kill_all");
    let mut child = guard.children.pop().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    guard.manager.destroy().expect("destroy");
    for p in &paths {
        assert!(!p.exists(), "{} still exists", p.display());
    }
    assert!(guard.manager.paths().is_empty());
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    let Some(layout) = root_v1_layout("pids test") else {
        return;
    };
    let v1 = layout.v1_controllers().unwrap().clone();
    if !v1.contains_key("pids") {
        eprintln!("skipping pids test: no pids hierarchy");
        return;
    }
    let id = unique_id("pids");
    let mut guard = Guard::new(manager_for(&id, &layout));
    guard.manager.create().expect("create");
    let warnings = guard
        .manager
        .apply(&Resources {
            pids_limit: Some(5),
            ..Resources::default()
        })
        .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    // The shell waits for a line on stdin so it only forks once it is inside the cgroup.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("read go; i=0; while [ $i -lt 20 ]; do sleep 3 & i=$((i+1)); done; echo started; wait")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    guard.manager.add_pid(child.id() as i32).unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    guard.children.push(child);

    let pids_dir = dir_under(&guard.manager.paths(), &v1["pids"]);
    let events = pids_dir.join("pids.events");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut refused = 0;
    while Instant::now() < deadline {
        if let Ok(text) = fs::read_to_string(&events) {
            refused = text
                .lines()
                .find_map(|l| l.strip_prefix("max "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        if refused > 0 {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let current: u64 = read(&pids_dir.join("pids.current")).parse().unwrap();
    assert!(current <= 5, "pids.current {current} above the limit");
    assert!(refused > 0, "no fork was refused ({})", events.display());
    assert!(guard.manager.pids().unwrap().len() <= 5);
    eprintln!("refused forks: {refused}, processes: {current}");
}

#[test]
fn cpuset_outside_the_callers_cpus_is_refused() {
    let Some(layout) = root_v1_layout("cpuset test") else {
        return;
    };
    let id = unique_id("cpuset");
    let mut guard = Guard::new(manager_for(&id, &layout));
    guard.manager.create().expect("create");
    let err = guard
        .manager
        .apply(&Resources {
            cpuset_cpus: Some("4000-4001".to_string()),
            ..Resources::default()
        })
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CgroupError::Invalid { .. }), "{text}");
    assert!(text.contains(&format!("berth-{id}")), "{text}");
    let err = guard
        .manager
        .apply(&Resources {
            memory: Some(100 << 20),
            memory_swap: Some(50 << 20),
            ..Resources::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("memory-swap"), "{err}");
}

#[test]
fn an_existing_cgroup_is_not_adopted_and_nothing_is_left_behind() {
    let Some(layout) = root_v1_layout("exists test") else {
        return;
    };
    let id = unique_id("exists");
    let mut first = Guard::new(manager_for(&id, &layout));
    first.manager.create().expect("create");
    let mut second = manager_for(&id, &layout);
    let err = second.create().unwrap_err();
    assert!(matches!(err, CgroupError::AlreadyExists { .. }), "{err}");
    assert!(second.paths().is_empty());
    // The failed attempt removed nothing of the first manager's.
    for p in first.manager.paths() {
        assert!(p.is_dir(), "{} was removed", p.display());
    }
}

/// The unified hierarchy of a hybrid machine has no controllers to give, but cgroup v2's core
/// files (procs, freeze, kill, events) work there; this exercises the v2 manager on them.
#[test]
fn v2_manager_on_the_hybrid_unified_mount() {
    let Some(Layout::Hybrid { v2, .. }) = root_v1_layout("v2 core test") else {
        return;
    };
    let own = own_cgroup_paths().unwrap();
    let id = unique_id("v2core");
    let v2_layout = Layout::V2 { mount: v2.clone() };
    let mut guard = Guard::new(manager_for(&id, &v2_layout));
    guard.manager.create().expect("create");
    let paths = guard.manager.paths();
    assert_eq!(paths.len(), 1);
    let warnings = guard
        .manager
        .apply(&Resources {
            memory: Some(64 << 20),
            cpus: Some(0.5),
            pids_limit: Some(20),
            ..Resources::default()
        })
        .unwrap();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings[0].contains("memory"), "{warnings:?}");

    let child = Command::new("sleep").arg("5").spawn().unwrap();
    let pid = child.id();
    guard.children.push(child);
    guard.manager.add_pid(pid as i32).unwrap();
    assert_eq!(
        proc_cgroup(pid)[UNIFIED],
        joined(&own[UNIFIED], &format!("berth-{id}"))
    );
    assert_eq!(guard.manager.pids().unwrap(), vec![pid as i32]);
    if paths[0].join("cgroup.freeze").exists() {
        guard.manager.freeze().expect("freeze");
        assert!(read(&paths[0].join("cgroup.events")).contains("frozen 1"));
        guard.manager.thaw().expect("thaw");
        assert!(read(&paths[0].join("cgroup.events")).contains("frozen 0"));
    }
    guard.manager.kill_all(SIGKILL).unwrap();
    let mut child = guard.children.pop().unwrap();
    assert!(!child.wait().unwrap().success());
    guard.manager.destroy().expect("destroy");
    assert!(!paths[0].exists());
}

/// As an unprivileged user the root-owned hierarchies refuse the child: `NotDelegated`, naming
/// the path, and nothing created. Run as root, the test re-runs itself as `berthtest`.
#[test]
fn rootless_create_is_not_delegated() {
    if uid() == 0 {
        rerun_as_unprivileged("rootless_create_is_not_delegated");
        return;
    }
    let layout = match detect() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("skipping rootless test: {e}");
            return;
        }
    };
    let id = unique_id("rootless");
    let mut guard = Guard::new(manager_for(&id, &layout));
    match guard.manager.create() {
        Err(e @ CgroupError::NotDelegated { .. }) => {
            let text = e.to_string();
            let CgroupError::NotDelegated { path, .. } = &e else {
                unreachable!()
            };
            let mounts: Vec<PathBuf> = match &layout {
                Layout::V2 { mount } => vec![mount.clone()],
                Layout::V1 { controllers } => controllers.values().cloned().collect(),
                Layout::Hybrid { v1, v2 } => v1.values().chain([v2]).cloned().collect(),
            };
            assert!(mounts.iter().any(|m| path.starts_with(m)), "{text}");
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(e.is_not_delegated());
            println!("ROOTLESS-OK: {text}");
        }
        Ok(()) => {
            // A delegated sub-tree (systemd user session): then creating is right.
            println!(
                "ROOTLESS-OK: delegated here, created {:?}",
                guard.manager.paths()
            );
        }
        Err(e) => panic!("expected NotDelegated, got {e}"),
    }
    assert!(guard.manager.paths().is_empty() || guard.manager.paths()[0].exists());
}

fn rerun_as_unprivileged(test: &str) {
    let user = "berthtest";
    let known = Command::new("id")
        .arg(user)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !known {
        eprintln!("skipping {test}: no user {user}");
        return;
    }
    // The test binary lives under root's cache, which the user cannot read: copy it out.
    let dir = std::env::temp_dir().join(format!("berth-cgroups-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("real_cgroups");
    fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    let chmod = Command::new("chmod")
        .arg("-R")
        .arg("a+rx")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(chmod.success());
    let out = Command::new("runuser")
        .args(["-u", user, "--"])
        .arg(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .current_dir(&dir)
        .output();
    let _ = fs::remove_dir_all(&dir);
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipping {test}: runuser: {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "unprivileged run failed");
    assert!(stdout.contains("ROOTLESS-OK"), "the check did not run");
}
