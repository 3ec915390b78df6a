//! The SPANK plugin (`crates/spank`, `libberth_spank.so`) in a real Slurm: `srun
//! --container-image=...` and the other pyxis options, on a cluster of this test process whose
//! plug stack loads the plugin built by this `cargo test` (it is a dev-dependency of the
//! binary's package, so it is built with the tests).
//!
//! Every test has its own store, passed to the job through the environment srun forwards
//! (`BERTH_ROOT`, `HOME`), and compares with the bare program where there is one to compare.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::{as_user, run_as, unprivileged_user, SlurmCluster};

use crate::common::Berth;

pub(crate) const BERTH: &str = env!("CARGO_BIN_EXE_berth");
pub(crate) const IMAGE: &str = "localhost/spank-test";
/// Nodes of the test cluster, each in its own network namespace; single-node steps ask -N1.
pub(crate) const NODES: u32 = 2;

/// The plugin next to the binary under test: `deps/libberth_spank*.so`, the newest if several.
fn plugin() -> PathBuf {
    let deps = Path::new(BERTH).parent().unwrap().join("deps");
    std::fs::read_dir(&deps)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("libberth_spank") && n.ends_with(".so")
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| panic!("no libberth_spank*.so in {}", deps.display()))
}

pub(crate) struct Setup {
    pub(crate) cluster: &'static SlurmCluster,
    pub(crate) b: Berth,
    pub(crate) work: PathBuf,
}

/// The plug stack: the plugin and the binary linked (or copied) into the cluster's state
/// directory, which every user can read, unlike a target directory under a private home.
pub(crate) fn plugstack(state: &Path) -> String {
    let dir = state.join("spank");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (from, to) in [
        (plugin(), "libberth_spank.so"),
        (PathBuf::from(BERTH), "berth"),
    ] {
        let to = dir.join(to);
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).unwrap();
        }
    }
    format!(
        "required {0}/libberth_spank.so berth={0}/berth runtime={0}/runtime\n",
        dir.display()
    )
}

/// The two-node cluster whose plug stack loads the plugin under test.
pub(crate) fn two_node_cluster() -> Option<&'static SlurmCluster> {
    // Built without libslurm-dev's header, the plugin names no Slurm version and Slurm
    // refuses to load it.
    if berth_spank::plugin_version == 0 {
        eprintln!("skipped: the plugin was built without libslurm-dev (scripts/install-deps)");
        return None;
    }
    SlurmCluster::with_plugstack(NODES, plugstack)
}

pub(crate) fn setup() -> Option<Setup> {
    let cluster = two_node_cluster()?;
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let ctx = b.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/bb\nRUN echo ID=berth-spank-test > /etc/os-release\nENV FOO=fromimage\n",
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", IMAGE, ctx.to_str().unwrap()]);
    let work = b.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    Some(Setup { cluster, b, work })
}

impl Setup {
    /// A Slurm client command run in the work directory, with this store's environment.
    pub(crate) fn client(&self, program: &str) -> Command {
        let mut c = self.cluster.command(program);
        for (k, v) in self.b.cmd().get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.current_dir(&self.work)
            .stdin(Stdio::null())
            .args(["--chdir", self.work.to_str().unwrap()]);
        c
    }

    /// `srun -N1 ARGS...` in the work directory, with this store's environment.
    fn srun(&self, args: &[&str]) -> Command {
        let mut c = self.client("srun");
        c.arg("-N1").args(args);
        c
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.srun(args).output().expect("run srun")
    }

    /// Waits until the store has no containers left: the plugin removes the step's container
    /// when the step ends on the node, which may be just after srun returns.
    fn wait_no_containers(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ps = self.b.ok(&["ps", "-a", "-q"]);
            if ps.trim().is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "containers left: {ps}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(crate) fn success(out: &Output) -> String {
    assert!(
        out.status.success(),
        "srun failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn tasks_run_in_the_image_and_the_container_goes_away() {
    let Some(s) = setup() else { return };
    let image = format!("--container-image={IMAGE}");
    let out = success(&s.run(&["-n1", &image, "cat", "/etc/os-release"]));
    assert_eq!(out, "ID=berth-spank-test\n");
    let bare = success(&s.run(&["-n1", "cat", "/etc/os-release"]));
    assert_ne!(bare, out, "the bare task reads the host's file");
    s.wait_no_containers();
}

#[test]
fn tasks_of_a_step_share_one_container() {
    let Some(s) = setup() else { return };
    let image = format!("--container-image={IMAGE}");
    let out = success(&s.run(&[
        "-n3",
        &image,
        "sh",
        "-c",
        "echo $SLURM_PROCID $(readlink /proc/self/ns/mnt)",
    ]));
    let mut ranks: Vec<&str> = Vec::new();
    let mut namespaces: Vec<&str> = Vec::new();
    for line in out.lines() {
        let (rank, ns) = line.split_once(' ').unwrap();
        ranks.push(rank);
        namespaces.push(ns);
    }
    ranks.sort();
    assert_eq!(ranks, ["0", "1", "2"], "{out}");
    namespaces.dedup();
    assert_eq!(namespaces.len(), 1, "one mount namespace: {out}");
    let host = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_ne!(namespaces[0], host.to_str().unwrap(), "not the host's");
    s.wait_no_containers();
}

#[test]
fn exit_codes_and_output_are_the_programs() {
    let Some(s) = setup() else { return };
    let image = format!("--container-image={IMAGE}");
    let script = "echo out; echo err >&2; exit 7";
    let bare = s.run(&["-n1", "sh", "-c", script]);
    let ctr = s.run(&["-n1", &image, "sh", "-c", script]);
    assert_eq!(bare.status.code(), Some(7), "{}", text(&bare.stderr));
    assert_eq!(
        ctr.status.code(),
        bare.status.code(),
        "{}",
        text(&ctr.stderr)
    );
    assert_eq!(text(&ctr.stdout), "out\n");
    // srun's own lines ("srun: error: ... exit code 7") aside, the same stderr.
    let program = |o: &Output| -> Vec<String> {
        text(&o.stderr)
            .lines()
            .filter(|l| !l.starts_with("srun: "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(program(&ctr), ["err"]);
    assert_eq!(program(&ctr), program(&bare));
    assert_eq!(text(&ctr.stdout), text(&bare.stdout));
    let ok = s.run(&["-n2", &image, "true"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    s.wait_no_containers();
}

/// A task killed by a signal is reported as the bare one (srun names the signal), and a rank
/// that wires up through `srun --mpi=pmi2` gets its PMI socket (`PMI_FD`) in the container.
#[test]
fn signal_deaths_and_the_pmi2_socket_as_for_the_bare_program() {
    let Some(s) = setup() else { return };
    let image = format!("--container-image={IMAGE}");
    let signal_line = |o: &Output| -> Vec<String> {
        text(&o.stderr)
            .lines()
            .filter_map(|l| l.split_once("task 0:").map(|(_, r)| r.trim().to_string()))
            .collect()
    };
    let script = "kill -USR1 $$";
    let bare = s.run(&["-n1", "sh", "-c", script]);
    let ctr = s.run(&["-n1", &image, "sh", "-c", script]);
    assert!(
        signal_line(&bare)
            .iter()
            .any(|l| l.contains("User defined signal 1")),
        "{}",
        text(&bare.stderr)
    );
    assert_eq!(
        signal_line(&ctr),
        signal_line(&bare),
        "{}",
        text(&ctr.stderr)
    );
    assert_eq!(ctr.status.code(), bare.status.code());

    let pmi = "echo cmd=init pmi_version=1 pmi_subversion=1 >&$PMI_FD && \
               read -r r <&$PMI_FD && echo \"$r\" && \
               echo cmd=finalize >&$PMI_FD && read -r r <&$PMI_FD && echo \"$r\"";
    let out = success(&s.run(&["-n2", "--mpi=pmi2", &image, "busybox", "sh", "-c", pmi]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("cmd=response_to_init") && l.contains("rc=0"))
            .count(),
        2,
        "{out}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("cmd=finalize_ack"))
            .count(),
        2,
        "{out}"
    );
    s.wait_no_containers();
}

#[test]
fn env_workdir_and_mounts() {
    let Some(s) = setup() else { return };
    let image = format!("--container-image={IMAGE}");
    let host = s.b.dir.path().join("data");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "from host\n").unwrap();
    let mounts = format!("--container-mounts={}:/data:ro", host.display());
    let script = "pwd; echo $FOO; cat /data/f; touch /data/x 2>/dev/null || echo read-only";
    let out = s
        .srun(&[
            "-n1",
            &image,
            "--container-env=FOO",
            "--container-workdir=/etc",
            &mounts,
            "sh",
            "-c",
            script,
        ])
        .env("FOO", "fromjob")
        .output()
        .unwrap();
    assert_eq!(success(&out), "/etc\nfromjob\nfrom host\nread-only\n");
    // Without --container-env the image's value wins, as for `berth run --hpc`.
    let out = s
        .srun(&["-n1", &image, "sh", "-c", "echo $FOO"])
        .env("FOO", "fromjob")
        .output()
        .unwrap();
    assert_eq!(success(&out), "fromimage\n");
    let out = s.run(&[
        "-n1",
        &image,
        "--container-readonly",
        "sh",
        "-c",
        "touch /x 2>/dev/null || echo read-only",
    ]);
    assert_eq!(success(&out), "read-only\n");
    let out = s.run(&[
        "-n1",
        &image,
        "--no-container-mount-home",
        "sh",
        "-c",
        "echo $HOME",
    ]);
    assert_eq!(success(&out), "/\n");
    s.wait_no_containers();
}

#[test]
fn an_unknown_image_fails_the_step_with_one_line() {
    let Some(s) = setup() else { return };
    let out = s.run(&["-n2", "--container-image=localhost/no-such-image", "true"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("--container-image localhost/no-such-image: "))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    let bad = s.run(&[
        "-n1",
        "--container-image=localhost/bb",
        "--container-mounts=rel:/x",
        "true",
    ]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("--container-mounts \"rel:/x\""),
        "{}",
        text(&bad.stderr)
    );
    s.wait_no_containers();
}

#[test]
fn an_unprivileged_user_runs_in_a_container_of_their_own() {
    let Some(s) = setup() else { return };
    let user = unprivileged_user();
    let berth = s.cluster.state_dir().join("spank/berth");
    // A directory the user can reach, holding their store and the image tarball.
    let dir = tempfile::Builder::new()
        .prefix("berth-spank-user-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let tar = dir.path().join("bb.tar");
    std::fs::copy(berth_testkit::busybox_rootfs_tar(), &tar).unwrap();
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
    let chown = Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(&home)
        .status()
        .unwrap();
    assert!(chown.success());
    let as_them = |program: &Path, args: &[&str]| -> Output {
        let mut c = Command::new(program);
        c.env("HOME", &home)
            .env("BERTH_ROOT", home.join("store"))
            .env("SLURM_CONF", s.cluster.conf())
            .current_dir(&home)
            .args(args);
        let mut c = as_user(&user, &c);
        c.stdin(Stdio::null());
        c.output().unwrap()
    };
    let imported = run_as(
        &user,
        Command::new(&berth)
            .env("HOME", &home)
            .env("BERTH_ROOT", home.join("store"))
            .args(["import", tar.to_str().unwrap(), "localhost/bb"]),
    );
    assert!(imported.status.success(), "{}", text(&imported.stderr));

    let srun = Path::new("srun");
    let out = success(&as_them(
        srun,
        &[
            "-N1",
            "-n2",
            "--container-image=localhost/bb",
            "sh",
            "-c",
            "echo $(id -u) $(readlink /proc/self/ns/mnt)",
        ],
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], lines[1], "one container: {out}");
    assert!(lines[0].starts_with(&format!("{} ", user.uid)), "{out}");
    let out = success(&as_them(
        srun,
        &[
            "-N1",
            "-n1",
            "--container-image=localhost/bb",
            "--container-remap-root",
            "id",
            "-u",
        ],
    ));
    assert_eq!(out, "0\n");
    // A named container outlives its step and goes with the job: the epilog (root, in slurmd)
    // removes it from the user's own store, as the user.
    let out = success(&as_them(
        srun,
        &[
            "-N1",
            "-n1",
            "--container-image=localhost/bb",
            "--container-name=mine",
            "id",
            "-u",
        ],
    ));
    assert_eq!(out, format!("{}\n", user.uid));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ps = success(&as_them(&berth, &["ps", "-a", "-q"]));
        if ps.trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "containers left: {ps}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Processes whose command line is exactly `args`.
fn processes(args: &[&str]) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let words: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            words == args
        })
        .collect()
}

#[test]
fn scancel_ends_the_tasks_and_removes_the_container() {
    let Some(s) = setup() else { return };
    let image = format!("--container-image={IMAGE}");
    // A duration no other test uses, to find these tasks among every process.
    let task = ["sleep", "321"];
    let name = format!("spank-cancel-{}", std::process::id());
    let mut srun = s
        .srun(&["-n2", "-J", &name, &image, task[0], task[1]])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes(&task).len() < 2 {
        assert!(Instant::now() < deadline, "the tasks did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    s.cluster.ok("scancel", &["-n", &name]);
    let status = srun.wait().unwrap();
    assert!(!status.success());
    s.wait_no_containers();
    assert_eq!(processes(&task), Vec::<i32>::new(), "tasks left");
}

/// `srun -N2 berth run …` without the plugin's options: one container per task, on each
/// node, in both profiles, each task knowing its rank and node.
#[test]
fn srun_of_berth_run_spans_two_nodes() {
    let Some(s) = setup() else { return };
    for profile in [&["--hpc"][..], &[][..]] {
        let mut args = vec!["-N2", "--ntasks-per-node=1", BERTH, "run", "--rm"];
        args.extend(profile);
        args.extend([
            "localhost/bb",
            "sh",
            "-c",
            "echo $SLURMD_NODENAME $SLURM_PROCID",
        ]);
        let out = success(&s.run(&args));
        let mut lines: Vec<&str> = out.lines().collect();
        lines.sort();
        assert_eq!(lines, ["node1 0", "node2 1"], "{profile:?}: {out}");
    }
    s.wait_no_containers();
}

#[test]
fn one_container_per_node_for_a_two_node_step() {
    let Some(s) = setup() else { return };
    let image = format!("--container-image={IMAGE}");
    let out = success(&s.run(&[
        "-N2",
        "-n4",
        "--ntasks-per-node=2",
        &image,
        "sh",
        "-c",
        "echo $(hostname) $(readlink /proc/self/ns/mnt) $(cat /etc/os-release)",
    ]));
    let mut by_node: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in out.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        assert_eq!(words.len(), 3, "{out}");
        assert_eq!(words[2], "ID=berth-spank-test", "{out}");
        by_node
            .entry(words[0].to_string())
            .or_default()
            .push(words[1].to_string());
    }
    assert_eq!(
        by_node.keys().collect::<Vec<_>>(),
        ["node1", "node2"],
        "{out}"
    );
    let mut all: Vec<&String> = Vec::new();
    for namespaces in by_node.values() {
        assert_eq!(namespaces.len(), 2, "{out}");
        assert_eq!(
            namespaces[0], namespaces[1],
            "one container per node: {out}"
        );
        all.push(&namespaces[0]);
    }
    assert_ne!(all[0], all[1], "a container on each node: {out}");
    s.wait_no_containers();
}

#[test]
fn an_image_without_sleep_is_explained_and_leaves_nothing() {
    let Some(s) = setup() else { return };
    let ctx = s.b.dir.path().join("nosleep");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/bb\nRUN rm /bin/sleep\n",
    )
    .unwrap();
    s.b.ok(&[
        "build",
        "-q",
        "-t",
        "localhost/nosleep",
        ctx.to_str().unwrap(),
    ]);
    let out = s.run(&["-n1", "--container-image=localhost/nosleep", "true"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("the image needs `sleep`"), "{err}");
    s.wait_no_containers();
}

#[test]
fn propagated_limits_apply_as_for_the_bare_program() {
    let Some(s) = setup() else { return };
    let image = format!("--container-image={IMAGE}");
    // srun under a lowered soft limit on open files, which it propagates to the tasks.
    let lowered = |args: &[&str]| -> String {
        let inner = s.srun(args);
        let mut c = Command::new("sh");
        c.args(["-c", "ulimit -S -n 321 && exec \"$@\"", "sh"])
            .arg(inner.get_program())
            .args(inner.get_args())
            .current_dir(&s.work)
            .stdin(Stdio::null());
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        success(&c.output().unwrap())
    };
    // One line per task: the tasks' lines may interleave, never their words.
    let script = "echo $(ulimit -n) $(env | grep -c ^SLURM_RLIMIT_)";
    let bare = lowered(&["-n1", "sh", "-c", script]);
    assert_eq!(bare, "321 0\n");
    assert_eq!(
        lowered(&["-n2", &image, "sh", "-c", script]),
        bare.repeat(2)
    );
    s.wait_no_containers();
}

#[test]
fn tmpdir_defaults_as_for_the_bare_program() {
    let Some(s) = setup() else { return };
    let image = format!("--container-image={IMAGE}");
    let lines = |args: &[&str]| -> Vec<String> {
        let out = s.srun(args).env_remove("TMPDIR").output().unwrap();
        let mut l: Vec<String> = success(&out).lines().map(str::to_string).collect();
        l.sort();
        l
    };
    let script = "echo $SLURM_LOCALID ${TMPDIR-unset}";
    let bare = lines(&["-n2", "sh", "-c", script]);
    assert_eq!(lines(&["-n2", &image, "sh", "-c", script]), bare);
    s.wait_no_containers();
}
