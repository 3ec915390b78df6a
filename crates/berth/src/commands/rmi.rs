use std::io::BufRead;

use anyhow::Result;
use berth_cli::{PruneArgs, RmiArgs, TagArgs};
use berth_types::ImageRef;

use crate::humanize;
use crate::printer::Printer;
use crate::settings::Settings;

pub fn tag(s: &Settings, a: &TagArgs) -> Result<u8> {
    let store = s.open_store()?;
    let img = store.lookup(&a.source)?;
    let target = ImageRef::parse(&a.target)?;
    store.tag(&img.id, &target)?;
    Ok(0)
}

/// Like Docker, every image is tried; a failure is reported and the exit status becomes 1.
pub fn rmi(s: &Settings, a: &RmiArgs) -> Result<u8> {
    let store = s.open_store()?;
    let p = Printer::new(false);
    let mut status = 0;
    for name in &a.images {
        match store.remove(name, a.force) {
            Ok(report) => {
                for u in &report.untagged {
                    p.out(format!(
                        "Untagged: {}",
                        match (u.digest(), u.tag()) {
                            (Some(d), _) => format!("{}@{d}", u.familiar_name()),
                            (None, t) => format!("{}:{}", u.familiar_name(), t.unwrap_or("latest")),
                        }
                    ));
                }
                for d in &report.deleted {
                    p.out(format!("Deleted: {d}"));
                }
            }
            Err(e) => {
                crate::printer::error(&anyhow::Error::new(e), false);
                status = 1;
            }
        }
    }
    Ok(status)
}

pub fn prune(s: &Settings, a: &PruneArgs) -> Result<u8> {
    let store = s.open_store()?;
    let p = Printer::new(false);
    if !a.force {
        let what = if a.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        if !confirm(&format!(
            "WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] "
        )) {
            return Ok(0);
        }
    }
    let filters = match super::prune::PruneFilters::parse(&a.filter) {
        Ok(f) => f,
        Err(e) => {
            crate::printer::error(&e, false);
            return Ok(1);
        }
    };
    let mut chosen = std::collections::HashSet::new();
    for img in store.images()? {
        let labels = if filters.needs_labels() {
            store
                .config(&img)
                .ok()
                .and_then(|c| c.config().clone())
                .map(|c| c.labels().clone().unwrap_or_default())
        } else {
            None
        };
        if filters.matches(&img.created, labels.as_ref()) {
            chosen.insert(img.id.clone());
        }
    }
    let report = store.prune_selected(a.all, &|id| chosen.contains(id))?;
    if !report.images_deleted.is_empty() {
        p.out("Deleted Images:");
        for d in &report.images_deleted {
            p.out(format!("deleted: {d}"));
        }
        p.out("");
    }
    p.out(format!(
        "Total reclaimed space: {}",
        humanize::size(report.space_reclaimed)
    ));
    Ok(0)
}

pub(super) fn confirm(question: &str) -> bool {
    use std::io::Write;
    let mut e = std::io::stderr();
    let _ = write!(e, "{question}");
    let _ = e.flush();
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes" | "Yes")
}
