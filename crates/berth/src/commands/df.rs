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
