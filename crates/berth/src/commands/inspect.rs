use anyhow::{Context, Result};
use berth_cli::InspectArgs;
use berth_store::{ImageRecord, Store};
use serde_json::{json, Value};

use crate::humanize;
use crate::printer::Printer;
use crate::settings::Settings;

/// `containers_too`: plain `berth inspect` also finds containers, as `docker inspect` does.
pub fn run(s: &Settings, a: &InspectArgs, containers_too: bool) -> Result<u8> {
    let store = s.open_store()?;
    let p = Printer::new(false);
    let mut out = Vec::new();
    let mut failed = false;
    for name in &a.images {
        match store.lookup(name) {
            Ok(img) => out.push(image_json(&store, &img)?),
            Err(berth_store::StoreError::ImageNotFound(_)) if containers_too => {
                match store.lookup_container(name) {
                    Ok(rec) => out.push(super::container::inspect_json(&store, &rec)?),
                    Err(_) => {
                        crate::printer::error(&anyhow::anyhow!("no such object: {name}"), false);
                        failed = true;
                    }
                }
            }
            Err(e) => {
                crate::printer::error(&anyhow::Error::new(e), false);
                failed = true;
            }
        }
    }
    match a.format.as_deref() {
        None | Some("json") => p.json(&out)?,
        Some(f) => p.rows(Some(f), "", &out)?,
    }
    Ok(if failed { 1 } else { 0 })
}

/// Docker's `image inspect` document, built from the stored config so unknown fields survive.
pub fn image_json(store: &Store, img: &ImageRecord) -> Result<Value> {
    let raw = store.read_blob(&img.id)?;
    let cfg: Value =
        serde_json::from_slice(&raw).with_context(|| format!("invalid image config {}", img.id))?;
    let mut config = json!({
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false,
        "AttachStdout": false, "AttachStderr": false, "Tty": false, "OpenStdin": false,
        "StdinOnce": false, "Env": null, "Cmd": null, "Image": "", "Volumes": null,
        "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": null,
    });
    if let (Some(dst), Some(src)) = (config.as_object_mut(), cfg["config"].as_object()) {
        for (k, v) in src {
            dst.insert(k.clone(), v.clone());
        }
    }
    let layer_dirs: Vec<String> = img
        .layers
        .iter()
        .rev()
        .map(|d| store.layer_path(d).display().to_string())
        .collect();
    Ok(json!({
        "Id": img.id.to_string(),
        "RepoTags": img.repo_tags.iter().map(|t| format!("{}:{}", t.familiar_name(), t.tag().unwrap_or("latest"))).collect::<Vec<_>>(),
        "RepoDigests": img.repo_digests.iter().filter_map(|d| d.digest().map(|x| format!("{}@{x}", d.familiar_name()))).collect::<Vec<_>>(),
        "Parent": "",
        "Comment": cfg["comment"].as_str().unwrap_or(""),
        "Created": cfg["created"].as_str().unwrap_or(""),
        "DockerVersion": cfg["docker_version"].as_str().unwrap_or(""),
        "Author": cfg["author"].as_str().unwrap_or(""),
        "Config": config,
        "Architecture": cfg["architecture"].as_str().unwrap_or(""),
        "Variant": cfg["variant"].as_str(),
        "Os": cfg["os"].as_str().unwrap_or(""),
        "Size": store.image_size(img)?,
        "GraphDriver": {"Name": "overlay", "Data": {"LowerDir": layer_dirs.join(":")}},
        "RootFS": {"Type": "layers", "Layers": img.layers.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
        "History": cfg["history"].clone(),
        "Metadata": {"LastTagTime": humanize::rfc3339(img.added as i64)},
        "Descriptor": {"mediaType": img.manifest_media_type, "digest": img.manifest.to_string()},
    }))
}
