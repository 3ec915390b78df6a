//! `--filter` of `container prune` and `image prune`, as Docker's: `until=` (a timestamp, Unix
//! seconds or a duration ago: only what was created before then), `label=` and `label!=`
//! (`KEY` or `KEY=VALUE`: only what has every such label, or has none of them).

use std::collections::HashMap;

use anyhow::{bail, Result};

use crate::humanize;

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
