use anyhow::Result;
use berth_cli::{VolumeCommand, VolumeLsArgs};
use serde_json::json;

use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(s: &Settings, c: &VolumeCommand) -> Result<u8> {
    let store = s.open_store()?;
    let p = Printer::new(false);
    match c {
        VolumeCommand::Create(a) => {
            let name = a
                .name
                .clone()
                .unwrap_or_else(crate::dispatch::host::random_id);
            store.create_volume(&name)?;
            p.out(name);
        }
        VolumeCommand::Ls(VolumeLsArgs { quiet, format }) => {
            let names = store.volumes()?;
            if *quiet {
                for n in names {
                    p.out(n);
                }
            } else {
                let rows: Vec<_> = names
                    .iter()
                    .map(|n| json!({"Driver": "local", "Name": n}))
                    .collect();
                p.rows_headed(
                    format.as_deref(),
                    "table {{.Driver}}\t{{.Name}}",
                    &rows,
                    &[("Name", "VOLUME NAME")],
                )?;
            }
        }
        VolumeCommand::Rm(a) => {
            let mut status = 0;
            for n in &a.names {
                match store.remove_volume(n, a.force) {
                    Ok(()) => p.out(n),
                    Err(e) => {
                        crate::printer::error(&e.into(), false);
                        status = 1;
                    }
                }
            }
            return Ok(status);
        }
        VolumeCommand::Inspect(a) => {
            let mut out = Vec::new();
            for n in &a.names {
                out.push(inspect_json(&store, n)?);
            }
            p.json(&out)?;
        }
    }
    Ok(0)
}

/// Docker's `volume inspect` document of the volume `name`.
pub fn inspect_json(store: &berth_store::Store, name: &str) -> Result<serde_json::Value> {
    let path = store.volume_path(name)?;
    // The volume's directory was made when the volume was.
    let created = std::fs::metadata(path.parent().unwrap_or(&path))
        .and_then(|m| m.created().or_else(|_| m.modified()))
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| crate::humanize::rfc3339(d.as_secs() as i64));
    // Without labels or options Docker shows null, not an empty object.
    Ok(json!({
        "CreatedAt": created,
        "Driver": "local",
        "Labels": null,
        "Mountpoint": path,
        "Name": name,
        "Options": null,
        "Scope": "local",
    }))
}
