//! `berth commit`, `berth export` and `berth diff`: a container's writable layer as a new image
//! over the image it runs, merged with that image into one tar, or listed as changes.

use anyhow::{Context, Result};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use berth_archive::BlobSource;
use berth_build::exec::{is_opaque, Compression, IdMaps, LayerWriter};
use berth_cli::{CommitArgs, ContainersArgs, ExportArgs};
use berth_registry::Client;
use berth_store::{ContainerRecord, Store};
use berth_types::{BuildBackend, Digest};
use serde_json::{json, Value};

use crate::dispatch::build::Engine;
use crate::dispatch::host::effective_status;
use crate::printer::Printer;
use crate::settings::Settings;

/// `(container, host, count)` ranges of one of the spec's id maps.
fn ranges(spec: &Value, key: &str) -> Vec<(u32, u32, u32)> {
    spec["linux"][key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let n = |k: &str| m[k].as_u64().and_then(|v| u32::try_from(v).ok());
            Some((n("containerID")?, n("hostID")?, n("size")?))
        })
        .collect()
}

/// What of the writable layer `upper` is the runtime's and not the container's changes: the
/// mount targets, for which it made placeholders, and the directories that exist there only
/// to hold such placeholders (non-opaque, nothing else inside). Relative paths.
fn placeholders(upper: &Path, mounts: &[String]) -> HashSet<String> {
    fn walk(dir: &Path, rel: &str, mounts: &[String], out: &mut HashSet<String>) -> bool {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return false;
        };
        let (mut any, mut all) = (false, true);
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let host = e.path();
            let only_placeholders = mounts.contains(&path)
                || (e.file_type().is_ok_and(|t| t.is_dir())
                    && !is_opaque(&host)
                    && walk(&host, &path, mounts, out));
            if only_placeholders {
                out.insert(path);
                any = true;
            } else {
                all = false;
            }
        }
        // An empty directory is a change the container made.
        any && all
    }
    let mut out: HashSet<String> = mounts.iter().cloned().collect();
    walk(upper, "", mounts, &mut out);
    out
}

/// Mount targets of the container, relative to its root.
fn mount_points(rec: &ContainerRecord) -> Vec<String> {
    rec.spec["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["destination"].as_str())
        .map(|d| d.trim_matches('/').to_string())
        .filter(|d| !d.is_empty())
        .collect()
}

/// The container named `name`, or `None` after saying it does not exist: the user's mistake,
/// which Docker reports with exit code 1.
fn container(store: &Store, name: &str) -> Option<ContainerRecord> {
    store
        .lookup_container(name)
        .map_err(|e| crate::printer::error(&e.into(), false))
        .ok()
}

/// Refuses to `verb` a container that runs a single-file image or a directory: its files are
/// not layers of the store.
fn from_store(rec: &ContainerRecord, verb: &str) -> Result<()> {
    match rec.host_config["Squashfs"]
        .as_str()
        .or(rec.host_config["RootfsDir"].as_str())
    {
        Some(file) => anyhow::bail!(
            "cannot {verb} container {}: it runs {file}, not an image of the store",
            rec.name
        ),
        None => Ok(()),
    }
}

pub fn run(s: &Settings, a: &CommitArgs) -> Result<u8> {
    let store = s.open_store()?;
    let Some(rec) = container(&store, &a.container) else {
        return Ok(1);
    };
    let p = Printer::new(true);
    let engine = Engine {
        store: &store,
        client: Client::new(s.registry_options(&Default::default()))?,
        printer: &p,
        pull: false,
        pulled: Default::default(),
        network: None,
        add_hosts: Vec::new(),
    };
    from_store(&rec, "commit")?;
    let base = engine
        .base_image(&rec.image.to_string(), None)
        .map_err(|e| anyhow::anyhow!("the image of container {}: {e}", rec.name))?;
    let paused = a.pause
        && effective_status(&store.container_state(&rec.id)?) == "running"
        && super::container::set_paused(&store, &rec, true).is_ok();
    let layer = write_layer(&store, &rec, &engine);
    if paused {
        let _ = super::container::set_paused(&store, &rec, false);
    }
    let layer = layer?;

    let mut config = base.config.clone();
    // The container's own configuration (its command included), as Docker commits it.
    let mut cfg: oci_spec::image::Config = serde_json::from_value(rec.config.clone())
        .context("container record holds an invalid config")?;
    berth_archive::apply_changes(&mut cfg, &a.change)?;
    config["config"] = serde_json::to_value(&cfg)?;
    let now = crate::humanize::rfc3339(crate::humanize::now());
    config["created"] = json!(now);
    if let Some(author) = &a.author {
        config["author"] = json!(author);
    }
    let command: Vec<&str> = rec.spec["process"]["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut h = json!({"created": now, "created_by": command.join(" ")});
    if let Some(m) = &a.message {
        h["comment"] = json!(m);
    }
    if let Some(author) = &a.author {
        h["author"] = json!(author);
    }
    let mut layers = base.layers.clone();
    match &layer {
        Some(l) => layers.push(l.clone()),
        None => h["empty_layer"] = json!(true),
    }
    if !config["history"].is_array() {
        config["history"] = json!([]);
    }
    config["history"]
        .as_array_mut()
        .expect("made an array above")
        .push(h);
    config["rootfs"] = json!({
        "type": "layers",
        "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
    });
    let tags: Vec<String> = a.reference.iter().cloned().collect();
    let id = engine
        .commit(&serde_json::to_vec(&config)?, &layers, &tags)
        .map_err(|e| anyhow::anyhow!("cannot commit the image: {e}"))?;
    Printer::new(false).out(id.to_string());
    Ok(0)
}

/// The container's changes as a layer file in `dir`; `None` when it changed nothing.
fn layer_file(
    store: &Store,
    rec: &ContainerRecord,
    dir: &Path,
) -> Result<Option<berth_build::exec::LayerFile>> {
    let mut w = LayerWriter::create_with(&dir.join("layer.tar"), Compression::Gzip)?;
    let ids = IdMaps {
        uids: ranges(&rec.spec, "uidMappings"),
        gids: ranges(&rec.spec, "gidMappings"),
    };
    let upper = crate::dispatch::writable_layer(store, rec)?;
    let skipped = placeholders(&upper, &mount_points(rec));
    let skip = |path: &str| skipped.contains(path);
    w.add_upper_except(&upper, &ids, &skip)
        .with_context(|| format!("reading the changes of {}", rec.name))?;
    if w.entries == 0 {
        return Ok(None);
    }
    Ok(Some(w.finish()?))
}

/// The container's changes as a stored layer; `None` when it changed nothing.
fn write_layer(
    store: &Store,
    rec: &ContainerRecord,
    engine: &Engine<'_>,
) -> Result<Option<berth_types::LayerRef>> {
    let dir = engine.scratch_dir().map_err(|e| anyhow::anyhow!("{e}"))?;
    let result = layer_file(store, rec, &dir).and_then(|f| {
        f.map(|f| {
            engine
                .add_layer(&f.path, &f.blob, &f.diff_id, Compression::Gzip.media_type())
                .map_err(|e| anyhow::anyhow!("cannot store the layer: {e}"))
        })
        .transpose()
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The store's blobs, and one more from a file: the container's layer, never stored.
struct WithLayer<'a> {
    store: &'a Store,
    extra: Option<(Digest, PathBuf)>,
}

impl BlobSource for WithLayer<'_> {
    fn open(&self, d: &Digest) -> std::io::Result<Box<dyn std::io::Read>> {
        match &self.extra {
            Some((x, path)) if x == d => Ok(Box::new(std::fs::File::open(path)?)),
            _ => Ok(Box::new(
                self.store.open_blob(d).map_err(std::io::Error::other)?,
            )),
        }
    }
    fn size(&self, d: &Digest) -> std::io::Result<u64> {
        match &self.extra {
            Some((x, path)) if x == d => Ok(std::fs::metadata(path)?.len()),
            _ => self.store.blob_size(d).map_err(std::io::Error::other),
        }
    }
}

/// `berth export`: the container's file system (its image with its changes) as one tar, to
/// `-o FILE` or standard output.
pub fn export(s: &Settings, a: &ExportArgs) -> Result<u8> {
    use std::io::IsTerminal;
    let store = s.open_store()?;
    let Some(rec) = container(&store, &a.container) else {
        return Ok(1);
    };
    if a.output.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!("cowardly refusing to save to a terminal: use the -o flag or redirect");
    }
    from_store(&rec, "export")?;
    let img = store.lookup(&rec.image.to_string())?;
    let manifest = store.manifest(&img)?;
    let mut layers: Vec<Digest> = manifest
        .layers()
        .iter()
        .map(|l| l.digest().to_string().parse())
        .collect::<Result<_, _>>()?;
    let dir = store.paths().temp("export");
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> Result<()> {
        let extra = layer_file(&store, &rec, &dir)?.map(|f| (f.blob, f.path));
        if let Some((d, _)) = &extra {
            layers.push(d.clone());
        }
        let src = WithLayer {
            store: &store,
            extra,
        };
        match &a.output {
            Some(path) => {
                // Written beside the destination and renamed: never half an archive under its name.
                let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
                let mut tmp = tempfile::NamedTempFile::new_in(parent.unwrap_or(Path::new(".")))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                berth_archive::flatten(&src, &layers, &mut tmp, &mut |_| {})?;
                tmp.persist(path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            None => {
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                berth_archive::flatten(&src, &layers, &mut out, &mut |_| {})?;
                std::io::Write::flush(&mut out)?;
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|()| 0)
}

/// `berth diff`: what the container changed in its image, as Docker lists it: `A` added, `C`
/// changed (a directory counts when something below it changed), `D` deleted, sorted by path.
pub fn diff(s: &Settings, a: &ContainersArgs) -> Result<u8> {
    let store = s.open_store()?;
    let [name] = a.containers.as_slice() else {
        anyhow::bail!("diff takes exactly one container");
    };
    let Some(rec) = container(&store, name) else {
        return Ok(1);
    };
    let upper = crate::dispatch::writable_layer(&store, &rec)?;
    let skipped = placeholders(&upper, &mount_points(&rec));
    let in_image = |rel: &str| {
        rec.lower_dirs
            .iter()
            .any(|l| std::fs::symlink_metadata(l.join(rel)).is_ok())
    };
    let mut changes = Vec::new();
    let mut stack = vec![(upper.clone(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if skipped.contains(&path) {
                continue;
            }
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            let kind = if meta.file_type().is_char_device() && meta.rdev() == 0 {
                'D'
            } else if in_image(&path) {
                'C'
            } else {
                'A'
            };
            if meta.is_dir() {
                stack.push((e.path(), path.clone()));
            }
            changes.push((path, kind));
        }
    }
    changes.sort();
    let p = Printer::new(false);
    for (path, kind) in changes {
        p.out(format!("{kind} /{path}"));
    }
    Ok(0)
}
