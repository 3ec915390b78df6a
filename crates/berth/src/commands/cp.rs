//! `cp`: copies between a container and the host as a tar stream, as Docker does, with
//! Docker's rules for where the copy lands and `-` for a tar stream on stdin or stdout.
//!
//! A running container's side is read or written by a child process that joined its user
//! and mount namespaces (`berth_runtime::visit_filesystem`): it sees volumes, binds and
//! tmpfs mounts, and every path, absolute symlinks included, resolves inside the container.
//! A stopped container's side is its layers (top-most first, whiteouts honoured) and the
//! host directories of its binds and volumes, never through the container's symlinks. On the
//! host, a stream from a container is unpacked without following symlinks out of the
//! destination, and without setuid bits or the container's owners unless `-a`.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_cli::CpArgs;
use berth_store::{ContainerRecord, Store};

use crate::dispatch::host::effective_status;
use crate::settings::Settings;

/// Fails with 1, as `docker cp` does (125 is for `run`'s own failures).
pub fn cp(s: &Settings, a: &CpArgs) -> Result<u8> {
    let store = s.open_store()?;
    let copied = match (container_side(&a.source), container_side(&a.destination)) {
        (Some((c, path)), None) => store
            .lookup_container(&c)
            .map_err(anyhow::Error::from)
            .and_then(|rec| out_of(&store, &rec, &path, &a.destination, a)),
        (None, Some((c, path))) => store
            .lookup_container(&c)
            .map_err(anyhow::Error::from)
            .and_then(|rec| into(&store, &rec, &a.source, &path, a)),
        _ => Err(anyhow::anyhow!(
            "cp: exactly one of source and destination must be CONTAINER:PATH"
        )),
    };
    match copied {
        Ok(()) => Ok(0),
        Err(e) => {
            let msg = format!("{e:#}");
            let e = anyhow::anyhow!("cp: {}", msg.trim_start_matches("cp: "));
            crate::printer::error(&e, false);
            Ok(1)
        }
    }
}

/// `CONTAINER:PATH` split; host paths are `-`, absolute, or start with `.`, as Docker has it.
fn container_side(x: &str) -> Option<(String, String)> {
    if x == "-" || x.starts_with('/') || x.starts_with('.') {
        return None;
    }
    x.split_once(':')
        .filter(|(c, _)| !c.is_empty())
        .map(|(c, p)| (c.to_string(), p.to_string()))
}

/// The pid to visit when the container runs (or is paused: the visit joins no cgroup).
fn running_pid(store: &Store, rec: &ContainerRecord) -> Result<Option<i32>> {
    let st = store.container_state(&rec.id)?;
    Ok(matches!(effective_status(&st).as_str(), "running" | "paused").then_some(st.pid))
}

/// A container path made absolute (relative ones are from `/`, as Docker takes them).
fn in_container(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

fn out_of(store: &Store, rec: &ContainerRecord, path: &str, dest: &str, a: &CpArgs) -> Result<()> {
    let path = in_container(path);
    let opts = Options::of(a);
    let (r, w) = std::io::pipe()?;
    match running_pid(store, rec)? {
        Some(pid) => {
            let (mut err_r, mut err_w) = std::io::pipe()?;
            let follow = a.follow_link;
            let p = path.clone();
            let visit = berth_runtime::visit_filesystem(pid, move || {
                match archive(w, Path::new(&p), follow) {
                    Ok(()) => 0,
                    Err(e) => {
                        let _ = write!(err_w, "{e:#}");
                        1
                    }
                }
            })?;
            let placed = receive(r, dest, opts);
            let code = visit.wait()?;
            let mut msg = String::new();
            let _ = err_r.read_to_string(&mut msg);
            // Whichever side failed first: the other only saw the pipe break or end.
            match placed {
                Err(e) if code == 0 || is_broken_pipe(&msg) => Err(e),
                _ if code != 0 => bail!("cp: {}", not_found_in(msg, &path, rec)),
                placed => placed,
            }
        }
        None => {
            let host = stopped_source(store, rec, &path)?;
            std::thread::scope(|s| {
                let producer = s.spawn(|| archive_named(w, &host, &path, a.follow_link));
                let placed = receive(r, dest, opts);
                match (producer.join().expect("archive thread"), placed) {
                    (Err(e), Err(placed)) if is_broken_pipe(&format!("{e:#}")) => Err(placed),
                    (Err(e), _) => bail!("cp: {}", not_found_in(format!("{e:#}"), &path, rec)),
                    (Ok(()), placed) => placed,
                }
            })
        }
    }
}

fn into(store: &Store, rec: &ContainerRecord, src: &str, path: &str, a: &CpArgs) -> Result<()> {
    let path = in_container(path);
    if src != "-" {
        std::fs::symlink_metadata(src).with_context(|| format!("cp: {src}"))?;
    }
    let opts = Options::of(a);
    let (r, mut w) = std::io::pipe()?;
    let send = |w: &mut std::io::PipeWriter| -> Result<()> {
        if src == "-" {
            std::io::copy(&mut std::io::stdin().lock(), w).context("cp: reading stdin")?;
            Ok(())
        } else {
            archive(&mut *w, Path::new(src), a.follow_link)
        }
    };
    match running_pid(store, rec)? {
        Some(pid) => {
            let (mut err_r, mut err_w) = std::io::pipe()?;
            let dest = path.clone();
            let visit = berth_runtime::visit_filesystem(pid, move || {
                let placed = classify(Path::new(&dest), dest.ends_with('/'))
                    .and_then(|d| extract(r, d, opts));
                match placed {
                    Ok(()) => 0,
                    Err(e) => {
                        let _ = write!(err_w, "{e:#}");
                        1
                    }
                }
            })?;
            let sent = send(&mut w);
            drop(w);
            let code = visit.wait()?;
            let mut msg = String::new();
            let _ = err_r.read_to_string(&mut msg);
            match sent {
                Err(e) if !is_broken_pipe(&format!("{e:#}")) => Err(e),
                _ if code != 0 => bail!("cp: {msg} (in container {})", rec.name),
                sent => sent,
            }
        }
        None => {
            let dest = stopped_dest(store, rec, &path)?;
            std::thread::scope(|s| {
                let consumer = s.spawn(move || extract(r, dest, opts));
                let sent = send(&mut w);
                drop(w);
                let placed = consumer.join().expect("extract thread");
                match sent {
                    Err(e) if !is_broken_pipe(&format!("{e:#}")) => Err(e),
                    _ => placed,
                }
            })
        }
    }
}

fn is_broken_pipe(msg: &str) -> bool {
    msg.contains("Broken pipe")
}

/// A "no such file" from the container's side in Docker's words.
fn not_found_in(msg: String, path: &str, rec: &ContainerRecord) -> String {
    if msg.contains("No such file or directory") {
        format!("could not find the file {path} in container {}", rec.name)
    } else {
        format!("{msg} (in container {})", rec.name)
    }
}

/// Unpacking choices from the flags.
#[derive(Clone, Copy)]
struct Options {
    archive: bool,
}

impl Options {
    fn of(a: &CpArgs) -> Options {
        Options { archive: a.archive }
    }
}

/// Writes `path` as a tar stream whose entries are named after its last component, or
/// after `.` (its contents) when it ends in `/.`, as Docker's archives are.
fn archive(w: impl Write, path: &Path, follow: bool) -> Result<()> {
    archive_named(w, path, &path.to_string_lossy(), follow)
}

/// [`archive`] of `path`, named as `as_given` says (a container path resolved on the host).
fn archive_named(w: impl Write, path: &Path, as_given: &str, follow: bool) -> Result<()> {
    let contents = as_given.ends_with("/.") || as_given == "/";
    let trailing_slash = as_given.ends_with('/');
    let meta = if follow || trailing_slash || contents {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    }
    .with_context(|| as_given.to_string())?;
    if trailing_slash && !meta.is_dir() {
        bail!("{as_given}: not a directory");
    }
    let name = if contents {
        PathBuf::from(".")
    } else {
        PathBuf::from(
            Path::new(as_given.trim_end_matches('/'))
                .file_name()
                .unwrap_or_else(|| std::ffi::OsStr::new(".")),
        )
    };
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    if meta.is_dir() {
        b.append_dir_all(&name, path)
            .with_context(|| format!("archiving {as_given}"))?;
    } else if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path)?;
        let mut h = tar::Header::new_gnu();
        h.set_metadata(&meta);
        b.append_link(&mut h, &name, target)?;
    } else {
        let mut f = File::open(path).with_context(|| as_given.to_string())?;
        b.append_file(&name, &mut f)
            .with_context(|| format!("archiving {as_given}"))?;
    }
    b.into_inner()?.flush()?;
    Ok(())
}

/// Where a copy lands, from what the destination is (symlinks in it followed, as Docker does).
#[derive(Debug)]
enum Dest {
    /// An existing directory: the copy goes inside under its own name.
    Dir(PathBuf),
    /// An existing file, or nothing yet: the copy takes this name in `parent`.
    Named {
        parent: PathBuf,
        name: OsString,
        exists: bool,
    },
}

fn classify(dest: &Path, trailing_slash: bool) -> Result<Dest> {
    match std::fs::metadata(dest) {
        Ok(m) if m.is_dir() => Ok(Dest::Dir(dest.to_path_buf())),
        Ok(_) if trailing_slash => bail!("{}: not a directory", dest.display()),
        Err(_) if trailing_slash => {
            bail!("destination directory {} does not exist", dest.display())
        }
        found => {
            let parent = match dest.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if !std::fs::metadata(&parent).is_ok_and(|m| m.is_dir()) {
                bail!("no such directory: {}", parent.display());
            }
            Ok(Dest::Named {
                parent,
                name: dest
                    .file_name()
                    .context("cp: a destination needs a name")?
                    .into(),
                exists: found.is_ok(),
            })
        }
    }
}

/// Unpacks a stream from a container at `dest` on the host, or passes it to stdout for `-`.
fn receive(r: impl Read, dest: &str, opts: Options) -> Result<()> {
    if dest == "-" {
        let mut r = r;
        std::io::copy(&mut r, &mut std::io::stdout().lock())?;
        return Ok(());
    }
    let d = classify(Path::new(dest), dest.ends_with('/'))?;
    extract(r, d, opts)
}

/// Unpacks a tar stream at `dest`: its top entry is renamed to the destination's name unless
/// the destination is a directory (or the stream holds a directory's contents, `.`).
fn extract(r: impl Read, dest: Dest, opts: Options) -> Result<()> {
    let mut ar = tar::Archive::new(r);
    ar.set_preserve_permissions(opts.archive);
    ar.set_preserve_ownerships(opts.archive);
    ar.set_preserve_mtime(true);
    ar.set_overwrite(true);
    let mut target: Option<(PathBuf, Option<OsString>)> = None;
    for entry in ar.entries().context("reading the tar stream")? {
        let mut entry = entry.context("reading the tar stream")?;
        let rel = clean(&entry.path()?)?;
        let is_dir = entry.header().entry_type().is_dir();
        let (dir, rename) = target.get_or_insert_with(|| match &dest {
            Dest::Dir(d) => (d.clone(), None),
            Dest::Named { parent, name, .. } if rel.as_os_str().is_empty() => {
                (parent.join(name), None)
            }
            Dest::Named { parent, name, .. } => (parent.clone(), Some(name.clone())),
        });
        if let Dest::Named {
            exists: true,
            parent,
            name,
        } = &dest
        {
            if is_dir && rename.is_some() && rel.components().count() == 1 {
                bail!(
                    "cannot copy a directory onto the file {}",
                    parent.join(name).display()
                );
            }
        }
        let rel = match rename {
            Some(name) => {
                let mut c = rel.components();
                c.next();
                match c.as_path() {
                    rest if rest.as_os_str().is_empty() => PathBuf::from(&*name),
                    rest => Path::new(name).join(rest),
                }
            }
            None => rel,
        };
        let to = dir.join(&rel);
        if rel.as_os_str().is_empty() {
            std::fs::create_dir_all(&to)?;
            continue;
        }
        let parent = to.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        // Nothing is written through a symlink the stream or the destination placed below
        // the destination directory.
        let (real_dir, real_parent) = (dir.canonicalize()?, parent.canonicalize()?);
        if !real_parent.starts_with(&real_dir) {
            bail!(
                "{}: goes through a symbolic link out of {}",
                rel.display(),
                dir.display()
            );
        }
        entry
            .unpack(&to)
            .with_context(|| format!("writing {}", to.display()))?;
    }
    if target.is_none() {
        bail!("nothing to copy: the tar stream is empty");
    }
    Ok(())
}

/// An entry's path as plain names ("." for the stream's top when it holds contents); absolute
/// names and `..` are refused.
fn clean(p: &Path) -> Result<PathBuf> {
    match berth_types::inside_root(p) {
        Some(rel) if !p.has_root() => Ok(rel),
        _ => bail!(
            "tar entry {:?} leaves the destination",
            p.display().to_string()
        ),
    }
}

/// A container path as relative names, refusing `..`.
fn relative(path: &str) -> Result<PathBuf> {
    berth_types::inside_root(Path::new(path))
        .with_context(|| format!("cp: path {path:?} must not contain '..'"))
}

/// A stopped container's bind or volume holding `rel`: its host directory and the rest of
/// the path, longest destination first. (Its own files, `/etc/hosts` and the like, are not
/// mounts here.)
fn mount_of(store: &Store, rec: &ContainerRecord, rel: &Path) -> Option<(PathBuf, PathBuf, bool)> {
    let own = store.paths().container_dir(&rec.id);
    let mounts = rec.spec["mounts"].as_array()?;
    mounts
        .iter()
        .filter(|m| m["type"] == "bind")
        .filter_map(|m| {
            let source = PathBuf::from(m["source"].as_str()?);
            let dest = relative(m["destination"].as_str()?).ok()?;
            let rest = rel.strip_prefix(&dest).ok()?.to_path_buf();
            let ro = m["options"]
                .as_array()
                .is_some_and(|o| o.iter().any(|x| x == "ro"));
            (!source.starts_with(&own)).then_some((dest.components().count(), source, rest, ro))
        })
        .max_by_key(|(depth, ..)| *depth)
        .map(|(_, source, rest, ro)| (source, rest, ro))
}

/// Refuses a path under `base` whose parent directories include a symlink (the container's
/// own, which must not redirect a copy on the host).
fn no_symlink_parents(base: &Path, rel: &Path, path: &str, rec: &ContainerRecord) -> Result<()> {
    let mut cur = base.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        cur.push(c);
        if std::fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink()) {
            bail!(
                "cp: {path:?} in container {} goes through a symlink; name the real path (or start the container)",
                rec.name
            );
        }
    }
    Ok(())
}

/// The host file behind `path` of a stopped container.
fn stopped_source(store: &Store, rec: &ContainerRecord, path: &str) -> Result<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let rel = relative(path)?;
    if let Some((source, rest, _)) = mount_of(store, rec, &rel) {
        no_symlink_parents(&source, &rest, path, rec)?;
        return Ok(source.join(rest));
    }
    // A layer in memory exists only while the container runs: until then it is empty.
    let mut layers = Vec::new();
    if !rec.layer_in_memory {
        layers.push(store.paths().container_upper(&rec.id));
    }
    layers.extend(rec.lower_dirs.iter().cloned());
    for l in &layers {
        let p = l.join(&rel);
        if let Ok(m) = std::fs::symlink_metadata(&p) {
            // A whiteout: deleted in the container.
            if m.file_type().is_char_device() {
                break;
            }
            no_symlink_parents(l, &rel, path, rec)?;
            return Ok(p);
        }
    }
    bail!(
        "cp: could not find the file {path} in container {}",
        rec.name
    )
}

/// Where a copy into a stopped container lands: its bind or volume directory, or its writable
/// layer, with Docker's rules applied to the container's merged view.
fn stopped_dest(store: &Store, rec: &ContainerRecord, path: &str) -> Result<Dest> {
    let rel = relative(path)?;
    let trailing_slash = path.ends_with('/');
    if let Some((source, rest, ro)) = mount_of(store, rec, &rel) {
        if ro {
            bail!(
                "cp: {path} in container {} is on a read-only mount",
                rec.name
            );
        }
        no_symlink_parents(&source, &rest, path, rec)?;
        return classify(&source.join(rest), trailing_slash);
    }
    let upper = crate::dispatch::writable_layer(store, rec)?;
    no_symlink_parents(&upper, &rel, path, rec)?;
    let merged = |r: &Path| -> Option<std::fs::Metadata> {
        std::iter::once(&upper)
            .chain(rec.lower_dirs.iter())
            .find_map(|l| std::fs::symlink_metadata(l.join(r)).ok())
            .filter(|m| {
                use std::os::unix::fs::FileTypeExt;
                !m.file_type().is_char_device()
            })
    };
    match merged(&rel) {
        Some(m) if m.is_dir() => {
            std::fs::create_dir_all(upper.join(&rel))?;
            Ok(Dest::Dir(upper.join(&rel)))
        }
        Some(_) if trailing_slash => bail!("cp: {path}: not a directory"),
        None if trailing_slash => bail!("cp: destination directory {path} does not exist"),
        found => {
            let parent = rel.parent().unwrap_or(Path::new(""));
            if !merged(parent).is_some_and(|m| m.is_dir()) && !parent.as_os_str().is_empty() {
                bail!(
                    "cp: no such directory in container {}: /{}",
                    rec.name,
                    parent.display()
                );
            }
            std::fs::create_dir_all(upper.join(parent))?;
            Ok(Dest::Named {
                parent: upper.join(parent),
                name: rel
                    .file_name()
                    .context("cp: a destination needs a name")?
                    .into(),
                exists: found.is_some(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_as_docker_tells_them_apart() {
        assert_eq!(
            container_side("c:/a/b"),
            Some(("c".to_string(), "/a/b".to_string()))
        );
        assert_eq!(
            container_side("c:rel"),
            Some(("c".to_string(), "rel".to_string()))
        );
        for host in ["-", "/abs:x", "./c:x", "../c:x", "plain", ":x"] {
            assert_eq!(container_side(host), None, "{host}");
        }
    }

    #[test]
    fn entry_and_container_paths_stay_inside() {
        assert_eq!(clean(Path::new("./a/b")).unwrap(), Path::new("a/b"));
        assert_eq!(clean(Path::new(".")).unwrap(), Path::new(""));
        assert!(clean(Path::new("a/../../x")).is_err());
        assert!(clean(Path::new("/etc/passwd")).is_err());
        assert_eq!(relative("/a/./b/").unwrap(), Path::new("a/b"));
        assert!(relative("/a/../b").is_err());
    }

    #[test]
    fn a_stream_lands_by_docker_rules() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/f"), "f").unwrap();
        let tar_of = |p: &Path, as_given: &str| {
            let mut out = Vec::new();
            archive_named(&mut out, p, as_given, false).unwrap();
            out
        };
        let opts = Options { archive: false };
        let dest = dir.path().join("renamed");
        let d = classify(&dest, false).unwrap();
        extract(&tar_of(&src, "/src")[..], d, opts).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("sub/f")).unwrap(), "f");
        let d = classify(&dest, false).unwrap();
        extract(&tar_of(&src, "/src")[..], d, opts).unwrap();
        assert!(
            dest.join("src/sub/f").exists(),
            "into an existing directory"
        );
        let d = classify(&dir.path().join("contents"), false).unwrap();
        extract(&tar_of(&src, "/src/.")[..], d, opts).unwrap();
        assert!(dir.path().join("contents/sub/f").exists());
        assert!(classify(&dir.path().join("nope/"), true).is_err());
        assert!(classify(&dir.path().join("no/such/parent"), false).is_err());
    }

    #[test]
    fn a_hostile_stream_does_not_leave_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, "d", std::io::empty()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "d/link", &outside).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "d/link/escaped", &b"x"[..]).unwrap();
        let stream = b.into_inner().unwrap();
        let dest = dir.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        let err = extract(
            &stream[..],
            Dest::Dir(dest.clone()),
            Options { archive: false },
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
        assert!(!outside.join("escaped").exists());
    }
}
