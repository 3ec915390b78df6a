use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_cli::{
    ContainerInspectArgs, ContainersArgs, KillArgs, PsArgs, RenameArgs, RmArgs, StopArgs,
};
use berth_store::{ContainerRecord, ContainerState, Store};
use serde_json::{json, Value};

use crate::dispatch::host::{self, effective_status, monitor_alive};
use crate::humanize;
use crate::printer::Printer;
use crate::settings::Settings;

/// Runs `f` for each named container like Docker: errors are reported, the rest go on.
fn each(
    s: &Settings,
    names: &[String],
    mut f: impl FnMut(&Store, &ContainerRecord) -> Result<()>,
) -> Result<u8> {
    let store = s.open_store()?;
    let mut status = 0;
    for n in names {
        let r = store
            .lookup_container(n)
            .map_err(anyhow::Error::from)
            .and_then(|rec| f(&store, &rec));
        if let Err(e) = r {
            crate::printer::error(&e, false);
            status = 1;
        }
    }
    Ok(status)
}

fn running(store: &Store, rec: &ContainerRecord) -> Result<ContainerState> {
    let st = store.container_state(&rec.id)?;
    match effective_status(&st).as_str() {
        "running" | "paused" => Ok(st),
        other => bail!("container {} is not running (status: {other})", rec.name),
    }
}

fn signal(name: &str) -> Result<i32> {
    berth_runtime::signal_by_name(name).with_context(|| format!("invalid signal {name:?}"))
}

/// Waits until the container's monitor records an exit (or disappears).
///
/// The record is looked at again after 1 ms, then at doubling intervals up to 20 ms: a killed
/// container's monitor records its end within a millisecond or two, and `rm -f` (which a Slurm
/// step's end runs for its container) should not sleep far past that.
fn wait_exit(store: &Store, id: &str, timeout: Option<Duration>) -> Result<Option<i32>> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let st = store.container_state(id)?;
        if effective_status(&st) == "exited" {
            return Ok(Some(st.exit_code.unwrap_or(-1)));
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// `signal`: `--signal`, instead of the container's own stop signal.
fn stop_one(
    store: &Store,
    rec: &ContainerRecord,
    timeout: Option<u64>,
    signal_name: Option<&str>,
) -> Result<()> {
    let st = store.container_state(&rec.id)?;
    let sig =
        signal(signal_name.unwrap_or(rec.config["StopSignal"].as_str().unwrap_or("SIGTERM")))?;
    if !matches!(effective_status(&st).as_str(), "running" | "paused") {
        return Ok(());
    }
    let t = timeout.unwrap_or(rec.config["StopTimeout"].as_u64().unwrap_or(10));
    if st.status == "paused" {
        let _ = unpause_one(store, rec);
    }
    berth_runtime::kill(st.pid, sig)?;
    if wait_exit(store, &rec.id, Some(Duration::from_secs(t)))?.is_none() {
        let _ = berth_runtime::kill(st.pid, 9);
        wait_exit(store, &rec.id, Some(Duration::from_secs(10)))?;
    }
    Ok(())
}

pub fn stop(s: &Settings, a: &StopArgs) -> Result<u8> {
    let p = Printer::new(false);
    each(s, &a.containers, |store, rec| {
        stop_one(store, rec, a.timeout, a.signal.as_deref())?;
        p.out(&rec.name);
        Ok(())
    })
}

/// `berth rename`: Docker's rules for the new name; a running container keeps running.
pub fn rename(s: &Settings, a: &RenameArgs) -> Result<u8> {
    let valid = a.new_name.len() > 1
        && a.new_name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && a.new_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !valid {
        bail!(
            "invalid container name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
            a.new_name
        );
    }
    let store = s.open_store()?;
    let rec = store.lookup_container(&a.container)?;
    if rec.name == a.new_name {
        bail!(
            "renaming container {}: the new name is the same as the old",
            rec.name
        );
    }
    store.rename_container(&rec, &a.new_name)?;
    Ok(0)
}

/// `berth restart`: stopped as `stop` does (when running), then started with a new monitor.
pub fn restart(s: &Settings, a: &StopArgs) -> Result<u8> {
    let p = Printer::new(false);
    each(s, &a.containers, |store, rec| {
        stop_one(store, rec, a.timeout, a.signal.as_deref())?;
        crate::dispatch::start::spawn_monitor(store.paths().root(), &rec.id)?;
        p.out(&rec.name);
        Ok(())
    })
}

pub fn kill(s: &Settings, a: &KillArgs) -> Result<u8> {
    let p = Printer::new(false);
    let sig = signal(&a.signal)?;
    each(s, &a.containers, |store, rec| {
        let st = running(store, rec)?;
        berth_runtime::kill(st.pid, sig)?;
        p.out(&rec.name);
        Ok(())
    })
}

pub fn rm(s: &Settings, a: &RmArgs) -> Result<u8> {
    let p = Printer::new(false);
    each(s, &a.containers, |store, rec| {
        let st = store.container_state(&rec.id)?;
        if matches!(effective_status(&st).as_str(), "running" | "paused") {
            if !a.force {
                bail!("cannot remove container {}: container is running: stop the container before removing or use -f", rec.name);
            }
            let _ = berth_runtime::kill(st.pid, 9);
            wait_exit(store, &rec.id, Some(Duration::from_secs(10)))?;
        }
        store.remove_container(&rec.id)?;
        // What a container that never ran still has of its single-file image (its mount
        // directory; a shared FUSE mount nobody else holds) goes with it.
        crate::dispatch::local_image::release(&rec.host_config);
        p.out(&rec.name);
        Ok(())
    })
}

pub fn wait(s: &Settings, a: &ContainersArgs) -> Result<u8> {
    let p = Printer::new(false);
    each(s, &a.containers, |store, rec| {
        let code = wait_exit(store, &rec.id, None)?.unwrap_or(-1);
        p.out(code);
        Ok(())
    })
}

/// The one-letter state of a process (`R`, `S`, `T`...), `None` once it is gone.
fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Every process in the container: those whose pid namespace is the container init's.
pub fn container_pids(pid: i32) -> Vec<i32> {
    let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/pid")) else {
        return vec![pid];
    };
    let host_ns = std::fs::read_link("/proc/self/ns/pid").ok();
    if Some(&ns) == host_ns.as_ref() {
        // Shared pid namespace (hpc profile): the main process and its descendants.
        return descendants(pid);
    }
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() {
                if std::fs::read_link(format!("/proc/{p}/ns/pid"))
                    .ok()
                    .as_ref()
                    == Some(&ns)
                {
                    out.push(p);
                }
            }
        }
    }
    out
}

fn descendants(root: i32) -> Vec<i32> {
    let mut parent = std::collections::HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() {
                if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
                    if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) {
                        if let Some(pp) = rest
                            .split_whitespace()
                            .nth(1)
                            .and_then(|x| x.parse::<i32>().ok())
                        {
                            parent.insert(p, pp);
                        }
                    }
                }
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i];
        out.extend(parent.iter().filter(|(_, pp)| **pp == cur).map(|(p, _)| *p));
        i += 1;
    }
    out
}

pub(super) fn set_paused(store: &Store, rec: &ContainerRecord, paused: bool) -> Result<()> {
    let mut st = running(store, rec)?;
    // The freezer of the container's cgroup when it has one; otherwise the whole process
    // tree is stopped with SIGSTOP (and continued with SIGCONT).
    let frozen = !st.cgroups.is_empty()
        && berth_cgroups::detect().is_ok_and(|layout| {
            let m = berth_cgroups::manager_at(&rec.id[..12], &layout, &st.cgroups);
            if paused { m.freeze() } else { m.thaw() }.is_ok()
        });
    if !frozen {
        let sig = if paused { 19 } else { 18 };
        let pids = container_pids(st.pid);
        for &pid in &pids {
            let _ = berth_runtime::kill(pid, sig);
        }
        // As with the freezer, return once they are stopped: a process only stops when it
        // next runs, which on a busy machine may take a while.
        let deadline = Instant::now() + Duration::from_secs(5);
        while paused
            && Instant::now() < deadline
            && pids
                .iter()
                .any(|&p| process_state(p).is_some_and(|s| !matches!(s, 'T' | 't' | 'Z' | 'X')))
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    st.status = if paused { "paused" } else { "running" }.into();
    store.set_container_state(&rec.id, &st)?;
    Ok(())
}

fn unpause_one(store: &Store, rec: &ContainerRecord) -> Result<()> {
    set_paused(store, rec, false)
}

pub fn pause(s: &Settings, a: &ContainersArgs, paused: bool) -> Result<u8> {
    let p = Printer::new(false);
    each(s, &a.containers, |store, rec| {
        let st = running(store, rec)?;
        match (paused, st.status.as_str()) {
            (true, "paused") => bail!("container {} is already paused", rec.name),
            (false, "running") => bail!("container {} is not paused", rec.name),
            _ => {}
        }
        set_paused(store, rec, paused)?;
        p.out(&rec.name);
        Ok(())
    })
}

fn status_text(st: &ContainerState) -> String {
    match effective_status(st).as_str() {
        "running" => format!(
            "Up {}",
            humanize::since(&st.started_at).trim_end_matches(" ago")
        ),
        "paused" => format!(
            "Up {} (Paused)",
            humanize::since(&st.started_at).trim_end_matches(" ago")
        ),
        "exited" if !st.finished_at.is_empty() => format!(
            "Exited ({}) {}",
            st.exit_code.unwrap_or(-1),
            humanize::since(&st.finished_at)
        ),
        "exited" => format!("Exited ({})", st.exit_code.unwrap_or(-1)),
        _ => "Created".into(),
    }
}

fn ps_row(rec: &ContainerRecord, st: &ContainerState, no_trunc: bool) -> Value {
    let cmd = command_line(rec).join(" ");
    let cmd = if !no_trunc && cmd.chars().count() > 20 {
        format!("\"{}…\"", cmd.chars().take(19).collect::<String>())
    } else {
        format!("\"{cmd}\"")
    };
    json!({
        "ID": if no_trunc { rec.id.clone() } else { rec.id[..12].to_string() },
        "Image": rec.image_name,
        "Command": cmd,
        "CreatedAt": rec.created,
        "RunningFor": humanize::since(&rec.created),
        "Status": status_text(st),
        "State": effective_status(st),
        "Ports": "",
        "Names": rec.name,
        "Labels": rec.config["Labels"],
    })
}

pub fn ps(s: &Settings, a: &PsArgs) -> Result<u8> {
    let filters = match super::ps_filter::Filters::parse(&a.filter) {
        Ok(f) => f,
        Err(e) => {
            // Docker's status for a refused filter.
            crate::printer::error(&e, false);
            return Ok(1);
        }
    };
    // Docker's -n/-l: the newest N, stopped ones included.
    let last = if a.latest { 1 } else { a.last };
    let all = a.all || last > 0;
    let store = s.open_store()?;
    let p = Printer::new(false);
    let mut rows = Vec::new();
    for rec in store.containers()? {
        let st = store.container_state(&rec.id)?;
        let status = effective_status(&st);
        if orphaned_auto_remove(&rec, &st, &status) {
            let _ = store.remove_container(&rec.id);
            continue;
        }
        if !all && !filters.lists_stopped() && !matches!(status.as_str(), "running" | "paused") {
            continue;
        }
        let seen = super::ps_filter::Seen {
            status: &status,
            exit_code: st.exit_code,
        };
        if !filters.matches(&rec, &seen) {
            continue;
        }
        let mut row = ps_row(&rec, &st, a.no_trunc);
        if a.size {
            // Docker's SIZE column: the writable layer, and that with the image.
            let (rw, rootfs) = sizes(&store, &rec)?;
            row["Size"] = format!(
                "{} (virtual {})",
                crate::humanize::size(rw),
                crate::humanize::size(rootfs)
            )
            .into();
        }
        rows.push(row);
    }
    if let Ok(n @ 1..) = usize::try_from(last) {
        rows.truncate(n);
    }
    if a.quiet {
        for r in &rows {
            p.out(r["ID"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let table = if a.size {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    };
    p.rows_headed(
        a.format.as_deref(),
        table,
        &rows,
        &[("ID", "CONTAINER ID"), ("RunningFor", "CREATED")],
    )?;
    Ok(0)
}

/// A `--rm` container whose monitor was killed on this host and boot before it could remove
/// it (a scheduler's SIGKILL): the container died with its monitor, and Docker's daemon would
/// have removed it, so `ps` does. A record from another node or boot is left alone.
fn orphaned_auto_remove(rec: &ContainerRecord, st: &ContainerState, status: &str) -> bool {
    rec.host_config["AutoRemove"].as_bool() == Some(true)
        && status == "exited"
        && matches!(st.status.as_str(), "running" | "paused")
        && st.hostname == host::hostname()
        && st.boot_id == host::boot_id()
}

/// Entrypoint and command, as the process runs them. (Records written before `Entrypoint`
/// was kept hold the whole command line in `Cmd`.)
fn command_line(rec: &ContainerRecord) -> Vec<String> {
    ["Entrypoint", "Cmd"]
        .iter()
        .flat_map(|k| rec.config[k].as_array().cloned().unwrap_or_default())
        .filter_map(|x| x.as_str().map(String::from))
        .collect()
}

pub fn inspect_json(store: &Store, rec: &ContainerRecord) -> Result<Value> {
    let st = store.container_state(&rec.id)?;
    let status = effective_status(&st);
    let mounts = crate::dispatch::shared_mounts::mounts_json(store, rec);
    let command = command_line(rec);
    Ok(json!({
        "Id": rec.id,
        "Created": rec.created,
        "Path": command.first(),
        "Args": command.get(1..).unwrap_or_default(),
        "State": {
            "Status": status,
            "Running": status == "running" || status == "paused",
            "Paused": status == "paused",
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": if status == "exited" { 0 } else { st.pid },
            "ExitCode": st.exit_code.unwrap_or(0),
            "Error": st.error,
            "StartedAt": st.started_at,
            "FinishedAt": st.finished_at,
        },
        "Image": rec.image.to_string(),
        "Name": format!("/{}", rec.name),
        "HostConfig": rec.host_config,
        "Mounts": mounts,
        "Config": rec.config,
        "GraphDriver": {"Name": "overlay", "Data": graph_driver_data(store, rec)},
        "LogPath": store.paths().container_log(&rec.id),
        "MonitorAlive": monitor_alive(&st),
    }))
}

/// `GraphDriver.Data`: the overlay's directories (a writable layer in memory has none on the
/// host).
fn graph_driver_data(store: &Store, rec: &ContainerRecord) -> serde_json::Value {
    let lower = rec
        .lower_dirs
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    if rec.layer_in_memory {
        return json!({"LowerDir": lower, "UpperDir": "", "WorkDir": ""});
    }
    json!({
        "LowerDir": lower,
        "UpperDir": store.paths().container_upper(&rec.id),
        "WorkDir": store.paths().container_work(&rec.id),
    })
}

/// The bytes of a container's writable layer, and those with its image's layers (Docker's
/// `SizeRw` and `SizeRootFs`).
pub fn sizes(store: &Store, rec: &ContainerRecord) -> Result<(u64, u64)> {
    let rw = super::prune::tree_bytes(&store.paths().container_upper(&rec.id));
    let image = store
        .images()?
        .into_iter()
        .find(|i| i.id == rec.image)
        .map_or(Ok(0), |i| store.image_size(&i))?;
    Ok((rw, rw + image))
}

/// [`inspect_json`] with `SizeRw` and `SizeRootFs`, as `inspect --size` shows them.
pub fn inspect_json_sized(store: &Store, rec: &ContainerRecord, size: bool) -> Result<Value> {
    let mut doc = inspect_json(store, rec)?;
    if size {
        let (rw, rootfs) = sizes(store, rec)?;
        doc["SizeRw"] = rw.into();
        doc["SizeRootFs"] = rootfs.into();
    }
    Ok(doc)
}

pub fn inspect(s: &Settings, a: &ContainerInspectArgs) -> Result<u8> {
    let store = s.open_store()?;
    let p = Printer::new(false);
    let mut out = Vec::new();
    let mut status = 0;
    for n in &a.containers {
        match store.lookup_container(n) {
            Ok(rec) => out.push(inspect_json_sized(&store, &rec, a.size)?),
            Err(e) => {
                crate::printer::error(&e.into(), false);
                status = 1;
            }
        }
    }
    match a.format.as_deref() {
        None | Some("json") => p.json(&out)?,
        Some(f) => p.rows(Some(f), "", &out)?,
    }
    Ok(status)
}

/// `top`: the host's `ps` with Docker's default `-ef` (or the options given), keeping the
/// header and the container's processes, found by the column named PID, as Docker's daemon
/// does; printed in columns as Docker's client prints them.
pub fn top(s: &Settings, a: &berth_cli::TopArgs) -> Result<u8> {
    // Fails with 1, as `docker top` does.
    each(s, std::slice::from_ref(&a.container), |store, rec| {
        top_of(store, rec, a)
    })
}

fn top_of(store: &Store, rec: &ContainerRecord, a: &berth_cli::TopArgs) -> Result<()> {
    let st = running(store, rec)?;
    let pids: std::collections::HashSet<String> = container_pids(st.pid)
        .into_iter()
        .map(|p| p.to_string())
        .collect();
    let options = if a.ps_options.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_options.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&options)
        .output()
        .context("top: cannot run ps (procps)")?;
    if !out.status.success() {
        // ps's first line says what was wrong; its usage text follows.
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "top: ps {} failed: {}",
            options.join(" "),
            err.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let Some(pid_col) = header.iter().position(|h| *h == "PID") else {
        bail!("top: ps {} shows no PID column", options.join(" "));
    };
    // The last column (the command) may hold spaces.
    let rows: Vec<Vec<String>> = lines
        .map(|l| split_columns(l, header.len()))
        .filter(|cols| cols.get(pid_col).is_some_and(|p| pids.contains(p)))
        .collect();
    let mut lines = vec![header.join("\t")];
    lines.extend(rows.iter().map(|r| r.join("\t")));
    // Docker's client prints top with a minimum column width of 20.
    println!("{}", crate::template::align(&lines, 20));
    Ok(())
}

/// A line of `ps` output as `n` columns, the last one the rest of the line.
fn split_columns(line: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line.trim_start();
    while out.len() + 1 < n {
        let Some((word, tail)) = rest.split_once(char::is_whitespace) else {
            break;
        };
        out.push(word.to_string());
        rest = tail.trim_start();
    }
    out.push(rest.to_string());
    out
}

pub fn port(s: &Settings, a: &ContainersArgs) -> Result<u8> {
    // No port publishing: containers use host or loopback-only networking.
    each(s, &a.containers, |_, _| Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_lines_split_into_columns_with_the_command_whole() {
        assert_eq!(
            split_columns("root  12  1  0 17:35 ?  00:00:00 sleep 100", 8),
            [
                "root",
                "12",
                "1",
                "0",
                "17:35",
                "?",
                "00:00:00",
                "sleep 100"
            ]
        );
        assert_eq!(split_columns("  7 sh", 2), ["7", "sh"]);
    }
}
