//! Store work that an unprivileged caller with subordinate ids does inside a user namespace.
//!
//! Layers keep the owners the image gives their files (DESIGN decision 6): root can `chown`
//! directly, but a caller with an `/etc/subuid` range must do it as root of a user namespace
//! that maps those ids the way containers do (0 → the caller, 1… → the range), so the files
//! appear inside with their image owners. Such files then belong to subordinate ids on the
//! host, and removing them needs the same namespace. Both jobs run in a re-executed `berth`
//! (`__unpack`, `__rmtree`) that enters the namespace while it is still single-threaded.
//! A caller without subordinate ids keeps everything under its own id, as before.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use berth_store::{Store, UnpackOptions, UnpackReport};
use berth_types::Digest;
use oci_spec::runtime::LinuxIdMapping;

use super::host::Caller;

/// The maps to unpack under: `Some` for a non-root caller with subordinate uids and gids.
fn shifted_maps() -> Option<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>)> {
    if super::euid() == 0 {
        return None;
    }
    let c = Caller::current();
    let (uid_start, uid_count) = c.subuids.filter(|s| s.1 > 0)?;
    let (gid_start, gid_count) = c.subgids.filter(|s| s.1 > 0)?;
    let map = |own: u32, start: u32, count: u32| {
        [(0u32, own, 1u32), (1u32, start, count)]
            .into_iter()
            .map(|(container, host, size)| {
                oci_spec::runtime::LinuxIdMappingBuilder::default()
                    .container_id(container)
                    .host_id(host)
                    .size(size)
                    .build()
                    .expect("all fields set")
            })
            .collect()
    };
    Some((
        map(c.uid, uid_start, uid_count),
        map(c.gid, gid_start, gid_count),
    ))
}

/// Whether [`unpack_layer`] unpacks in this process (root, or no subordinate ids to map)
/// rather than in a helper.
pub fn unpacks_here() -> bool {
    shifted_maps().is_none()
}

/// Unpacks a layer of the store, in the mapped user namespace when the caller has one.
pub fn unpack_layer(store: &Store, blob: &Digest, diff_id: &Digest) -> Result<UnpackReport> {
    if store.has_layer(diff_id) {
        return Ok(store.unpack_layer(blob, diff_id, &UnpackOptions::default())?);
    }
    let Some(maps) = shifted_maps() else {
        return Ok(store.unpack_layer(blob, diff_id, &UnpackOptions::default())?);
    };
    let root = store.paths().root().display().to_string();
    let out = in_user_namespace(
        &maps,
        &[
            "--root",
            &root,
            "__unpack",
            &blob.to_string(),
            &diff_id.to_string(),
        ],
    )?;
    let report: Vec<String> = serde_json::from_str(out.trim())
        .with_context(|| format!("unpacking layer {diff_id}: unexpected helper output"))?;
    let mut warnings = report;
    let size = warnings
        .pop()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    Ok(UnpackReport { warnings, size })
}

/// A remover for the store (`Store::with_remover`) for a non-root caller: trees holding files
/// of its subordinate ids are removed by a helper in the mapped user namespace. The caller's
/// ranges are only looked up when the store needs it, keeping the common paths free of it.
pub fn tree_remover() -> Option<berth_store::TreeRemover> {
    if super::euid() == 0 {
        return None;
    }
    Some(std::sync::Arc::new(move |path: &Path| {
        let Some(maps) = shifted_maps() else {
            return Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        };
        in_user_namespace(&maps, &["__rmtree", &path.display().to_string()])
            .map(drop)
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
    }))
}

/// The helper side of [`unpack_layer`]: prints the warnings and then the size, as one JSON list.
pub fn serve_unpack(store: &Store, blob: &Digest, diff_id: &Digest) -> Result<()> {
    enter()?;
    // As root of the namespace: owners are set (and land shifted on disk), setuid bits kept;
    // device nodes still cannot be made and are skipped with a warning.
    let report = store.unpack_layer(blob, diff_id, &UnpackOptions { rootless: false })?;
    let mut out = report.warnings;
    out.push(report.size.to_string());
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

/// The helper side of [`remove_tree`].
pub fn serve_rmtree(path: &Path) -> Result<()> {
    enter()?;
    berth_store::remove_tree(path).with_context(|| format!("cannot remove {}", path.display()))
}

fn enter() -> Result<()> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut output = std::io::stdout().lock();
    berth_runtime::enter_user_namespace(&mut output, &mut input)?;
    Ok(())
}

/// The parent's side of the handshake with a helper that calls
/// `berth_runtime::enter_user_namespace`: reads the helper's first line; on `ready` writes the
/// maps of its namespace; then answers `go`, or `stop` when they could not be written, so the
/// helper never waits forever. Returns the helper's output (after that line), the line, and
/// whether the maps were written (`Ok` too when none were asked for).
pub(super) fn answer_helper(
    child: &mut std::process::Child,
    uids: &[LinuxIdMapping],
    gids: &[LinuxIdMapping],
) -> Result<(BufReader<std::process::ChildStdout>, String, Result<()>)> {
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut stdin = child.stdin.take().expect("piped");
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    let line = line.trim().to_string();
    let mapped = if line == "ready" {
        berth_runtime::write_id_maps(child.id() as i32, uids, gids).map_err(anyhow::Error::from)
    } else {
        Ok(())
    };
    let _ = writeln!(stdin, "{}", if mapped.is_ok() { "go" } else { "stop" });
    Ok((stdout, line, mapped))
}

/// Runs `berth ARGS` as root of a new user namespace with `maps`; returns what it printed after
/// the handshake.
fn in_user_namespace(
    maps: &(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>),
    args: &[&str],
) -> Result<String> {
    let exe = std::env::current_exe().context("cannot find the berth binary")?;
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start a berth helper")?;
    let (mut stdout, _, mapped) = answer_helper(&mut child, &maps.0, &maps.1)?;
    let mut rest = String::new();
    stdout.read_to_string(&mut rest)?;
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut err)?;
    let status = child.wait()?;
    mapped?;
    if !status.success() {
        let msg = err.trim().trim_start_matches("Error: ");
        bail!(
            "{}",
            if msg.is_empty() {
                "the berth helper failed"
            } else {
                msg
            }
        );
    }
    Ok(rest)
}
