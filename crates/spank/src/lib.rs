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
//!   A container named with `--container-name` stays for the job's later steps instead, and
//!   `slurm_spank_job_epilog` removes it when the job ends ([`job_scope`]).
//!
//! The plugin takes two optional arguments in `plugstack.conf`: `berth=PATH` (default: `berth`
//! found on the job's `PATH`) and `runtime=DIR`, where steps leave the job epilog its work
//! (default [`job_scope::DEFAULT_DIR`]).

use std::ffi::{c_char, c_int};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{LazyLock, Mutex, MutexGuard};

mod ffi;
pub mod job_scope;
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
    /// `runtime=` from plugstack.conf.
    runtime: PathBuf,
    /// The container the tasks join, once known.
    container: Option<String>,
    /// A container of the plugin's making this step used, and when it is to go.
    owned: Option<(String, Scope)>,
    /// The environment `berth run` got, to pass the tasks only what they add.
    start_env: Vec<String>,
    /// The job's environment, for the plugin's own `berth` commands.
    job_env: Vec<String>,
    /// The job's id.
    job: u32,
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
        runtime: PathBuf::from(job_scope::DEFAULT_DIR),
        container: None,
        owned: None,
        start_env: Vec::new(),
        job_env: Vec::new(),
        job: 0,
        ids: None,
        berth_path: None,
        failed: false,
    })
});

/// When a container the plugin made is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// When the step ends on the node (`slurm_spank_exit`).
    Step,
    /// When the job ends on the node (`slurm_spank_job_epilog`).
    Job,
}

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
    if let Err(e) = unsafe { read_plugin_args(ac, av) } {
        ffi::error(&e);
        return -1;
    }
    if matches!(ffi::context(), Context::Other | Context::JobScript) {
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

/// Takes `berth=PATH` and `runtime=/DIR` from `plugstack.conf`. Slurm passes them to every
/// callback, and the job epilog's process calls no other.
///
/// # Safety
/// `ac` valid C strings in `av`.
unsafe fn read_plugin_args(ac: c_int, av: *mut *mut c_char) -> Result<(), String> {
    // SAFETY: the caller's promise.
    for a in unsafe { ffi::plugin_args(ac, av) } {
        match a.split_once('=') {
            Some(("berth", path)) if !path.is_empty() => state().berth = path.to_string(),
            Some(("runtime", dir)) if dir.starts_with('/') => state().runtime = dir.into(),
            _ => {
                return Err(format!(
                    "berth-spank: unknown plugin argument {a:?} (berth=PATH, runtime=/DIR)"
                ))
            }
        }
    }
    Ok(())
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
    st.job_env = env.clone();
    st.job = job;
    let berth_cmd = || berth_command(&berth, &env, (uid, gid, &groups));

    let name = match st.opts.name.clone() {
        Some(user_name) => {
            // The plugin's own, kept for the job's later steps: the store may be shared
            // between nodes, and a record belongs to one host, hence the node in the name.
            let own = format!("{user_name}.{}", hostname());
            // Both looked up in one call: each costs a start of berth.
            let found = statuses(berth_cmd(), &[&user_name, &own]);
            // One the user runs on this node under that name (a record of another host reads
            // as exited): joined, and theirs to remove. Started by someone else, with another
            // environment: the tasks pass all of theirs (start_env stays empty).
            if found.get(&user_name).map(String::as_str) == Some("running") {
                ignored_when_joining(&st.opts, &user_name);
                st.container = Some(user_name);
                return Ok(());
            }
            match found.get(&own).map(String::as_str) {
                Some("running") => {
                    ignored_when_joining(&st.opts, &own);
                    st.container = Some(own.clone());
                    st.owned = Some((own, Scope::Job));
                    return Ok(());
                }
                // An earlier step's, stopped since (Slurm kills what is left in a step's
                // cgroup): started again, with its writable layer.
                Some(_) => {
                    ignored_when_joining(&st.opts, &own);
                    st.owned = Some((own.clone(), Scope::Job));
                    let out = berth_cmd().args(["start", &own]).output().map_err(|e| {
                        format!("--container-name {user_name}: cannot run {berth}: {e}")
                    })?;
                    if !out.status.success() {
                        return Err(format!(
                            "--container-name {user_name}: cannot start container {own}: {}",
                            last_line(&out.stderr).unwrap_or_else(|| out.status.to_string())
                        ));
                    }
                    st.container = Some(own);
                    return Ok(());
                }
                None if st.opts.image.is_none() => {
                    return Err(format!(
                        "--container-name {user_name}: no container {user_name} runs on this node \
                         and no earlier step of the job made {own}; give --container-image too"
                    ));
                }
                None => own,
            }
        }
        None => format!("slurm-{job}.{step}-{}", hostname()),
    };
    let image = st.opts.image.clone().unwrap_or_default();
    let mut c = berth_cmd();
    c.args(st.opts.run_args(&image, &name));
    for (k, v) in st.opts.run_env() {
        c.env(k, v);
    }
    let out = c
        .output()
        .map_err(|e| format!("--container-image {image}: cannot run {berth}: {e}"))?;
    let scope = if st.opts.name.is_some() {
        Scope::Job
    } else {
        Scope::Step
    };
    if !out.status.success() {
        if scope == Scope::Job {
            // Another step of the job on this node may have made it just before: joined.
            let found = statuses(berth_cmd(), &[&name]);
            if found.get(&name).map(String::as_str) == Some("running") {
                st.container = Some(name.clone());
                st.owned = Some((name, scope));
                return Ok(());
            }
            // What was made is the job epilog's to remove.
            st.owned = Some((name, scope));
        } else {
            // A container that was made but did not start leaves a record.
            let _ = berth_cmd().args(["rm", "-f", &name]).output();
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
    st.container = Some(name.clone());
    st.owned = Some((name, scope));
    st.start_env = env;
    Ok(())
}

/// Says, once per node, which of the step's options cannot change a container that exists.
fn ignored_when_joining(opts: &ContainerOptions, name: &str) {
    let given = opts.made_with();
    if !given.is_empty() {
        ffi::error(&format!(
            "berth-spank: {} apply only when a container is made; container {name} keeps its own",
            given.join(", ")
        ));
    }
}

/// The status (`running`, `exited`, ...) of each of `names` that exists.
fn statuses(mut berth: Command, names: &[&str]) -> std::collections::HashMap<String, String> {
    berth.args([
        "container",
        "inspect",
        "--format",
        "{{.Name}} {{.State.Status}}",
    ]);
    berth.args(names);
    // A missing name makes the command fail after it printed the others.
    let Ok(out) = berth.output() else {
        return Default::default();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (name, status) = l.split_once(' ')?;
            Some((name.trim_start_matches('/').to_string(), status.to_string()))
        })
        .collect()
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

/// Removes the container this step started on the node, or leaves a named one to the job
/// epilog.
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
    let (Some((name, scope)), Some(berth), Some(ids)) =
        (st.owned.clone(), st.berth_path.clone(), st.ids.clone())
    else {
        return 0;
    };
    match scope {
        Scope::Step => remove(&berth, &st.job_env, &ids, &name),
        Scope::Job => {
            let rec = job_scope::Record {
                host: hostname(),
                container: name.clone(),
                berth,
                ids,
                env: st.job_env.clone(),
            };
            if let Err(e) = job_scope::save(&st.runtime, st.job, &rec) {
                ffi::error(&format!(
                    "berth-spank: cannot record container {name} for the job's end in {}: {e}",
                    st.runtime.display()
                ));
            }
        }
    }
    0
}

/// Removes the named containers the job's steps left on this node. Never fails: a failing
/// epilog drains the node.
///
/// # Safety
/// Called by Slurm with a valid handle.
#[no_mangle]
pub unsafe extern "C" fn slurm_spank_job_epilog(
    sp: *mut RawHandle,
    ac: c_int,
    av: *mut *mut c_char,
) -> c_int {
    if ffi::context() != Context::JobScript {
        return 0;
    }
    // SAFETY: forwarded from Slurm's own arguments.
    if let Err(e) = unsafe { read_plugin_args(ac, av) } {
        ffi::error(&e);
        return 0;
    }
    let Some(job) = Spank::new(sp).job_id() else {
        return 0;
    };
    let dir = state().runtime.clone();
    for (file, rec) in job_scope::of_job(&dir, job, &hostname()) {
        remove(&rec.berth, &rec.env, &rec.ids, &rec.container);
        let _ = std::fs::remove_file(file);
    }
    0
}

/// `berth rm -f NAME` as the user, reporting a failure in one line.
fn remove(berth: &str, env: &[String], (uid, gid, groups): &(u32, u32, Vec<u32>), name: &str) {
    let mut c = berth_command(berth, env, (*uid, *gid, groups));
    match c.args(["rm", "-f", name]).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => ffi::error(&format!(
            "berth-spank: cannot remove container {name}: {}",
            last_line(&o.stderr).unwrap_or_default()
        )),
        Err(e) => ffi::error(&format!("berth-spank: cannot run {berth}: {e}")),
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
