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
                p.rows(format.as_deref(), "table {{.Driver}}\t{{.Name}}", &rows)?;
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
                let path = store.volume_path(n)?;
                out.push(json!({"Driver": "local", "Name": n, "Mountpoint": path, "Scope": "local", "Labels": {}, "Options": {}}));
            }
            p.json(&out)?;
        }
    }
    Ok(0)
}
