//! `berth-spank`: a Slurm SPANK plugin that gives `srun` pyxis's `--container-*` options and
//! runs each task of a step inside a container made by the `berth` binary.
//!
//! One container per node per step, which the tasks join (DESIGN decision 10):
//!
//! - `slurm_spank_user_init` runs once per node and step in slurmstepd, as the user, before
//!   any task exists: it starts `berth run -d --hpc --name slurm-JOB.STEP-NODE IMAGE sleep
//!   infinity` with the job's environment, so nothing has to be locked or waited for.
//! - `slurm_spank_task_init` runs in each task's process just before Slurm would exec the
//!   command: it execs `berth exec -i [-e VAR=...] NAME COMMAND...` instead, with the task's
//!   environment, so the command joins the container's namespaces (setns), stays a
//!   descendant of slurmstepd in the step's cgroup, and its exit status is the task's.
//! - `slurm_spank_exit` removes the container (`berth rm -f`) when the step ends on the node.
//!
//! The plugin takes one argument in `plugstack.conf`, `berth=PATH` (default: `berth` found on
//! the job's `PATH`).

use std::ffi::{c_char, c_int};
use std::process::{Command, Stdio};
use std::sync::{LazyLock, Mutex, MutexGuard};

mod ffi;
pub mod limits;
pub mod options;
mod sys;

use ffi::{Context, RawHandle, Spank};
use options::{ContainerOptions, OPTIONS};

const fn parse_version(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut v: u32 = 0;
    let mut i = 0;
    while i < b.len() {
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}

/// The Slurm plugin loader reads these four symbols: the name, the type, and the Slurm
/// version this was built for, which must be the running one.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static plugin_name: [u8; 6] = *b"berth\0";
/// See [`plugin_name`].
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static plugin_type: [u8; 6] = *b"spank\0";
/// See [`plugin_name`].
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static plugin_version: u32 = parse_version(env!("BERTH_SLURM_VERSION_NUMBER"));
/// See [`plugin_name`].
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static spank_plugin_version: u32 = 0;

/// Steps at or above this id are Slurm's special ones (batch script, extern, interactive):
/// their "task" is not a user command the plugin could run in a container.
const FIRST_SPECIAL_STEP: u32 = 0xffff_fff0;

/// The plugin's state in one Slurm process (srun, or one step's slurmstepd). Task processes
/// are forks of slurmstepd and inherit it.
struct State {
    opts: ContainerOptions,
    /// `berth=` from plugstack.conf.
    berth: String,
    /// The container the tasks join, once known.
    container: Option<String>,
    /// Whether this step started it (and so removes it).
    created: bool,
    /// The environment `berth run` got, to pass the tasks only what they add.
    start_env: Vec<String>,
    /// The user's ids and groups, for `berth rm` from slurmstepd's root context.
    ids: Option<(u32, u32, Vec<libc::gid_t>)>,
    /// The absolute path of the berth binary in the remote context.
    berth_path: Option<String>,
    /// Why the container could not be started: reported once by slurmstepd, and every task
    /// then exits with 125, Docker's status for "the engine failed".
    failed: bool,
}

static STATE: LazyLock<Mutex<State>> = LazyLock::new(|| {
    Mutex::new(State {
        opts: ContainerOptions::new(),
        berth: "berth".into(),
        container: None,
        created: false,
        start_env: Vec::new(),
        ids: None,
        berth_path: None,
        failed: false,
    })
});

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

extern "C" fn option_callback(val: c_int, optarg: *const c_char, _remote: c_int) -> c_int {
    // SAFETY: Slurm passes NULL or the option's NUL-terminated argument.
    let arg = unsafe { ffi::opt_string(optarg) };
    match state().opts.set(val as usize, arg.as_deref()) {
        Ok(()) => 0,
        Err(e) => {
            ffi::error(&e);
            -1
        }
    }
}

/// Registers the options in every context where a user can give them.
///
/// # Safety
/// Called by Slurm with a valid handle and `ac` valid C strings in `av`.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_init(
    sp: *mut RawHandle,
    ac: c_int,
    av: *mut *mut c_char,
) -> c_int {
    // SAFETY: forwarded from Slurm's own arguments.
    let args = unsafe { ffi::plugin_args(ac, av) };
    for a in &args {
        match a.split_once('=') {
            Some(("berth", path)) if !path.is_empty() => state().berth = path.to_string(),
            _ => {
                ffi::error(&format!(
                    "berth-spank: unknown plugin argument {a:?} (berth=PATH)"
                ));
                return -1;
            }
        }
    }
    if ffi::context() == Context::Other {
        return 0;
    }
    let sp = Spank::new(sp);
    for (val, opt) in OPTIONS.iter().enumerate() {
        if let Err(e) = sp.register(
            opt.name,
            opt.arginfo,
            opt.usage,
            val as i32,
            option_callback,
        ) {
            ffi::error(&format!("berth-spank: {e}"));
            return -1;
        }
    }
    0
}

/// Refuses container options without an image or a container to run in.
///
/// # Safety
/// Called by Slurm.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_init_post_opt(
    _sp: *mut RawHandle,
    _ac: c_int,
    _av: *mut *mut c_char,
) -> c_int {
    let st = state();
    if st.opts.image.is_none() && st.opts.name.is_none() && st.opts.any_besides_image() {
        ffi::error("--container-* options need --container-image (or --container-name)");
        return -1;
    }
    0
}

/// Starts (or finds) this node's container for the step.
///
/// # Safety
/// Called by Slurm with a valid handle.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_user_init(
    sp: *mut RawHandle,
    _ac: c_int,
    _av: *mut *mut c_char,
) -> c_int {
    if ffi::context() != Context::Remote {
        return 0;
    }
    let sp = Spank::new(sp);
    // Failing here would make srun report a launch failure and still exit 0; the tasks exit
    // with 125 instead (slurm_spank_task_init), so the step fails like `berth run` would.
    if let Err(e) = start_container(&sp) {
        ffi::error(&e);
        state().failed = true;
    }
    0
}

fn start_container(sp: &Spank) -> Result<(), String> {
    let mut st = state();
    if st.opts.image.is_none() && st.opts.name.is_none() {
        return Ok(());
    }
    let (job, step) = (sp.job_id().unwrap_or(0), sp.step_id().unwrap_or(0));
    if step >= FIRST_SPECIAL_STEP {
        return Ok(());
    }
    let mut env = sp.env().unwrap_or_default();
    // Limits for the tasks (slurm_spank_task_init), not variables of the container.
    env.retain(|kv| !kv.starts_with(limits::PREFIX));
    let berth = resolve(&st.berth, &env)
        .ok_or_else(|| format!("berth-spank: cannot find the berth binary {:?}", st.berth))?;
    let (uid, gid) = sys::effective_ids();
    let groups = sys::current_groups();
    st.ids = Some((uid, gid, groups.clone()));
    st.berth_path = Some(berth.clone());

    if let Some(name) = st.opts.name.clone() {
        let mut c = berth_command(&berth, &env, (uid, gid, &groups));
        c.args([
            "container",
            "inspect",
            "--format",
            "{{.State.Running}}",
            &name,
        ]);
        let running = c
            .output()
            .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "true")
            .unwrap_or(false);
        if running {
            // Started by someone else, with another environment: the tasks pass all of theirs
            // (start_env stays empty).
            st.container = Some(name);
            return Ok(());
        }
        if st.opts.image.is_none() {
            return Err(format!(
                "--container-name {name}: no such running container"
            ));
        }
    }
    let image = st.opts.image.clone().unwrap_or_default();
    let name = st
        .opts
        .name
        .clone()
        .unwrap_or_else(|| format!("slurm-{job}.{step}-{}", hostname()));
    let mut c = berth_command(&berth, &env, (uid, gid, &groups));
    c.args(st.opts.run_args(&image, &name));
    for (k, v) in st.opts.run_env() {
        c.env(k, v);
    }
    let out = c
        .output()
        .map_err(|e| format!("--container-image {image}: cannot run {berth}: {e}"))?;
    if !out.status.success() {
        // A container that was made but did not start leaves a record; one under a name of
        // our own making is ours to remove (a user's --container-name may be theirs).
        if st.opts.name.is_none() {
            let mut rm = berth_command(&berth, &env, (uid, gid, &groups));
            let _ = rm.args(["rm", "-f", &name]).output();
        }
        let mut msg =
            last_line(&out.stderr).unwrap_or_else(|| format!("berth run failed ({})", out.status));
        if out.status.code() == Some(127) {
            msg.push_str(" (the step's container runs `sleep infinity`: the image needs `sleep`)");
        }
        return Err(format!("--container-image {image}: {msg}"));
    }
    ffi::debug(&format!(
        "berth-spank: started container {name} from {image}"
    ));
    st.container = Some(name);
    st.created = true;
    st.start_env = env;
    Ok(())
}

/// Replaces the task's command with `berth exec` into the node's container.
///
/// # Safety
/// Called by Slurm with a valid handle, in the task's process.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_task_init(
    sp: *mut RawHandle,
    _ac: c_int,
    _av: *mut *mut c_char,
) -> c_int {
    if ffi::context() != Context::Remote {
        return 0;
    }
    let sp = Spank::new(sp);
    let st = state();
    if st.failed {
        sys::exit_now(125)
    }
    let (Some(name), Some(berth)) = (st.container.clone(), st.berth_path.clone()) else {
        return 0;
    };
    let argv = sp.argv().unwrap_or_default();
    let mut env = sp.env().unwrap_or_default();
    sys::apply_limits(&env);
    if sp.local_task_id() == Some(0) {
        default_tmpdir(&mut env);
    }
    // Slurm keeps them from the task too.
    env.retain(|kv| !kv.starts_with(limits::PREFIX));
    let mut args = vec![berth.clone()];
    args.extend(st.opts.exec_args(&name, &argv, &env, &st.start_env));
    drop(st);
    let err = sys::exec(&berth, &args, &env);
    ffi::error(&format!("berth-spank: cannot execute {berth}: {err}"));
    -1
}

/// What slurmstepd does for a node's first task after `task_init`: `TMPDIR` is made if it
/// is set and missing, and is `/tmp` when unset or unusable.
fn default_tmpdir(env: &mut Vec<String>) {
    use std::os::unix::fs::DirBuilderExt;
    let usable = |dir: &str| {
        let made = std::fs::DirBuilder::new().mode(0o700).create(dir);
        made.is_ok() || std::fs::metadata(dir).is_ok_and(|m| m.is_dir())
    };
    match env.iter().position(|kv| kv.starts_with("TMPDIR=")) {
        None => env.push("TMPDIR=/tmp".into()),
        Some(i) if !usable(&env[i]["TMPDIR=".len()..]) => {
            ffi::error(&format!(
                "berth-spank: cannot create {}, setting TMPDIR to /tmp",
                &env[i]
            ));
            env[i] = "TMPDIR=/tmp".into();
        }
        Some(_) => {}
    }
}

/// Removes the container this step started on the node.
///
/// # Safety
/// Called by Slurm.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_exit(
    _sp: *mut RawHandle,
    _ac: c_int,
    _av: *mut *mut c_char,
) -> c_int {
    if ffi::context() != Context::Remote {
        return 0;
    }
    let st = state();
    let (Some(name), true, Some(berth), Some((uid, gid, groups))) = (
        st.container.clone(),
        st.created,
        st.berth_path.clone(),
        st.ids.clone(),
    ) else {
        return 0;
    };
    let mut c = berth_command(&berth, &st.start_env, (uid, gid, &groups));
    c.args(["rm", "-f", &name]);
    match c.output() {
        Ok(o) if o.status.success() => 0,
        Ok(o) => {
            ffi::error(&format!(
                "berth-spank: cannot remove container {name}: {}",
                last_line(&o.stderr).unwrap_or_default()
            ));
            0
        }
        Err(e) => {
            ffi::error(&format!("berth-spank: cannot run {berth}: {e}"));
            0
        }
    }
}

/// `berth` with exactly `env`, run as the user: slurmstepd runs the callbacks as root or with
/// only its effective ids changed, and berth must be the user through and through (its user
/// namespace, its store).
fn berth_command(
    berth: &str,
    env: &[String],
    (uid, gid, groups): (u32, u32, &[libc::gid_t]),
) -> Command {
    let mut c = Command::new(berth);
    c.env_clear()
        .envs(env.iter().filter_map(|kv| kv.split_once('=')))
        .stdin(Stdio::null());
    sys::as_user(&mut c, uid, gid, groups);
    c
}

/// `name` as an absolute path: as it is when it has a slash, else looked up in `PATH` from
/// `env`.
fn resolve(name: &str, env: &[String]) -> Option<String> {
    if name.contains('/') {
        return Some(name.to_string());
    }
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/bin:/usr/bin:/bin");
    path.split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "node".into())
}

/// The last non-empty line of a command's stderr, without the `Error: ` of berth's errors.
fn last_line(stderr: &[u8]) -> Option<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.strip_prefix("Error: ").unwrap_or(l).to_string())
}
