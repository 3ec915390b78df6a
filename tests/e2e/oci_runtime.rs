//! `berth oci`: the OCI runtime command line, driven as runc's callers drive it, on bundles made
//! from the busybox fixture; and Slurm's `oci.conf` (`srun --container=BUNDLE`) on the real
//! Slurm cluster of `scripts/slurm`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::SlurmCluster;
use serde_json::{json, Value};
use tempfile::TempDir;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// A bundle (busybox rootfs + config.json) and a state root, in one temporary directory.
struct Oci {
    dir: TempDir,
}

impl Oci {
    fn new() -> Oci {
        let dir = tempfile::Builder::new()
            .prefix("berth-oci-")
            .tempdir()
            .unwrap();
        let rootfs = dir.path().join("bundle/rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        let tar = File::open(berth_testkit::busybox_rootfs_tar()).unwrap();
        tar::Archive::new(tar).unpack(&rootfs).unwrap();
        std::fs::write(rootfs.join("etc/os-release"), "ID=berth-oci-bundle\n").unwrap();
        Oci { dir }
    }

    fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Writes config.json running `args` (runc's default spec, trimmed), then applies `edit`.
    fn config(&self, args: &[&str], edit: impl FnOnce(&mut Value)) {
        let mut c = spec(args);
        edit(&mut c);
        std::fs::write(
            self.bundle().join("config.json"),
            serde_json::to_vec_pretty(&c).unwrap(),
        )
        .unwrap();
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BERTH);
        c.arg("--root").arg(self.root()).arg("oci").args(args);
        c.env_remove("BERTH_ROOT").stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth oci {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(code), "berth oci {args:?}: {err}");
        err
    }

    /// `create` with its stdio (which the container inherits) on /dev/null: a pipe would stay
    /// open until the container ends.
    fn create(&self, id: &str) {
        let status = self
            .cmd(&["create", "--bundle", self.bundle().to_str().unwrap(), id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "create {id} failed: {status}");
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    /// Waits until the state's status is `want`.
    fn wait_status(&self, id: &str, want: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.state(id);
            if s["status"] == want {
                return s;
            }
            assert!(Instant::now() < deadline, "{id} never became {want}: {s}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The spec `runc spec` writes (as root), without a terminal.
fn spec(args: &[&str]) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/sys", "/proc/sysrq-trigger"]
        },
        "annotations": {"org.example.test": "yes"}
    })
}

fn read_when(path: &Path, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        if s.contains(want) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{} never showed {want:?}: {s}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn oci_lifecycle_create_start_kill_delete() {
    let t = Oci::new();
    t.config(
        &[
            "sh",
            "-c",
            "trap 'echo got TERM; exit 7' TERM; echo started $$; while :; do sleep 0.05; done",
        ],
        |_| {},
    );
    let bundle = t.bundle();
    let pid_file = t.dir.path().join("pid");
    // The container's stdio is create's: a file, so nothing waits for the container's end.
    let out = t.dir.path().join("out");
    let status = t
        .cmd(&["create", "--bundle", bundle.to_str().unwrap()])
        .arg("--pid-file")
        .arg(&pid_file)
        .arg("c1")
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(t.dir.path().join("err")).unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "create failed");

    let s = t.state("c1");
    assert_eq!(s["status"], "created", "{s}");
    assert_eq!(s["id"], "c1");
    assert_eq!(s["bundle"], bundle.to_str().unwrap());
    assert_eq!(s["annotations"]["org.example.test"], "yes");
    assert!(s["ociVersion"].as_str().unwrap().starts_with("1."));
    let pid = s["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );
    // Created: the user's program has not run yet.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    assert!(t
        .fails(&["create", "--bundle", bundle.to_str().unwrap(), "c1"], 1)
        .contains("already exists"));

    t.ok(&["start", "c1"]);
    let s = t.state("c1");
    assert_eq!(s["status"], "running", "{s}");
    assert_eq!(s["pid"].as_i64(), Some(pid));
    // PID 1 of its own pid namespace, running in the bundle's rootfs.
    read_when(&out, "started 1");
    t.fails(&["start", "c1"], 1);
    assert!(t.fails(&["delete", "c1"], 1).contains("not stopped"));

    t.ok(&["kill", "c1"]);
    let s = t.wait_status("c1", "stopped");
    assert!(s.get("pid").is_none(), "{s}");
    read_when(&out, "got TERM");
    assert!(t.fails(&["kill", "c1", "KILL"], 1).contains("not running"));

    t.ok(&["delete", "c1"]);
    assert!(t.fails(&["state", "c1"], 1).contains("does not exist"));
    assert!(!t.root().join("c1").exists());
    t.fails(&["delete", "c1"], 1);
    t.ok(&["delete", "--force", "c1"]);
}

#[test]
fn oci_kill_and_force_delete_a_created_and_a_running_container() {
    let t = Oci::new();
    t.config(&["sleep", "60"], |_| {});
    // Killed before start: stopped, and the program never ran.
    t.create("k1");
    t.ok(&["kill", "k1", "SIGKILL"]);
    t.wait_status("k1", "stopped");
    t.ok(&["delete", "k1"]);
    // A created container is deleted without --force, as with runc.
    t.create("k2");
    t.ok(&["delete", "k2"]);
    t.fails(&["state", "k2"], 1);
    // A running one needs --force; `kill --all` reaches every process.
    t.create("k3");
    t.ok(&["start", "k3"]);
    let pid = t.state("k3")["pid"].as_i64().unwrap();
    t.ok(&["kill", "--all", "k3", "9"]);
    t.wait_status("k3", "stopped");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists() || {
            let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            st.contains(") Z")
        }
    );
    t.ok(&["delete", "k3"]);
    t.create("k4");
    t.ok(&["start", "k4"]);
    t.ok(&["delete", "--force", "k4"]);
    t.fails(&["state", "k4"], 1);
}

#[test]
fn oci_run_honours_the_config_and_returns_the_exit_status() {
    let t = Oci::new();
    t.config(
        &[
            "sh",
            "-c",
            "cat /etc/os-release; hostname; id -u; id -g; pwd; echo FOO=$FOO; \
             grep -q '^[^ ]* / [^ ]* ro' /proc/mounts && echo ro || echo rw; exit 3",
        ],
        |c| {
            c["process"]["env"]
                .as_array_mut()
                .unwrap()
                .push(json!("FOO=bar"));
            c["process"]["cwd"] = json!("/tmp");
            c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
            c["hostname"] = json!("oci-box");
            // Relative paths are the bundle's; a writable tmpfs over /tmp.
            c["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
        },
    );
    let pid_file = t.dir.path().join("run.pid");
    let out = t
        .cmd(&[
            "run",
            "--bundle",
            t.bundle().to_str().unwrap(),
            "--pid-file",
        ])
        .arg(&pid_file)
        .arg("r1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "ID=berth-oci-bundle\noci-box\n1000\n1000\n/tmp\nFOO=bar\nro\n"
    );
    assert!(std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse::<i32>()
        .is_ok());
    // run removes the container when its process ends, as runc does.
    t.fails(&["state", "r1"], 1);

    t.config(&["no-such-program"], |_| {});
    t.fails(
        &["run", "--bundle", t.bundle().to_str().unwrap(), "r2"],
        127,
    );
    t.fails(&["state", "r2"], 1);
    let err = t.fails(&["run", "--bundle", "/nonexistent", "r3"], 1);
    assert!(err.contains("/nonexistent"), "{err}");
    assert!(t
        .fails(&["run", "--bundle", "/", "bad/id"], 1)
        .contains("invalid container id"));
}

#[test]
fn oci_run_with_a_user_namespace_and_id_maps() {
    let t = Oci::new();
    t.config(
        &[
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map /proc/self/gid_map",
        ],
        |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            c["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            c["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        },
    );
    let out = t.run(&["run", "--bundle", t.bundle().to_str().unwrap(), "u1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(
        words,
        ["0", "0", "100000", "65536", "0", "100000", "65536"],
        "{stdout}"
    );
}

/// Writes `oci.conf` next to the shared cluster's slurm.conf, once: Berth as the runtime in
/// RunTimeRun mode (slurmstepd reads the file at each step's launch).
fn slurm_with_oci() -> Option<&'static SlurmCluster> {
    static CONF: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let cluster = SlurmCluster::shared()?;
    CONF.get_or_init(|| write_oci_conf(cluster));
    Some(cluster)
}

/// [`slurm_with_oci`] on the two-node cluster (each node in its own network namespace).
fn two_nodes_with_oci() -> Option<&'static SlurmCluster> {
    static CONF: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let cluster = crate::spank::two_node_cluster()?;
    CONF.get_or_init(|| write_oci_conf(cluster));
    Some(cluster)
}

fn write_oci_conf(cluster: &SlurmCluster) {
    {
        let state = cluster.state_dir().join("run/berth-oci");
        let rt = format!("exec {BERTH} --root {} oci", state.display());
        let id = "%n.%u.%j.%s.%t";
        let conf = format!(
            "RunTimeQuery=\"{rt} state {id}\"\n\
             RunTimeKill=\"{rt} kill {id}\"\n\
             RunTimeDelete=\"{rt} delete --force {id}\"\n\
             RunTimeRun=\"{rt} run --bundle %b {id}\"\n"
        );
        let etc = cluster.conf().parent().unwrap();
        std::fs::write(etc.join("oci.conf"), conf).unwrap();
    }
}

/// `srun -N2 --container=BUNDLE`: one container per node, each in its node's network
/// namespace (the bundle asks for none of its own), and nothing left after the step. (Slurm
/// 22.05 runs the runtime without the task's variables, so rank and node are not asked.)
#[test]
fn oci_slurm_two_node_step() {
    let Some(cluster) = two_nodes_with_oci() else {
        return;
    };
    let t = Oci::new();
    t.config(&["true"], |c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
    });
    let out = cluster
        .command("srun")
        .args(["-N2", "--ntasks-per-node=1"])
        .arg(format!("--container={}", t.bundle().display()))
        .args([
            "sh",
            "-c",
            "echo $(cat /etc/os-release) $(readlink /proc/self/ns/net)",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The nodes' namespaces, as start-cluster names them for this test process.
    let node_ns = |n: u32| {
        let path = format!("/run/netns/bk{}-node{n}", std::process::id() % 100_000);
        let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        format!("ID=berth-oci-bundle net:[{ino}]")
    };
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    let mut want = vec![node_ns(1), node_ns(2)];
    want.sort();
    assert_eq!(lines, want, "{stdout}");
    let state = cluster.state_dir().join("run/berth-oci");
    let left: Vec<_> = std::fs::read_dir(&state)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

#[test]
fn oci_slurm_srun_container_runs_in_the_bundle() {
    let Some(cluster) = slurm_with_oci() else {
        return;
    };
    let t = Oci::new();
    // Slurm replaces process.args with srun's command and adds the job's environment.
    t.config(&["true"], |_| {});
    // slurmstepd reads the bundle as the job's user (root here), from any cwd.
    let bundle = t.bundle();
    let srun = |args: &[&str]| {
        let mut c = cluster.command("srun");
        c.args(["-N1", "-n1"])
            .arg(format!("--container={}", bundle.display()))
            .args(args)
            .stdin(Stdio::null());
        c.output().unwrap()
    };
    let out = srun(&["cat", "/etc/os-release"]);
    assert!(
        out.status.success(),
        "srun --container failed ({:?}): {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ID=berth-oci-bundle\n"
    );

    let out = srun(&[
        "sh",
        "-c",
        "echo job=$SLURM_JOB_ID host=$(hostname); exit 3",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("job=") && stdout.contains("host=runc"),
        "{stdout}"
    );
    // Each step's container is gone once the step ends.
    let left: Vec<_> = std::fs::read_dir(cluster.state_dir().join("run/berth-oci"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

#[test]
fn oci_console_socket_receives_the_terminal() {
    use std::io::Read;
    use std::os::unix::net::UnixListener;
    let t = Oci::new();
    t.config(&["sh", "-c", "tty; echo hello from the pty"], |c| {
        c["process"]["terminal"] = json!(true);
    });
    let b = t.bundle();
    let b = b.to_str().unwrap();
    // Without a console socket a detached terminal has nowhere to go.
    assert!(t
        .fails(&["create", "--bundle", b, "t0"], 1)
        .contains("--console-socket"));
    let sock = t.dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let create = t
        .cmd(&[
            "create",
            "--bundle",
            b,
            "--console-socket",
            sock.to_str().unwrap(),
            "t1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let mut fds = berth_runtime::handoff::recv_fds(&conn).unwrap();
    assert_eq!(fds.len(), 1);
    let mut master = File::from(fds.remove(0));
    assert!(create.wait_with_output().unwrap().status.success());
    t.ok(&["start", "t1"]);
    let mut text = Vec::new();
    // EIO once the pty's last user has gone.
    let _ = master.read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("/dev/pts/0") && text.contains("hello from the pty"),
        "{text:?}"
    );
    t.wait_status("t1", "stopped");
    t.ok(&["delete", "t1"]);
}

#[test]
fn oci_rootless_as_an_unprivileged_user() {
    let user = berth_testkit::unprivileged_user_without_subids();
    let t = Oci::new();
    let uid = user.uid;
    // `runc spec --rootless`: map the user to root, no network namespace, /sys bound.
    t.config(
        &[
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; cat /etc/os-release",
        ],
        |c| {
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != "network");
            ns.push(json!({"type": "user"}));
            c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
            c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": user.gid, "size": 1}]);
            for m in c["mounts"].as_array_mut().unwrap() {
                if m["type"] == "sysfs" {
                    *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
                }
            }
        },
    );
    let status = Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(t.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let bin = user.copy_to_home(Path::new(BERTH));
    let id = format!("rootless-{}", std::process::id());
    let berth = |args: &[&str]| {
        // No --root: the default, $XDG_RUNTIME_DIR/berth/oci.
        let mut c = Command::new(&bin);
        c.arg("oci").args(args);
        berth_testkit::run_as(&user, &mut c)
    };
    let b = t.bundle();
    let out = berth(&["run", "--bundle", b.to_str().unwrap(), &id]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(
        words,
        ["0", "0", &uid.to_string(), "1", "ID=berth-oci-bundle"]
    );
    assert!(!berth(&["state", &id]).status.success());
    assert!(!user.runtime_dir().join("berth/oci").join(&id).exists());
}

#[test]
fn oci_linux_resources_go_into_a_child_cgroup() {
    let t = Oci::new();
    t.config(&["sleep", "30"], |c| {
        c["linux"]["resources"] = json!({
            "memory": {"limit": 64u64 << 20},
            "cpu": {"quota": 50000, "period": 100000},
            "pids": {"limit": 10}
        });
    });
    t.create("lim");
    let pid = t.state("lim")["pid"].as_i64().unwrap();
    let rec: Value =
        serde_json::from_slice(&std::fs::read(t.root().join("lim/state.json")).unwrap()).unwrap();
    let dirs: Vec<String> = rec["cgroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let read = |file: &str| {
        dirs.iter()
            .find_map(|d| std::fs::read_to_string(format!("{d}/{file}")).ok())
            .unwrap_or_else(|| panic!("no {file} in {dirs:?}"))
    };
    if dirs.iter().any(|d| d.contains("/memory")) {
        assert_eq!(
            read("memory.limit_in_bytes").trim(),
            (64u64 << 20).to_string()
        );
        assert_eq!(read("pids.max").trim(), "10");
        assert_eq!(read("cpu.cfs_quota_us").trim(), "50000");
    } else {
        assert_eq!(read("memory.max").trim(), (64u64 << 20).to_string());
        assert_eq!(read("pids.max").trim(), "10");
    }
    // Already inside before the program runs.
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cg.contains("oci-lim"), "{cg}");
    t.ok(&["start", "lim"]);
    t.ok(&["delete", "--force", "lim"]);
    for d in &dirs {
        assert!(!Path::new(d).exists(), "{d} left behind");
    }
}

/// The bundle's hooks run at their points with the container's state on standard input:
/// `createRuntime` and `poststart` on the host, `poststop` once it ended.
#[test]
fn oci_run_runs_the_bundles_hooks() {
    let t = Oci::new();
    let out_dir = t.dir.path().join("hook-out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let hook = |name: &str| {
        json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {}/{name}.json", out_dir.display())],
        })
    };
    t.config(&["true"], |c| {
        c["hooks"] = json!({
            "createRuntime": [hook("createRuntime")],
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")],
        });
    });
    t.ok(&["run", "--bundle", t.bundle().to_str().unwrap(), "hooked"]);
    for (name, status) in [
        ("createRuntime", "creating"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let text = std::fs::read_to_string(out_dir.join(format!("{name}.json")))
            .unwrap_or_else(|e| panic!("{name} did not run: {e}"));
        let state: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(state["status"], status, "{name}: {state}");
        assert_eq!(state["id"], "hooked", "{name}: {state}");
    }
}
