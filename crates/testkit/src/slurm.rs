//! A throw-away Slurm cluster (slurmctld, one slurmd, munged) for tests, and a signal logger.
//!
//! The cluster is started by `scripts/slurm/start-cluster` the first time a test of the process
//! asks for it, with its state directory in a fresh temporary directory and free ports, so it
//! never meets another cluster on the machine (a site's own, or that of a test binary running
//! at the same time). All tests of the process share it.
//!
//! Lifetime: Rust's test harness neither drops statics nor offers an "after all tests" hook,
//! and stopping when the last user of a reference-counted handle goes away would stop and
//! restart the cluster whenever two tests do not overlap. Instead the start script gets this
//! process's pid (`--owner-pid`) and leaves a watchdog that runs `scripts/slurm/stop-cluster
//! --purge` once the process has exited, whichever way it ended: tests passing, a panic, or
//! the process being killed. The stop kills only this cluster's jobs and daemons, by pid.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::cache::{cached, find_program};
use crate::net::free_port;

/// CPUs the test node advertises: more than most machines have, so that tests running in
/// parallel threads, each with a few mostly sleeping jobs, do not queue behind each other.
const NODE_CPUS: u32 = 32;

/// Prefixes of the variables Slurm's clients read. A test run inside a Slurm job inherits them
/// (`SLURM_JOB_ID`, `SBATCH_PARTITION`, ...), and they would point `srun` at that job or
/// partition of the outer cluster instead of the test cluster.
const CLIENT_ENV_PREFIXES: [&str; 8] = [
    "SLURM_",
    "SBATCH_",
    "SRUN_",
    "SALLOC_",
    "SQUEUE_",
    "SCANCEL_",
    "SINFO_",
    "SCONTROL_",
];

/// The repository's `scripts/slurm` directory (start/stop scripts, `sigtrap.c`).
///
/// From the manifest directory `cargo test` gives the test process, which is the checkout
/// being tested: the one compiled in is where this crate was first built, and a target
/// directory shared by several checkouts keeps it after that checkout is gone.
fn scripts_dir() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.join("../../scripts/slurm")
}

/// `PATH` with the sbin directories appended: `cargo test` may run without them, and
/// `slurmctld`, `slurmd` and `munged` live there.
fn path_with_sbin() -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        if !dirs.iter().any(|x| x == Path::new(d)) {
            dirs.push(PathBuf::from(d));
        }
    }
    std::env::join_paths(dirs).expect("PATH entries contain no ':'")
}

/// True when the Slurm daemons and clients the cluster needs are installed.
pub fn slurm_installed() -> bool {
    ["slurmctld", "slurmd", "srun", "sbatch", "munged"]
        .iter()
        .all(|p| find_program(p).is_some())
}

/// Writes what a plug stack needs into the state directory it is given; returns the stack.
type MakeStack<'a> = Box<dyn FnOnce(&Path) -> String + 'a>;

/// A running test cluster; see the module documentation for how it is started and stopped.
#[derive(Debug)]
pub struct SlurmCluster {
    state: PathBuf,
    conf: PathBuf,
}

/// Final state of a job as `scontrol show job` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEnd {
    /// `COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`, ...
    pub state: String,
    /// The exit status of the batch script (or of the job's step for `srun`-only jobs).
    pub exit_code: i32,
    /// The signal that ended it, 0 if none.
    pub signal: i32,
}

impl SlurmCluster {
    /// The cluster of this test process, started on first use (about 3 s).
    ///
    /// Returns `None`, after printing a notice on stderr, when Slurm is not installed, so the
    /// caller can skip. Panics when Slurm is installed but the cluster does not come up (not
    /// root, a broken installation): that is a failure to report, not a reason to skip.
    pub fn shared() -> Option<&'static SlurmCluster> {
        static CLUSTER: OnceLock<Result<SlurmCluster, String>> = OnceLock::new();
        if !slurm_installed() {
            eprintln!(
                "skipped: Slurm is not installed (slurmctld, slurmd, slurm-client, munge; \
                 scripts/install-deps installs them)"
            );
            return None;
        }
        match CLUSTER.get_or_init(|| SlurmCluster::start(1, None)) {
            Ok(c) => Some(c),
            Err(e) => panic!("{e}"),
        }
    }

    /// A second cluster of this test process with a SPANK plug stack, kept apart from
    /// [`shared`](Self::shared) so that a plugin under test cannot break the other Slurm tests.
    /// `plugstack` gets the cluster's state directory before it starts (a place for files the
    /// stack names, removed with the cluster) and returns the stack's lines, such as
    /// `required /path/libberth_spank.so berth=/path/berth`. Started on first use, the first
    /// caller's stack and node count; `None` and panics as for [`shared`](Self::shared).
    ///
    /// With `nodes` > 1 every node (`node1`, `node2`, ...) has its own network namespace and
    /// host name, as in `start-cluster --nodes`; that needs `ip`, `nsenter` and `unshare`.
    pub fn with_plugstack(
        nodes: u32,
        plugstack: impl FnOnce(&Path) -> String,
    ) -> Option<&'static SlurmCluster> {
        static CLUSTER: OnceLock<Result<SlurmCluster, String>> = OnceLock::new();
        if !slurm_installed() {
            eprintln!(
                "skipped: Slurm is not installed (slurmctld, slurmd, slurm-client, munge; \
                 scripts/install-deps installs them)"
            );
            return None;
        }
        match CLUSTER.get_or_init(|| SlurmCluster::start(nodes, Some(Box::new(plugstack)))) {
            Ok(c) => Some(c),
            Err(e) => panic!("{e}"),
        }
    }

    fn start(nodes: u32, plugstack: Option<MakeStack<'_>>) -> Result<SlurmCluster, String> {
        let state = tempfile::Builder::new()
            .prefix("berth-slurm-")
            .tempdir()
            .map_err(|e| format!("cannot create the Slurm state directory: {e}"))?
            // Removed by the watchdog's `stop-cluster --purge`, after this process is gone.
            .keep();
        let stack_file = state.join("plugstack.conf");
        let with_stack = plugstack.is_some();
        if let Some(make) = plugstack {
            fs::write(&stack_file, make(&state))
                .map_err(|e| format!("cannot write {}: {e}", stack_file.display()))?;
        }
        let script = scripts_dir().join("start-cluster");
        let mut last = String::new();
        // Free ports are only free until someone binds them: on a clash slurmctld or slurmd
        // cannot listen and the start fails, so it is retried on new ports.
        for _ in 0..3 {
            let mut cmd = Command::new(&script);
            if with_stack {
                cmd.arg("--plugstack").arg(&stack_file);
            }
            if nodes > 1 {
                // Each node in its own network namespace, on a bridge and subnet named after
                // this process so that clusters of other test processes do not collide.
                let pid = std::process::id();
                cmd.args(["--nodes", &nodes.to_string()])
                    .env("BERTH_SLURM_PREFIX", format!("bk{}", pid % 100_000))
                    .env("BERTH_SLURM_SUBNET", format!("10.213.{}", 100 + pid % 150));
            }
            let out = cmd
                .arg("--state")
                .arg(&state)
                .args(["--cpus", &NODE_CPUS.to_string()])
                .args(["--ctld-port", &free_port().to_string()])
                .args(["--slurmd-port", &free_port().to_string()])
                .args(["--owner-pid", &std::process::id().to_string()])
                .env("PATH", path_with_sbin())
                .output()
                .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
            if out.status.success() {
                let conf = state.join("etc/slurm.conf");
                return Ok(SlurmCluster { state, conf });
            }
            last = format!(
                "{} failed ({}):\n{}{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(last)
    }

    /// The cluster's `slurm.conf`: the one setting a client needs (as `SLURM_CONF`).
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The state directory (config, logs under `log/`, spool).
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// A Slurm client command (`srun`, `sbatch`, `scancel`, `scontrol`, `squeue`, ...) aimed at
    /// this cluster: `SLURM_CONF` set, Slurm variables inherited from an outer job removed,
    /// sbin directories on `PATH`. Everything else of this process's environment is kept, and
    /// `srun`/`sbatch` pass it on to the job.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        for (k, _) in std::env::vars_os() {
            let name = k.to_string_lossy();
            if CLIENT_ENV_PREFIXES.iter().any(|p| name.starts_with(p)) {
                c.env_remove(&k);
            }
        }
        c.env("SLURM_CONF", &self.conf)
            .env("PATH", path_with_sbin());
        c
    }

    /// Runs a client command to completion and panics, with its output, unless it succeeds.
    pub fn ok(&self, program: &str, args: &[&str]) -> String {
        let out = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert_success(program, args, &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The job's end, or `None` while it is pending or running (or unknown to slurmctld).
    pub fn job_end(&self, job: u32) -> Option<JobEnd> {
        let out = self
            .command("scontrol")
            .args(["show", "job", "--oneliner", &job.to_string()])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            text.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
        };
        let state = field("JobState")?;
        if matches!(
            state.as_str(),
            "PENDING" | "RUNNING" | "SUSPENDED" | "COMPLETING" | "CONFIGURING" | "REQUEUED"
        ) {
            return None;
        }
        // "ExitCode=3:0": exit status, then the terminating signal.
        let code = field("ExitCode")?;
        let (status, signal) = code.split_once(':')?;
        Some(JobEnd {
            state,
            exit_code: status.parse().ok()?,
            signal: signal.parse().ok()?,
        })
    }

    /// Polls [`job_end`](Self::job_end) every 100 ms until the job has ended; panics after
    /// `timeout`. (`sbatch --wait` polls at intervals of seconds.)
    pub fn wait_job_end(&self, job: u32, timeout: Duration) -> JobEnd {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.job_end(job) {
                return end;
            }
            if Instant::now() > deadline {
                let info = self
                    .command("scontrol")
                    .args(["show", "job", &job.to_string()])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                panic!("job {job} did not end within {timeout:?}:\n{info}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn assert_success(program: &str, args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `sigtrap` program (`scripts/slurm/sigtrap.c`), compiled static once and cached, so it
/// runs unchanged on the host and inside a busybox container.
///
/// `sigtrap LOG TAG [SECONDS]` appends `<epoch.ms> <TAG> pid=<pid> <event>` lines to LOG:
/// `start job=<SLURM_JOB_ID> step=<SLURM_STEP_ID>`, then `SIG<NAME>` for every catchable signal
/// as it is delivered. SIGTERM and SIGINT end it with 128+N after logging (`exit 143`); after
/// SECONDS (default 600) it exits 0 (`exit 0`).
pub fn sigtrap() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = scripts_dir().join("sigtrap.c");
        let code = fs::read(&src).unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display()));
        let hash: String = Sha256::digest(&code)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let cc = find_program("cc")
            .or_else(|| find_program("gcc"))
            .unwrap_or_else(|| panic!("no C compiler; run scripts/install-deps (build-essential)"));
        cached(&format!("sigtrap-{hash}"), |tmp| {
            let out = Command::new(&cc)
                .args(["-O2", "-static", "-o"])
                .arg(tmp)
                .arg(&src)
                .output()
                .map_err(|e| format!("cannot run {}: {e}", cc.display()))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{} -static failed (static libc from libc6-dev needed):\n{}",
                    cc.display(),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        })
        .unwrap_or_else(|e| panic!("building sigtrap: {e}"))
    })
    .clone()
}
