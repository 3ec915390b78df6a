//! `container prune`, and the `--filter` it shares with `image prune`, as Docker's: `until=` (a
//! timestamp, Unix seconds or a duration ago: only what was created before then), `label=` and
//! `label!=` (`KEY` or `KEY=VALUE`: only what has every such label, or has none of them).

use std::collections::HashMap;

use anyhow::{bail, Result};
use berth_cli::PruneArgs;
use berth_store::Store;

use crate::dispatch::host::{effective_status, monitor_alive};
use crate::humanize;
use crate::printer::Printer;
use crate::settings::Settings;

/// The parsed filters; the default prunes everything the command would.
#[derive(Debug, Default)]
pub struct PruneFilters {
    until: Option<i128>,
    labels: Vec<String>,
    not_labels: Vec<String>,
}

impl PruneFilters {
    /// Parses `--filter` values; an unknown key is refused as Docker's daemon refuses it.
    pub fn parse(args: &[String]) -> Result<PruneFilters> {
        let mut f = PruneFilters::default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        for a in args {
            match a.split_once('=') {
                Some(("until", when)) => match humanize::parse_point_in_time(when, now) {
                    Some(t) => f.until = Some(t),
                    None => bail!("invalid filter 'until={when}': not a timestamp or a duration"),
                },
                Some(("label!", l)) => f.not_labels.push(l.to_string()),
                Some(("label", l)) => f.labels.push(l.to_string()),
                Some((key, _)) => bail!("invalid filter '{key}'"),
                None => bail!("invalid filter '{a}': expected KEY=VALUE"),
            }
        }
        Ok(f)
    }

    /// Whether something created at `created` (RFC 3339) with `labels` is to be pruned.
    /// `None`: an image whose config has no `config` section at all, to which Docker's daemon
    /// applies no label filter.
    pub fn matches(&self, created: &str, labels: Option<&HashMap<String, String>>) -> bool {
        let before = self
            .until
            .is_none_or(|until| humanize::parse_rfc3339_nanos(created).is_some_and(|c| c < until));
        let Some(labels) = labels else {
            return before;
        };
        let has = |l: &String| match l.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(l),
        };
        before && self.labels.iter().all(has) && !self.not_labels.iter().any(has)
    }

    /// Whether labels matter (they cost a read per image).
    pub fn needs_labels(&self) -> bool {
        !self.labels.is_empty() || !self.not_labels.is_empty()
    }
}

/// `container prune`: stopped containers, those `--filter` selects; with Docker's prompt
/// unless `-f`, and its report.
pub fn containers(s: &Settings, a: &PruneArgs) -> Result<u8> {
    let filters = match PruneFilters::parse(&a.filter) {
        Ok(f) => f,
        Err(e) => {
            crate::printer::error(&e, false);
            return Ok(1);
        }
    };
    let question = "WARNING! This will remove all stopped containers.\n\
                    Are you sure you want to continue? [y/N] ";
    if !a.force && !super::rmi::confirm(question) {
        return Ok(0);
    }
    let reclaimed = stopped_containers(&s.open_store()?, &filters)?;
    Printer::new(false).out(format!(
        "Total reclaimed space: {}",
        humanize::size(reclaimed)
    ));
    Ok(0)
}

/// Removes the stopped containers `filters` selects and lists them as Docker does; returns
/// the bytes their writable layers held.
pub(super) fn stopped_containers(store: &Store, filters: &PruneFilters) -> Result<u64> {
    let p = Printer::new(false);
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    for rec in store.containers()? {
        let st = store.container_state(&rec.id)?;
        let stopped =
            matches!(effective_status(&st).as_str(), "exited" | "created") && !monitor_alive(&st);
        let labels: HashMap<String, String> =
            serde_json::from_value(rec.config["Labels"].clone()).unwrap_or_default();
        if stopped && filters.matches(&rec.created, Some(&labels)) {
            reclaimed += tree_bytes(&store.paths().container_upper(&rec.id));
            store.remove_container(&rec.id)?;
            deleted.push(rec.id);
        }
    }
    if !deleted.is_empty() {
        p.out("Deleted Containers:");
        for id in &deleted {
            p.out(id);
        }
        p.out("");
    }
    Ok(reclaimed)
}

/// The bytes of the regular files under `dir` (a container's writable layer).
pub(super) fn tree_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
