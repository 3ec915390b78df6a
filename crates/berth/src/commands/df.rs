use anyhow::Result;
use berth_cli::DfArgs;
use serde_json::json;

use crate::humanize;
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(s: &Settings, a: &DfArgs) -> Result<u8> {
    let store = s.open_store()?;
    let du = store.disk_usage()?;
    let pct = |r: u64, t: u64| (r * 100).checked_div(t).unwrap_or(0);
    let rows = vec![
        json!({
            "Type": "Images", "TotalCount": du.images, "Active": du.active_images,
            "Size": humanize::size(du.images_size),
            "Reclaimable": format!("{} ({}%)", humanize::size(du.reclaimable), pct(du.reclaimable, du.images_size)),
        }),
        json!({
            "Type": "Containers", "TotalCount": du.containers, "Active": 0,
            "Size": "0B", "Reclaimable": "0B",
        }),
    ];
    Printer::new(false).rows(
        a.format.as_deref(),
        "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        &rows,
    )?;
    Ok(0)
}

/// `berth system prune`: stopped containers and the FUSE mounts no container holds, then the
/// images they held (dangling ones, or with `-a` every image no container uses), then the build
/// cache, after one confirmation.
pub fn prune(s: &Settings, a: &berth_cli::PruneArgs) -> Result<u8> {
    if !a.force {
        let images = if a.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        let cache = if a.all {
            "all build cache"
        } else {
            "the build cache no image uses"
        };
        if !super::rmi::confirm(&format!(
            "WARNING! This will remove:\n  - all stopped containers\n  - {images}\n  - {cache}\n\
             Are you sure you want to continue? [y/N] "
        )) {
            return Ok(0);
        }
    }
    let forced = |all| berth_cli::PruneArgs {
        all,
        force: true,
        filter: Vec::new(),
    };
    super::prune::stopped_containers(&s.open_store()?, &Default::default())?;
    crate::dispatch::shared_fuse::prune(&s.open_store()?);
    super::rmi::prune(s, &forced(a.all))?;
    super::build::prune(
        s,
        &berth_cli::BuilderPruneArgs {
            all: a.all,
            force: true,
        },
    )
}
