use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_cli::{AttachArgs, ExecArgs, LogsArgs};
use berth_runtime::{ExecOptions, Stdio};

use crate::dispatch::host::effective_status;
use crate::dispatch::logging;
use crate::dispatch::start::StartFailed;
use crate::printer::Printer;
use crate::settings::Settings;

/// The variables MPI launchers give each rank (Open MPI and PRRTE, PMIx and PMI, MPICH's Hydra,
/// Intel MPI).
fn is_launcher_variable(name: &str) -> bool {
    [
        "OMPI_",
        "OPAL_",
        "PRTE_",
        "PMIX_",
        "PMI_",
        "HYDRA_",
        "MPI_LOCAL",
        "I_MPI_",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

pub fn exec(s: &Settings, a: &ExecArgs) -> Result<u8> {
    let store = s.open_store()?;
    let rec = store.lookup_container(&a.container)?;
    let st = store.container_state(&rec.id)?;
    match effective_status(&st).as_str() {
        "running" => {}
        "paused" => bail!(
            "container {} is paused, unpause the container before exec",
            rec.name
        ),
        _ => bail!("container {} is not running", rec.name),
    }
    let spec: oci_spec::runtime::Spec = serde::Deserialize::deserialize(&rec.spec)?;
    // An exec'd process is confined like the container's own.
    let default_seccomp = rec
        .default_seccomp
        .as_deref()
        .map(berth_runtime::default_seccomp);
    let seccomp = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .or(default_seccomp.as_ref());
    let mut process = spec
        .process()
        .clone()
        .context("container spec has no process")?;
    process.set_args(Some(a.command.clone()));
    let mut env = process.env().clone().unwrap_or_default();
    // In the hpc profile an MPI launcher may start ranks as `berth exec` into one container per
    // node (keeping single-copy transfers, which need one user namespace): its variables pass,
    // as they would to the bare program. `-e` still wins.
    if rec.host_config["Profile"].as_str() == Some("hpc") {
        for (k, v) in std::env::vars().filter(|(k, _)| is_launcher_variable(k)) {
            env.retain(|x| x.split('=').next() != Some(k.as_str()));
            env.push(format!("{k}={v}"));
        }
    }
    let mut given = crate::dispatch::run_flags::read_env_files(&a.env_file)?;
    given.extend(a.env.iter().cloned());
    for e in &given {
        let kv = match e.split_once('=') {
            Some(_) => e.clone(),
            None => match std::env::var(e) {
                Ok(v) => format!("{e}={v}"),
                Err(_) => continue,
            },
        };
        let key = kv.split('=').next().unwrap_or_default().to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(kv);
    }
    process.set_env(Some(env));
    if let Some(w) = &a.workdir {
        process.set_cwd(w.into());
    }
    if let Some(u) = &a.user {
        set_user(&mut process, u, st.pid, &a.env)?;
    }
    if a.privileged {
        process.set_capabilities(Some(berth_oci::all_capabilities(process.user().uid())));
    }
    process.set_terminal(Some(a.tty && !a.detach));
    let affinity: Option<Vec<usize>> =
        serde_json::from_value(rec.host_config["CpuAffinity"].clone())
            .ok()
            .flatten();
    // Joined like the container's own processes: its seccomp filter, CPUs and cgroups.
    let preserve = crate::dispatch::host::launcher_fds(process.env().iter().flatten());
    let mut opts = ExecOptions {
        seccomp,
        cpu_affinity: affinity.as_deref(),
        cgroups: &st.cgroups,
        forward_signals: true,
        preserve_fds: &preserve,
    };
    if a.detach {
        let devnull = || std::fs::OpenOptions::new().write(true).open("/dev/null");
        let stdio = Stdio::Files {
            stdin: Some(std::fs::File::open("/dev/null")?),
            stdout: devnull()?,
            stderr: devnull()?,
        };
        opts.forward_signals = false;
        crate::dispatch::host::debug_assert_single_threaded();
        berth_runtime::exec_detached(st.pid, &process, stdio, &opts).map_err(exec_failed)?;
        return Ok(0);
    }
    let stdio = if a.tty {
        Stdio::Tty
    } else if a.interactive {
        Stdio::Inherit
    } else {
        Stdio::Files {
            stdin: Some(std::fs::File::open("/dev/null")?),
            stdout: std::fs::File::from(
                std::os::fd::AsFd::as_fd(&std::io::stdout()).try_clone_to_owned()?,
            ),
            stderr: std::fs::File::from(
                std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned()?,
            ),
        }
    };
    crate::dispatch::host::debug_assert_single_threaded();
    let code = berth_runtime::exec_confined(st.pid, &process, stdio, &opts).map_err(exec_failed)?;
    crate::dispatch::start::end_like_the_program(&rec.host_config);
    Ok(code.clamp(0, 255) as u8)
}

/// Docker answers 126 whenever the process could not be started in the container, a missing
/// command included (where `run` says 127).
fn exec_failed(e: berth_runtime::RuntimeError) -> anyhow::Error {
    StartFailed {
        code: 126,
        message: e.to_string(),
    }
    .into()
}

/// `exec -u`: resolved as `run` resolves `-u`, but in the running container's own account
/// files (which may differ from the image's), seen through `/proc/PID/root`.
fn set_user(
    process: &mut oci_spec::runtime::Process,
    spec: &str,
    pid: i32,
    env_flags: &[String],
) -> Result<()> {
    let read = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/root/etc/{f}")).ok();
    let files = berth_oci::ImageFiles {
        passwd: read("passwd"),
        group: read("group"),
    };
    // Docker answers 126 when exec cannot become the user.
    let u = berth_oci::resolve_user(spec, &files).map_err(|e| StartFailed {
        code: 126,
        message: e.to_string(),
    })?;
    let mut user = process.user().clone();
    user.set_uid(u.uid);
    user.set_gid(u.gid);
    user.set_additional_gids(Some(u.additional_gids));
    process.set_user(user);
    // Root keeps the container's capabilities in effect, anyone else starts with none
    // effective, as in `run`.
    if let Some(mut caps) = process.capabilities().clone() {
        caps.set_effective(if u.uid == 0 {
            caps.permitted().clone()
        } else {
            Some(Default::default())
        });
        process.set_capabilities(Some(caps));
    }
    // HOME follows the user, as the runtime sets it for Docker, unless -e sets it.
    if !env_flags
        .iter()
        .any(|e| e.split('=').next() == Some("HOME"))
    {
        let mut env = process.env().clone().unwrap_or_default();
        env.retain(|e| !e.starts_with("HOME="));
        env.push(format!("HOME={}", u.home));
        process.set_env(Some(env));
    }
    Ok(())
}

pub fn logs(s: &Settings, a: &LogsArgs) -> Result<u8> {
    let store = s.open_store()?;
    let rec = store.lookup_container(&a.container)?;
    if !logging::keeps_logs(&rec.host_config) {
        bail!("{}", logging::NOT_READABLE);
    }
    let path = store.paths().container_log(&rec.id);
    let p = Printer::new(false);
    let f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if a.follow {
                bail!(
                    "container {} has no log: only detached containers (-d) are logged",
                    rec.name
                );
            }
            return Ok(0);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let tail: Option<usize> = match a.tail.as_str() {
        "all" | "-1" => None,
        n => Some(n.parse().with_context(|| format!("invalid --tail {n:?}"))?),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    let point = |flag: &str, v: &Option<String>| -> Result<Option<i128>> {
        v.as_deref()
            .map(|s| {
                crate::humanize::parse_point_in_time(s, now).with_context(|| {
                    format!("invalid {flag} {s:?}: a timestamp, Unix seconds or a duration (42m)")
                })
            })
            .transpose()
    };
    let (since, until) = (point("--since", &a.since)?, point("--until", &a.until)?);
    // A line's time, from its record; lines without one are kept.
    let in_window = |line: &str| -> bool {
        let t = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| {
                v["time"]
                    .as_str()
                    .and_then(crate::humanize::parse_rfc3339_nanos)
            });
        t.is_none_or(|t| since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u))
    };
    // Rotated files first (`--log-opt max-size`), then the current one, already open.
    let mut lines = Vec::new();
    for old in logging::files_oldest_first(&path)
        .iter()
        .rev()
        .skip(1)
        .rev()
    {
        if let Ok(old) = std::fs::File::open(old) {
            lines.extend(BufReader::new(old).lines().map_while(Result::ok));
        }
    }
    lines.extend(BufReader::new(&f).lines().map_while(Result::ok));
    lines.retain(|l| in_window(l));
    if let Some(n) = tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let emit = |line: &str| {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        let mut text = v["log"].as_str().unwrap_or_default().to_string();
        if a.details {
            text = format!("{}{text}", logging::details(&v));
        }
        if a.timestamps {
            text = format!("{} {text}", v["time"].as_str().unwrap_or_default());
        }
        if v["stream"] == "stderr" {
            use std::io::Write;
            let _ = std::io::stderr().write_all(text.as_bytes());
        } else {
            p.raw(&text);
        }
    };
    for l in &lines {
        emit(l);
    }
    if a.follow {
        let mut tail = Follower::at_end(path, f)?;
        loop {
            if tail.read_new(|line| {
                if in_window(line) {
                    emit(line)
                }
            })? {
                continue;
            }
            let st = store.container_state(&rec.id)?;
            let past_until = until.is_some_and(|u| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .is_ok_and(|d| d.as_nanos() as i128 >= u)
            });
            if effective_status(&st) == "exited" || past_until {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(0)
}

/// Reads a container's log as it grows, across rotations (`--log-opt max-size`).
struct Follower {
    path: std::path::PathBuf,
    file: std::fs::File,
    pos: u64,
}

impl Follower {
    /// From the end of `file`, the log at `path` as now open.
    fn at_end(path: std::path::PathBuf, mut file: std::fs::File) -> Result<Follower> {
        let pos = file.seek(SeekFrom::End(0))?;
        Ok(Follower { path, file, pos })
    }

    /// Hands every new whole line to `emit`; false when there was none.
    fn read_new(&mut self, mut emit: impl FnMut(&str)) -> Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let before = self.pos;
        // The open file to its end, even once rotation renamed it away.
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(self.pos);
        if len > self.pos {
            self.file.seek(SeekFrom::Start(self.pos))?;
            let mut r = BufReader::new(&self.file);
            let mut line = String::new();
            while r.read_line(&mut line)? > 0 {
                if !line.ends_with('\n') {
                    break;
                }
                self.pos += line.len() as u64;
                emit(line.trim_end());
                line.clear();
            }
        }
        if self.pos > before {
            return Ok(true);
        }
        let rotated = match (self.file.metadata(), std::fs::metadata(&self.path)) {
            (Ok(open), Ok(now)) => open.ino() != now.ino(),
            _ => false,
        };
        if rotated {
            self.file = std::fs::File::open(&self.path)?;
            self.pos = 0;
        }
        Ok(rotated)
    }
}

/// `attach`: the output of a running detached container from now on, with this command's
/// signals passed on (`--sig-proxy`), until it ends; exits with its exit code, as Docker's
/// does.
pub fn attach(s: &Settings, a: &AttachArgs) -> Result<u8> {
    let store = s.open_store()?;
    let rec = store.lookup_container(&a.container)?;
    let st = store.container_state(&rec.id)?;
    if !matches!(effective_status(&st).as_str(), "running" | "paused") {
        bail!("You cannot attach to a stopped container, start it first");
    }
    if !logging::keeps_logs(&rec.host_config) {
        bail!("{}", logging::NOT_READABLE);
    }
    let path = store.paths().container_log(&rec.id);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut tail = Follower::at_end(path, file)?;
    let signals = if a.sig_proxy {
        Some(berth_runtime::RelayedSignals::new()?)
    } else {
        None
    };
    let p = Printer::new(false);
    let emit = |line: &str| {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        let text = v["log"].as_str().unwrap_or_default();
        if v["stream"] == "stderr" {
            use std::io::Write;
            let _ = std::io::stderr().write_all(text.as_bytes());
        } else {
            p.raw(text);
        }
    };
    loop {
        if tail.read_new(emit)? {
            continue;
        }
        let st = store.container_state(&rec.id)?;
        if effective_status(&st) == "exited" {
            // What it wrote last, before its monitor recorded the end.
            while tail.read_new(emit)? {}
            return Ok(st.exit_code.unwrap_or(0).clamp(0, 255) as u8);
        }
        match &signals {
            Some(sig) => {
                let ready = berth_runtime::handoff::wait_readable(
                    &[sig.fd()],
                    Some(Duration::from_millis(100)),
                )?;
                if ready.first() == Some(&true) {
                    sig.relay_to(st.pid);
                }
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
