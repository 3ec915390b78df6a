//! The mounts a container shares with others: `inspect`'s `Mounts` (the binds, named volumes
//! and `--mount type=tmpfs` a user asked for) and `--volumes-from`, which gives a new container
//! the binds and volumes of existing ones.

use anyhow::{bail, Result};
use berth_oci::{MountKind, MountSpec};
use berth_store::{ContainerRecord, Store};
use serde_json::{json, Value};

/// `Mounts` as Docker shows them: binds, named volumes and `--mount type=tmpfs`, not the
/// files and filesystems every container gets (nor `--tmpfs`, which is `HostConfig.Tmpfs`).
pub fn mounts_json(store: &Store, rec: &ContainerRecord) -> Vec<Value> {
    let own = store.paths().container_dir(&rec.id);
    let volumes = store.paths().volumes_dir();
    let list = rec.spec["mounts"].as_array().cloned().unwrap_or_default();
    list.iter()
        .filter_map(|m| {
            let dest = m["destination"].as_str().unwrap_or_default();
            let source = std::path::Path::new(m["source"].as_str().unwrap_or_default());
            let opts = m["options"].as_array().cloned().unwrap_or_default();
            let rw = !opts.iter().any(|o| o == "ro");
            match m["type"].as_str()? {
                "bind" if source.starts_with(&own) => None,
                "bind" => Some(match source.strip_prefix(&volumes) {
                    Ok(rest) => json!({
                        "Type": "volume",
                        "Name": rest.iter().next().map(|n| n.to_string_lossy().to_string()),
                        "Source": source,
                        "Destination": dest,
                        "Driver": "local",
                        "Mode": "z",
                        "RW": rw,
                        "Propagation": "",
                    }),
                    Err(_) => json!({
                        "Type": "bind",
                        "Source": source,
                        "Destination": dest,
                        "Mode": "",
                        "RW": rw,
                        "Propagation": "rprivate",
                    }),
                }),
                "tmpfs"
                    if !matches!(dest, "/dev" | "/dev/shm")
                        && rec.host_config["Tmpfs"].get(dest).is_none() =>
                {
                    Some(json!({
                        "Type": "tmpfs",
                        "Source": "",
                        "Destination": dest,
                        "Mode": "",
                        "RW": rw,
                        "Propagation": "",
                    }))
                }
                _ => None,
            }
        })
        .collect()
}

/// The binds and volumes of the containers `--volumes-from` names (`NAME[:ro|:rw]`), each at the
/// same place; `:ro` or `:rw` sets every one's mode, otherwise each keeps its own. Named volumes
/// are added to `volumes`. Docker gives a mount the new container asks for itself precedence over
/// one at the same place from here: the caller drops these there.
pub fn volumes_from(
    store: &Store,
    items: &[String],
    volumes: &mut Vec<String>,
) -> Result<Vec<MountSpec>> {
    let mut out = Vec::new();
    for item in items {
        let (name, mode) = match item.rsplit_once(':') {
            Some((n, m @ ("ro" | "rw"))) => (n, Some(m == "ro")),
            Some((_, m)) => bail!("invalid --volumes-from {item:?}: mode {m:?} is not ro or rw"),
            None => (item.as_str(), None),
        };
        let rec = store.lookup_container(name)?;
        for m in mounts_json(store, &rec) {
            let kind = match m["Type"].as_str() {
                Some("bind") => MountKind::Bind,
                Some("volume") => {
                    if let Some(v) = m["Name"].as_str() {
                        volumes.push(v.to_string());
                    }
                    MountKind::Volume
                }
                _ => continue,
            };
            out.push(MountSpec {
                kind,
                source: m["Source"].as_str().unwrap_or_default().to_string(),
                target: m["Destination"].as_str().unwrap_or_default().to_string(),
                readonly: mode.unwrap_or(m["RW"] == false),
                options: Vec::new(),
            });
        }
    }
    Ok(out)
}
