use anyhow::Result;
use berth_cli::HistoryArgs;
use serde_json::{json, Value};

use crate::humanize;
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(s: &Settings, a: &HistoryArgs) -> Result<u8> {
    let store = s.open_store()?;
    let img = store.lookup(&a.image)?;
    let cfg = store.config(&img)?;
    let history = cfg.history().clone().unwrap_or_default();
    let mut rows: Vec<Value> = Vec::new();
    for h in &history {
        let empty = h.empty_layer().unwrap_or(false);
        rows.push(json!({
            "CreatedAt": h.created().clone().unwrap_or_default(),
            "CreatedBy": h.created_by().clone().unwrap_or_default(),
            "Comment": h.comment().clone().unwrap_or_default(),
            "empty": empty,
        }));
    }
    // Sizes: the n-th non-empty history entry belongs to the n-th layer.
    let mut li = 0;
    for r in rows.iter_mut() {
        let bytes = if r["empty"].as_bool().unwrap_or(false) {
            0
        } else {
            let b = img
                .layers
                .get(li)
                .and_then(|d| store.layer_size(d).ok().flatten())
                .unwrap_or(0);
            li += 1;
            b
        };
        r["Size"] = json!(if a.human {
            humanize::size(bytes)
        } else {
            bytes.to_string()
        });
    }
    rows.reverse();
    for (i, r) in rows.iter_mut().enumerate() {
        let id = if i == 0 {
            if a.no_trunc {
                img.id.to_string()
            } else {
                img.id.short().to_string()
            }
        } else {
            "<missing>".to_string()
        };
        r["ID"] = json!(id);
        let created = r["CreatedAt"].as_str().unwrap_or_default().to_string();
        r["CreatedSince"] = json!(if a.human {
            humanize::since(&created)
        } else {
            created.clone()
        });
        let by = r["CreatedBy"].as_str().unwrap_or_default().to_string();
        if !a.no_trunc && by.chars().count() > 45 {
            let short: String = by.chars().take(44).collect();
            r["CreatedBy"] = json!(format!("{short}…"));
        }
        if let Some(o) = r.as_object_mut() {
            o.remove("empty");
        }
    }
    let p = Printer::new(false);
    if a.quiet {
        p.out(rows[0]["ID"].as_str().unwrap_or_default());
        return Ok(0);
    }
    p.rows(
        a.format.as_deref(),
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
        &rows,
    )?;
    Ok(0)
}
