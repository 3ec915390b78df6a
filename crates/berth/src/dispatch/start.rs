//! Starting a created container and being its monitor: cgroup, state records, signal
//! forwarding, exit code, clean-up. The `berth` process that starts a container stays as its
//! monitor; a detached one is a re-executed `berth __monitor ID` that logs to a file.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio as ProcStdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use berth_cgroups::{CgroupError, CgroupManager};
use berth_runtime::{Bundle, Cleaner, Container, Rootfs, RuntimeError, Stdio, Step};
use berth_store::{ContainerRecord, ContainerState, Store};

use super::{host, logging};
use crate::humanize;
use crate::printer::Printer;

pub enum Io {
    /// The terminal of this process: a pty with -t, stdin only with -i.
    Foreground { tty: bool, interactive: bool },
    /// Pipes relayed into the container log.
    Logged,
}

fn bundle(store: &Store, rec: &ContainerRecord) -> Result<Bundle> {
    let spec: oci_spec::runtime::Spec = serde::Deserialize::deserialize(&rec.spec)
        .context("container record holds an invalid spec")?;
    let affinity: Option<Vec<usize>> =
        serde_json::from_value(rec.host_config["CpuAffinity"].clone())
            .ok()
            .flatten();
    let paths = store.paths();
    Ok(Bundle {
        rootfs: if rec.layer_in_memory {
            Rootfs::OverlayInMemory {
                lower: rec.lower_dirs.clone(),
            }
        } else {
            Rootfs::Overlay {
                lower: rec.lower_dirs.clone(),
                upper: paths.container_upper(&rec.id),
                work: paths.container_work(&rec.id),
                discard: auto_remove(rec),
            }
        },
        spec,
        cpu_affinity: affinity,
        state_dir: paths.container_dir(&rec.id),
        init: rec.host_config["Init"].as_bool().unwrap_or(false),
        preserve_fds: Vec::new(),
        default_seccomp: rec
            .default_seccomp
            .clone()
            .map(|caps| berth_runtime::DefaultSeccomp {
                caps,
                cache: Some(super::runtime_dir().join("seccomp")),
            }),
        network_namespace: None,
    })
}

/// The container's cgroup, when limits were asked for and the hierarchy lets us create one.
fn cgroup(rec: &ContainerRecord, p: &Printer) -> Result<Option<Box<dyn CgroupManager>>> {
    let r = super::limits::resources(&rec.host_config);
    if r.is_empty() {
        return Ok(None);
    }
    let layout = berth_cgroups::detect()?;
    let mut m = berth_cgroups::manager_for(&rec.id[..12], &layout);
    match m.create() {
        Ok(()) => {}
        Err(e @ CgroupError::NotDelegated { .. }) => {
            p.warn(format!(
                "resource limits not enforced ({e}); CPU affinity still applies"
            ));
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    }
    match m.apply(&r) {
        Ok(warnings) => warnings.into_iter().for_each(|w| p.warn(w)),
        Err(e) => {
            let _ = m.destroy();
            return Err(e.into());
        }
    }
    Ok(Some(m))
}

fn dup(f: impl AsFd) -> Result<File> {
    Ok(File::from(f.as_fd().try_clone_to_owned()?))
}

/// Runs the container to its end as this process; returns Docker's exit code.
pub fn run(
    store: &Store,
    rec: &ContainerRecord,
    io: Io,
    sig_proxy: bool,
    p: &Printer,
    ready: Option<&mut dyn Write>,
) -> Result<i32> {
    // A container from a single-file image that ran before: its file was let go when it ended.
    super::local_image::reopen(&rec.host_config)?;
    let mut bundle = bundle(store, rec)?;
    if matches!(io, Io::Foreground { .. }) {
        let env = bundle
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.env().as_ref());
        bundle.preserve_fds = host::launcher_fds(env.into_iter().flatten());
    }
    // Held until this monitor ends: the job's shared user namespace stays while it runs.
    let mut userns = super::shared_userns::join_recorded(&mut bundle.spec, &rec.host_config, p);
    bundle.network_namespace = userns.as_mut().and_then(|h| h.net.take());
    // In a Slurm job a foreground container ends with the job step, whatever the tracking
    // plugin sees: see Container::end_with_parent.
    let foreground = matches!(io, Io::Foreground { .. });
    let end_with_parent = foreground && std::env::var_os("SLURM_JOB_ID").is_some();
    let mut logs: Vec<std::thread::JoinHandle<()>> = Vec::new();
    // `-a`: the streams this terminal gets; the others only reach the log.
    let attached = |stream: &str| rec.config[stream].as_bool().unwrap_or(true);
    let (attach_out, attach_err) = (attached("AttachStdout"), attached("AttachStderr"));
    let stdin = |interactive: bool| -> Result<File> {
        Ok(match interactive {
            true => dup(std::io::stdin())?,
            false => File::open("/dev/null")?,
        })
    };
    let (stdio, relays) = match io {
        Io::Foreground { tty: true, .. } => (Stdio::Tty, None),
        // Docker logs what a container it keeps writes in the foreground too (`logs` after
        // `run --name`): its output goes through pipes, to this terminal and the log. A `--rm`
        // container's log goes with it, and the hpc profile's program writes to the caller's
        // files directly, as it would outside a container.
        Io::Foreground {
            tty: false,
            interactive,
        } if tees_output(rec) => piped(stdin(interactive)?)?,
        Io::Foreground {
            tty: false,
            interactive: true,
        } if attach_out && attach_err => (Stdio::Inherit, None),
        Io::Foreground {
            tty: false,
            interactive,
        } => (
            Stdio::Files {
                stdin: Some(stdin(interactive)?),
                stdout: match attach_out {
                    true => dup(std::io::stdout())?,
                    false => null_sink()?,
                },
                stderr: match attach_err {
                    true => dup(std::io::stderr())?,
                    false => null_sink()?,
                },
            },
            None,
        ),
        Io::Logged if !logging::keeps_logs(&rec.host_config) => (
            Stdio::Files {
                stdin: Some(stdin(false)?),
                stdout: null_sink()?,
                stderr: null_sink()?,
            },
            None,
        ),
        Io::Logged => piped(stdin(false)?)?,
    };
    let cg = cgroup(rec, p);
    let mut state = ContainerState {
        status: "created".into(),
        monitor_pid: std::process::id() as i32,
        monitor_start: host::start_time(std::process::id() as i32).unwrap_or(0),
        boot_id: host::boot_id(),
        hostname: host::hostname(),
        cgroups: match &cg {
            Ok(Some(c)) => c.paths(),
            _ => Vec::new(),
        },
        ..Default::default()
    };
    let fail = |state: &mut ContainerState, code: i32, msg: String| -> Result<()> {
        state.status = "exited".into();
        state.exit_code = Some(code);
        state.error = msg;
        state.finished_at = humanize::rfc3339(humanize::now());
        store.set_container_state(&rec.id, state)?;
        Ok(())
    };
    // Limits that cannot be applied end the start as any other failure: a `--rm` container
    // goes, another is left exited with the reason.
    let mut cg = match cg {
        Ok(cg) => cg,
        Err(e) => {
            fail(&mut state, 125, format!("{e:#}"))?;
            cleanup(store, rec, None, (None, None));
            return Err(e);
        }
    };
    super::host::debug_assert_single_threaded();
    // Into the cgroup before exec, so the program starts inside its limits.
    let mut join_cgroup = |pid: i32| match &cg {
        Some(cg) => cg.add_pid(pid).map_err(|e| RuntimeError::Setup {
            step: Step::Cgroup,
            subject: pid.to_string(),
            source: std::io::Error::other(e),
        }),
        None => Ok(()),
    };
    state.started_at = humanize::rfc3339(humanize::now());
    // A `--rm` container's mounts are taken down by the process that deletes its files, after
    // this one has exited (see `cleanup`). A single-file image's mounts are left to go with
    // the container, as `release_lingering` expects.
    let deferred = auto_remove(rec) && rec.host_config["SquashfsMount"].is_null();
    let mut cleaner = None;
    let slot = deferred.then_some(&mut cleaner);
    let mut c = match Container::create_started(&bundle, stdio, &mut join_cgroup, slot) {
        Ok(c) => c,
        Err(e) => {
            fail(&mut state, e.exit_code(), e.to_string())?;
            // The cleaner, if it was started, holds the mounts: the files go after them.
            cleanup(store, rec, cg.as_mut(), (cleaner, None));
            return Err(e.into());
        }
    };
    if let Some((out_r, err_r)) = relays {
        let log = Arc::new(Mutex::new(logging::LogWriter::open(
            store.paths().container_log(&rec.id),
            &rec.host_config,
            &rec.config,
        )?));
        let out = (foreground && attach_out)
            .then(|| dup(std::io::stdout()))
            .transpose()?;
        let err = (foreground && attach_err)
            .then(|| dup(std::io::stderr()))
            .transpose()?;
        logs.push(relay(out_r, "stdout", log.clone(), out));
        logs.push(relay(err_r, "stderr", log, err));
    }
    let mounts = if deferred && cleaner.is_none() {
        c.take_mount_namespace()
    } else {
        None
    };
    state.pid = c.pid();
    // Written while the program runs rather than before it may: the record's commands see a
    // "created" container for those few microseconds, but the program does not wait for it.
    state.status = "running".into();
    store.set_container_state(&rec.id, &state)?;
    if let Some(w) = ready {
        let _ = writeln!(w, "started {}", c.pid());
        let _ = w.flush();
    }
    if end_with_parent {
        c.end_with_parent();
    }
    let code = c.wait(sig_proxy)?;
    if foreground {
        end_like_the_program(&rec.host_config);
    }
    for l in logs {
        let _ = l.join();
    }
    // A record about to be removed needs no final state: nobody could read it.
    if !auto_remove(rec) {
        state.status = "exited".into();
        state.exit_code = Some(code);
        state.finished_at = humanize::rfc3339(humanize::now());
        store.set_container_state(&rec.id, &state)?;
    }
    cleanup(store, rec, cg.as_mut(), (cleaner, mounts));
    Ok(code)
}

/// The signal this process ends by once its work is done (0: it exits with its code).
static END_BY_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// In the hpc profile a container killed by signal N ends its foreground `berth run` or
/// `berth exec` by the same signal, so that a batch system sees what it sees for the bare
/// program (Slurm records `0:11` and srun names the signal, where an exit status 139 would be
/// recorded as `139:0`); a shell's `$?` is 128+N either way. The docker profile keeps Docker's
/// exit code 128+N.
pub fn end_like_the_program(host_config: &serde_json::Value) {
    if host_config["Profile"].as_str() == Some("hpc") {
        if let Some(sig) = berth_runtime::last_exit_signal() {
            END_BY_SIGNAL.store(sig, Ordering::Relaxed);
        }
    }
}

/// Ends this process as [`end_like_the_program`] decided, if it did; returns otherwise.
pub fn end_by_signal_if_due() {
    let sig = END_BY_SIGNAL.load(Ordering::Relaxed);
    if sig != 0 {
        let _ = std::io::stdout().flush();
        berth_runtime::die_by_signal(sig);
    }
}

/// The container's end: its cgroup goes, and a `--rm` container's files are deleted once this
/// process has exited, by the cleaner started with it (which holds its mount namespace), or
/// else by a process started now and given `mounts`, the mount namespace this process holds.
fn cleanup(
    store: &Store,
    rec: &ContainerRecord,
    cg: Option<&mut Box<dyn CgroupManager>>,
    (cleaner, mounts): (Option<Cleaner>, Option<OwnedFd>),
) {
    if let Some(cg) = cg {
        let _ = cg.destroy();
    }
    super::local_image::release_lingering(&rec.host_config);
    if auto_remove(rec) {
        // The exit status need not wait for the files: once unpublished, the container is gone
        // for every command, and a detached process deletes what is left.
        if let Ok(doomed) = store.unpublish_container(rec) {
            let store = store.clone();
            let work = move || {
                let _ = store.delete_unpublished(&doomed);
            };
            match cleaner {
                Some(cleaner) => cleaner.hand_over(work),
                // Without a process of its own, the work has been done here.
                None => {
                    let _ = berth_runtime::in_background(mounts, work);
                }
            }
        }
    }
}

fn auto_remove(rec: &ContainerRecord) -> bool {
    rec.host_config["AutoRemove"].as_bool() == Some(true)
}

/// Copies one stream of the container into the JSON-lines log, one record per line, and its
/// bytes as they come to `tee` (this terminal, for a container in the foreground).
fn relay(
    mut r: std::io::PipeReader,
    stream: &'static str,
    log: Arc<Mutex<logging::LogWriter>>,
    mut tee: Option<File>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0; 64 * 1024];
        let mut line = Vec::new();
        let record = |line: &[u8]| {
            let text = String::from_utf8_lossy(line);
            if let Ok(mut f) = log.lock() {
                let _ = f.record(stream, &text, &humanize::now_nanos());
            }
        };
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            // The terminal gets bytes as they come; the log whole lines, as Docker's.
            if let Some(t) = &mut tee {
                let _ = t.write_all(&buf[..n]);
            }
            let mut rest = &buf[..n];
            while let Some(end) = rest.iter().position(|&b| b == b'\n') {
                line.extend_from_slice(&rest[..=end]);
                record(&line);
                line.clear();
                rest = &rest[end + 1..];
            }
            line.extend_from_slice(rest);
        }
        if !line.is_empty() {
            record(&line);
        }
    })
}

/// The container's stdout and stderr through pipes, whose read ends the relays copy into the
/// log (and to this terminal).
fn piped(stdin: File) -> Result<(Stdio, Option<(std::io::PipeReader, std::io::PipeReader)>)> {
    let (out_r, out_w) = std::io::pipe()?;
    let (err_r, err_w) = std::io::pipe()?;
    let stdio = Stdio::Files {
        stdin: Some(stdin),
        stdout: File::from(OwnedFd::from(out_w)),
        stderr: File::from(OwnedFd::from(err_w)),
    };
    Ok((stdio, Some((out_r, err_r))))
}

/// `/dev/null` to write to: where output nobody keeps goes.
fn null_sink() -> std::io::Result<File> {
    OpenOptions::new().write(true).open("/dev/null")
}

/// Whether a foreground container's output also goes to its log: Docker's profile, a
/// container that is kept, a log driver that keeps logs.
fn tees_output(rec: &ContainerRecord) -> bool {
    !auto_remove(rec)
        && rec.host_config["Profile"].as_str() != Some("hpc")
        && logging::keeps_logs(&rec.host_config)
}

/// Starts `berth __monitor ID` in the background and waits until the container runs.
pub fn spawn_monitor(store_root: &std::path::Path, id: &str) -> Result<i32> {
    let exe: PathBuf = std::env::current_exe().context("cannot find the berth binary")?;
    let mut child = Command::new(exe)
        .arg("--root")
        .arg(store_root)
        .arg("__monitor")
        .arg(id)
        .stdin(ProcStdio::null())
        .stdout(ProcStdio::piped())
        .stderr(ProcStdio::piped())
        .process_group(0)
        .spawn()
        .context("cannot start the container monitor")?;
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line)?;
    if let Some(pid) = line.trim().strip_prefix("started ") {
        return Ok(pid.parse().unwrap_or(0));
    }
    if let Some(rest) = line.trim().strip_prefix("failed ") {
        let (code, msg) = rest.split_once(' ').unwrap_or((rest, ""));
        let _ = child.wait();
        return Err(StartFailed {
            code: code.parse().unwrap_or(125),
            message: msg.to_string(),
        }
        .into());
    }
    let mut err = String::new();
    let _ = child.stderr.take().expect("piped").read_to_string(&mut err);
    let _ = child.wait();
    let msg = err.trim().trim_start_matches("Error: ").to_string();
    if msg.is_empty() {
        bail!("the container monitor exited before the container started");
    }
    bail!("{msg}")
}

use std::os::unix::process::CommandExt;

/// A container that could not start, with the exit code Docker gives (125, 126 or 127; 1 for
/// options its client refuses before asking for anything).
#[derive(Debug)]
pub struct StartFailed {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for StartFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StartFailed {}

/// The exit code an error from starting a container maps to: the runtime's (126, 127) or a
/// start's own, else `otherwise`.
pub fn exit_code_of(e: &anyhow::Error, otherwise: i32) -> i32 {
    for c in e.chain() {
        if let Some(r) = c.downcast_ref::<berth_runtime::RuntimeError>() {
            return r.exit_code();
        }
        if let Some(s) = c.downcast_ref::<StartFailed>() {
            return s.code;
        }
    }
    otherwise
}
