use anyhow::{Context, Result};
use berth_cli::InspectArgs;
use berth_store::{ImageRecord, Store};
use serde_json::{json, Value};

use crate::humanize;
use crate::printer::Printer;
use crate::settings::Settings;

/// `containers_too`: plain `berth inspect` also finds containers, as `docker inspect` does.
/// `inspect` (`containers_too`) and `image inspect`. Without `--type`, a name is looked up as
/// Docker's client does: a container, then an image, then a volume.
pub fn run(s: &Settings, a: &InspectArgs, containers_too: bool) -> Result<u8> {
    let kinds: &[&str] = match (containers_too, a.kind.as_deref()) {
        (false, _) => &["image"],
        (true, None) => &["container", "image", "volume"],
        (true, Some("container")) => &["container"],
        (true, Some("image")) => &["image"],
        (true, Some("volume")) => &["volume"],
        (true, Some(other)) => {
            anyhow::bail!("{other:?} is not a valid value for --type")
        }
    };
    let store = s.open_store()?;
    let p = Printer::new(false);
    let mut out = Vec::new();
    let mut failed = false;
    for name in &a.images {
        let found = kinds.iter().find_map(|kind| match *kind {
            "container" => store
                .lookup_container(name)
                .ok()
                .map(|rec| super::container::inspect_json_sized(&store, &rec, a.size)),
            "image" => store.lookup(name).ok().map(|img| image_json(&store, &img)),
            _ => store
                .volume_path(name)
                .ok()
                .map(|_| super::volume::inspect_json(&store, name)),
        });
        match found {
            Some(doc) => out.push(doc?),
            None => {
                let err = match kinds {
                    // The store's own words: a malformed reference is not "no such image".
                    ["image"] => match store.lookup(name) {
                        Err(e) => anyhow::Error::new(e),
                        Ok(_) => anyhow::anyhow!("no such image: {name}"),
                    },
                    ["container"] => anyhow::anyhow!("no such container: {name}"),
                    ["volume"] => anyhow::anyhow!("no such volume: {name}"),
                    _ => anyhow::anyhow!("no such object: {name}"),
                };
                crate::printer::error(&err, false);
                failed = true;
            }
        }
    }
    match a.format.as_deref() {
        None | Some("json") => p.json(&out)?,
        // Docker's client prints one empty line when a template has nothing to show.
        Some(_) if out.is_empty() => p.out(""),
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
