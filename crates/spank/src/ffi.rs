//! The part of `<slurm/spank.h>` this plugin uses, declared by hand, and safe wrappers over it.
//!
//! The functions are not linked against libslurm: slurmstepd, srun, sbatch and salloc export
//! them to the plugins they load, so they resolve when Slurm opens the library.

use std::ffi::{c_char, c_int, CStr, CString};

/// `struct spank_handle *`, opaque.
#[repr(C)]
pub struct RawHandle {
    _private: [u8; 0],
}

/// `spank_opt_cb_f`.
pub type OptionCallback = extern "C" fn(val: c_int, optarg: *const c_char, remote: c_int) -> c_int;

/// `struct spank_option`.
#[repr(C)]
pub struct RawOption {
    pub name: *const c_char,
    pub arginfo: *const c_char,
    pub usage: *const c_char,
    pub has_arg: c_int,
    pub val: c_int,
    pub cb: Option<OptionCallback>,
}

/// `enum spank_item`, the items used here.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)]
enum Item {
    JobUid = 0,
    JobGid = 1,
    JobId = 2,
    JobStepId = 3,
    JobNnodes = 4,
    JobNodeId = 5,
    JobLocalTaskCount = 6,
    JobTotalTaskCount = 7,
    JobNcpus = 8,
    JobArgv = 9,
    JobEnv = 10,
    TaskId = 11,
}

/// `enum spank_context`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// srun.
    Local,
    /// slurmstepd, where the tasks run.
    Remote,
    /// sbatch, salloc.
    Allocator,
    /// A job's prolog or epilog, run by slurmd as root.
    JobScript,
    /// slurmd itself.
    Other,
}

const ESPANK_SUCCESS: c_int = 0;

extern "C" {
    fn spank_context() -> c_int;
    fn spank_option_register(sp: *mut RawHandle, opt: *mut RawOption) -> c_int;
    fn spank_get_item(sp: *mut RawHandle, item: Item, ...) -> c_int;
    fn slurm_error(fmt: *const c_char, ...);
    fn slurm_debug(fmt: *const c_char, ...);
}

/// The context the plugin was loaded in.
pub fn context() -> Context {
    // SAFETY: takes no arguments and only reads the plugin stack's global state.
    match unsafe { spank_context() } {
        1 => Context::Local,
        2 => Context::Remote,
        3 => Context::Allocator,
        5 => Context::JobScript,
        _ => Context::Other,
    }
}

fn c_line(msg: &str) -> CString {
    CString::new(msg.replace('\0', " ")).unwrap_or_default()
}

/// Logs an error: in slurmstepd it reaches the step's log and srun's stderr.
pub fn error(msg: &str) {
    let msg = c_line(msg);
    // SAFETY: a constant "%s" format with one NUL-terminated string argument.
    unsafe { slurm_error(c"%s".as_ptr(), msg.as_ptr()) }
}

/// Logs at debug level.
pub fn debug(msg: &str) {
    let msg = c_line(msg);
    // SAFETY: a constant "%s" format with one NUL-terminated string argument.
    unsafe { slurm_debug(c"%s".as_ptr(), msg.as_ptr()) }
}

/// Copies `s` to a C string that lives as long as the process (SPANK keeps option pointers).
fn leak(s: &str) -> *const c_char {
    CString::new(s).unwrap_or_default().into_raw()
}

/// A handle passed to a callback; valid for that callback only.
pub struct Spank(*mut RawHandle);

impl Spank {
    /// Wraps the handle Slurm passed to a callback.
    pub fn new(raw: *mut RawHandle) -> Spank {
        Spank(raw)
    }

    /// Registers `--NAME[=ARG]` with `cb`, called with `val` when the option is given.
    pub fn register(
        &self,
        name: &str,
        arginfo: Option<&str>,
        usage: &str,
        val: i32,
        cb: OptionCallback,
    ) -> Result<(), String> {
        // Leaked on purpose: Slurm may keep the strings, and options are registered once per
        // process.
        let opt = Box::into_raw(Box::new(RawOption {
            name: leak(name),
            arginfo: arginfo.map(leak).unwrap_or(std::ptr::null()),
            usage: leak(usage),
            has_arg: c_int::from(arginfo.is_some()),
            val,
            cb: Some(cb),
        }));
        // SAFETY: `opt` points to a valid, never freed spank_option with NUL-terminated
        // strings; the handle is the one Slurm passed to slurm_spank_init.
        let rc = unsafe { spank_option_register(self.0, opt) };
        if rc == ESPANK_SUCCESS {
            Ok(())
        } else {
            Err(format!("cannot register option --{name} (error {rc})"))
        }
    }

    fn u32_item(&self, item: Item) -> Option<u32> {
        let mut v: u32 = 0;
        // SAFETY: these items take one `uint32_t *`, which points to a live local.
        let rc = unsafe { spank_get_item(self.0, item, &mut v as *mut u32) };
        (rc == ESPANK_SUCCESS).then_some(v)
    }

    /// The job id.
    pub fn job_id(&self) -> Option<u32> {
        self.u32_item(Item::JobId)
    }

    /// The step id.
    pub fn step_id(&self) -> Option<u32> {
        self.u32_item(Item::JobStepId)
    }

    /// The task's id on this node, in a task callback.
    pub fn local_task_id(&self) -> Option<u32> {
        let mut id: c_int = 0;
        // SAFETY: S_TASK_ID takes an `int *`, a live local.
        let rc = unsafe { spank_get_item(self.0, Item::TaskId, &mut id as *mut c_int) };
        (rc == ESPANK_SUCCESS).then_some(id as u32)
    }

    /// The task's command line (in a task callback) or the step's.
    pub fn argv(&self) -> Option<Vec<String>> {
        let mut argc: c_int = 0;
        let mut argv: *mut *mut c_char = std::ptr::null_mut();
        // SAFETY: S_JOB_ARGV takes an `int *` and a `char ***`, both live locals.
        let rc = unsafe {
            spank_get_item(
                self.0,
                Item::JobArgv,
                &mut argc as *mut c_int,
                &mut argv as *mut *mut *mut c_char,
            )
        };
        if rc != ESPANK_SUCCESS || argv.is_null() {
            return None;
        }
        // SAFETY: Slurm returned an array of `argc` valid C strings, which stays unchanged
        // for the rest of this callback.
        unsafe { Some(strings(argv, Some(argc as usize))) }
    }

    /// The job's (in a task callback, the task's) environment, as `NAME=value` strings.
    pub fn env(&self) -> Option<Vec<String>> {
        let mut env: *mut *mut c_char = std::ptr::null_mut();
        // SAFETY: S_JOB_ENV takes a `char ***`, a live local.
        let rc = unsafe { spank_get_item(self.0, Item::JobEnv, &mut env as *mut *mut *mut c_char) };
        if rc != ESPANK_SUCCESS || env.is_null() {
            return None;
        }
        // SAFETY: Slurm returned a NULL-terminated array of valid C strings, unchanged for the
        // rest of this callback.
        unsafe { Some(strings(env, None)) }
    }
}

/// Copies a C string array: `n` entries, or up to the first NULL.
///
/// # Safety
/// `array` must point to `n` valid C strings, or to a NULL-terminated array of them.
unsafe fn strings(array: *mut *mut c_char, n: Option<usize>) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        if n.is_some_and(|n| i >= n) {
            break;
        }
        // SAFETY: `i` is within the array, by the caller's promise.
        let p = unsafe { *array.add(i) };
        if p.is_null() {
            break;
        }
        // SAFETY: each entry is a valid NUL-terminated string, by the caller's promise.
        out.push(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned());
        i += 1;
    }
    out
}

/// Turns a C string from Slurm into an owned one.
///
/// # Safety
/// `p` must be NULL or a valid NUL-terminated string.
pub unsafe fn opt_string(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated, by the caller's promise.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// The plugin's arguments from plugstack.conf.
///
/// # Safety
/// `av` must hold `ac` valid C strings.
pub unsafe fn plugin_args(ac: c_int, av: *mut *mut c_char) -> Vec<String> {
    (0..ac.max(0) as usize)
        // SAFETY: `i < ac` and each entry is a valid C string, by the caller's promise.
        .filter_map(|i| unsafe { opt_string(*av.add(i)) })
        .collect()
}
