//! `berth commit`: a new image from a container's writable layer, over the image it runs.

use anyhow::{Context, Result};
use std::collections::HashSet;
use std::path::Path;

use berth_build::exec::{is_opaque, Compression, IdMaps, LayerWriter};
use berth_cli::CommitArgs;
use berth_registry::Client;
use berth_store::{ContainerRecord, Store};
use berth_types::BuildBackend;
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

pub fn run(s: &Settings, a: &CommitArgs) -> Result<u8> {
    let store = s.open_store()?;
    // A missing container is the user's mistake, which Docker reports with exit code 1.
    let rec = match store.lookup_container(&a.container) {
        Ok(r) => r,
        Err(e) => {
            crate::printer::error(&e.into(), false);
            return Ok(1);
        }
    };
    let p = Printer::new(true);
    let engine = Engine {
        store: &store,
        client: Client::new(s.registry_options(&Default::default()))?,
        printer: &p,
        pull: false,
        pulled: Default::default(),
    };
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

/// The container's changes as a stored layer; `None` when it changed nothing.
fn write_layer(
    store: &Store,
    rec: &ContainerRecord,
    engine: &Engine<'_>,
) -> Result<Option<berth_types::LayerRef>> {
    let dir = engine.scratch_dir().map_err(|e| anyhow::anyhow!("{e}"))?;
    let result = (|| {
        let mut w = LayerWriter::create_with(&dir.join("layer.tar"), Compression::Gzip)?;
        let ids = IdMaps {
            uids: ranges(&rec.spec, "uidMappings"),
            gids: ranges(&rec.spec, "gidMappings"),
        };
        let upper = store.paths().container_upper(&rec.id);
        let skipped = placeholders(&upper, &mount_points(rec));
        let skip = |path: &str| skipped.contains(path);
        w.add_upper_except(&upper, &ids, &skip)
            .with_context(|| format!("reading the changes of {}", rec.name))?;
        if w.entries == 0 {
            return Ok(None);
        }
        let f = w.finish()?;
        let layer = engine
            .add_layer(&f.path, &f.blob, &f.diff_id, Compression::Gzip.media_type())
            .map_err(|e| anyhow::anyhow!("cannot store the layer: {e}"))?;
        Ok(Some(layer))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
