//! OCI lifecycle hooks: programs the spec asks the runtime to run at fixed points of a
//! container's life, each given the container's state as JSON on its standard input.
//!
//! `prestart` and `createRuntime` run in the monitor (the runtime's namespaces) once the
//! container's mounts are in place but before `pivot_root`; `createContainer` runs in the init,
//! inside the container's namespaces at that same point, so a path under the root's mount
//! point resolves to the container's files (NVIDIA's CDI hooks update the container's linker
//! cache this way); `startContainer` runs in the init after `pivot_root`, just before exec;
//! `poststart` and `poststop` run in the monitor, and their failures are only warnings, as the
//! runtime spec says. A container whose spec has no hooks pays nothing for this: no extra
//! round trip, no file.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks, Spec};

/// The points of a container's life a hook can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Point {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::Prestart => "prestart",
            Point::CreateRuntime => "createRuntime",
            Point::CreateContainer => "createContainer",
            Point::StartContainer => "startContainer",
            Point::Poststart => "poststart",
            Point::Poststop => "poststop",
        }
    }

    fn of(self, hooks: &Hooks) -> &[Hook] {
        let list = match self {
            Point::Prestart =>
            {
                #[allow(deprecated)]
                hooks.prestart()
            }
            Point::CreateRuntime => hooks.create_runtime(),
            Point::CreateContainer => hooks.create_container(),
            Point::StartContainer => hooks.start_container(),
            Point::Poststart => hooks.poststart(),
            Point::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or_default()
    }

    /// The container's status while hooks of this point run.
    fn status(self) -> &'static str {
        match self {
            Point::Prestart | Point::CreateRuntime | Point::CreateContainer => "creating",
            Point::StartContainer => "created",
            Point::Poststart => "running",
            Point::Poststop => "stopped",
        }
    }
}

/// The hooks `spec` attaches to `point`.
pub(crate) fn at(spec: &Spec, point: Point) -> &[Hook] {
    spec.hooks().as_ref().map_or(&[], |h| point.of(h))
}

/// Whether the spec has hooks that run before `pivot_root`, which needs a stop there.
pub(crate) fn any_before_pivot(spec: &Spec) -> bool {
    [
        Point::Prestart,
        Point::CreateRuntime,
        Point::CreateContainer,
    ]
    .iter()
    .any(|&p| !at(spec, p).is_empty())
}

/// What a hook is told about the container.
#[derive(Debug, Clone)]
pub(crate) struct State<'a> {
    /// The container's id: the name of its state directory.
    pub(crate) id: String,
    /// Its host pid (0 before it is known).
    pub(crate) pid: i32,
    /// The directory holding `config.json` for hooks that read the spec.
    pub(crate) bundle: &'a Path,
    pub(crate) spec: &'a Spec,
}

impl State<'_> {
    fn json(&self, point: Point) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "ociVersion": self.spec.version(),
            "id": self.id,
            "status": point.status(),
            "pid": self.pid,
            "bundle": self.bundle,
            "annotations": self.spec.annotations().clone().unwrap_or_default(),
        }))
        .expect("a JSON object serializes")
    }
}

/// Writes `DIR/config.json` (making DIR) for hooks that read the spec from the state's bundle (as
/// NVIDIA's do, to find the root): the spec with its root at `root`, the mount point.
pub(crate) fn write_config(dir: &Path, spec: &Spec, root: &Path) -> std::io::Result<()> {
    let mut spec = spec.clone();
    let mut r = spec.root().clone().unwrap_or_default();
    r.set_path(root.to_path_buf());
    spec.set_root(Some(r));
    let bytes = serde_json::to_vec(&spec).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("config.json"), bytes)
}

/// Runs the hooks of `point` in order; the first failure stops them and is returned as one
/// line naming the point, the hook and what went wrong.
pub(crate) fn run(point: Point, state: &State<'_>) -> Result<(), String> {
    let hooks = at(state.spec, point);
    if hooks.is_empty() {
        return Ok(());
    }
    let input = state.json(point);
    for h in hooks {
        run_one(h, &input)
            .map_err(|e| format!("{} hook {}: {e}", point.name(), h.path().display()))?;
    }
    Ok(())
}

/// Runs the hooks of `point` and turns a failure into a warning on standard error: for the
/// points after the process started, whose failures must not change its course.
pub(crate) fn run_warning(point: Point, state: &State<'_>) {
    if let Err(e) = run(point, state) {
        eprintln!("berth: warning: {e}");
    }
}

fn run_one(h: &Hook, input: &[u8]) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args().as_deref() {
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
    }
    // The spec's environment and nothing else: the runtime's own must not leak in.
    cmd.env_clear();
    for kv in h.env().as_deref().unwrap_or_default() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    // Read as it comes, so a talkative hook cannot fill the pipe and stall until its timeout.
    let stderr = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = e.read_to_string(&mut s);
            s
        })
    });
    // A hook that does not read its input must not block us: a closed pipe is its business.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let deadline = h
        .timeout()
        .filter(|&t| t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(s) => break s,
            None if deadline.is_some_and(|d| Instant::now() >= d) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {}s", h.timeout().unwrap_or(0)));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    if status.success() {
        return Ok(());
    }
    let err = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    let last = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let how = match status.code() {
        Some(c) => format!("exited with status {c}"),
        None => format!("{status}"),
    };
    Err(if last.is_empty() {
        how
    } else {
        format!("{how}: {}", last.trim())
    })
}
