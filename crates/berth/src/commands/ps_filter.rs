//! `ps --filter KEY=VALUE`, as Docker's: values of one key are alternatives, keys must all
//! match. Keys: `id` (a prefix), `name` (a regular expression, against the name with or without
//! Docker's leading `/`), `label` (`KEY` or `KEY=VALUE`), `status`, `exited` (an exit code),
//! `ancestor` (the image as named, with or without its tag, or a prefix of its id).

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use berth_store::ContainerRecord;
use regex::Regex;

/// Docker's container states, the values `status` takes.
const STATUSES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// The filters of one `ps`.
#[derive(Default)]
pub struct Filters {
    by_key: BTreeMap<String, Vec<String>>,
    names: Vec<Regex>,
}

/// What a filter looks at besides the record.
pub struct Seen<'a> {
    /// `running`, `exited`, ...
    pub status: &'a str,
    pub exit_code: Option<i32>,
}

impl Filters {
    /// Parses `KEY=VALUE` arguments, refusing unknown keys and bad values in one line.
    pub fn parse(args: &[String]) -> Result<Filters> {
        let mut f = Filters::default();
        for a in args {
            let Some((key, value)) = a.split_once('=') else {
                bail!("invalid filter {a:?}: expected KEY=VALUE");
            };
            match key {
                "id" | "label" | "ancestor" => {}
                "name" => f.names.push(Regex::new(value).map_err(|_| {
                    anyhow::anyhow!("invalid filter {a:?}: not a regular expression")
                })?),
                "status" if !STATUSES.contains(&value) => bail!(
                    "invalid filter {a:?}: status is one of {}",
                    STATUSES.join(", ")
                ),
                "exited" if value.parse::<i32>().is_err() => {
                    bail!("invalid filter {a:?}: exited takes an exit code")
                }
                "status" | "exited" => {}
                _ => bail!("invalid filter {key:?}"),
            }
            f.by_key
                .entry(key.to_string())
                .or_default()
                .push(value.to_string());
        }
        Ok(f)
    }

    /// Whether containers that are not running are listed without `-a`: with a `status` or
    /// `exited` filter, as Docker does.
    pub fn lists_stopped(&self) -> bool {
        self.by_key.contains_key("status") || self.by_key.contains_key("exited")
    }

    /// Whether `rec` passes every filter.
    pub fn matches(&self, rec: &ContainerRecord, seen: &Seen) -> bool {
        self.by_key.iter().all(|(key, values)| match key.as_str() {
            "id" => values.iter().any(|v| rec.id.starts_with(v.as_str())),
            "name" => self
                .names
                .iter()
                .any(|r| r.is_match(&rec.name) || r.is_match(&format!("/{}", rec.name))),
            "label" => values
                .iter()
                .any(|v| label_matches(&rec.config["Labels"], v)),
            "status" => values.iter().any(|v| v == seen.status),
            "exited" => {
                seen.status == "exited"
                    && values
                        .iter()
                        .any(|v| v.parse::<i32>().ok() == seen.exit_code)
            }
            "ancestor" => values.iter().any(|v| ancestor_matches(rec, v)),
            _ => false,
        })
    }
}

fn label_matches(labels: &serde_json::Value, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels[k].as_str() == Some(v),
        None => labels.get(filter).is_some(),
    }
}

/// The image as it was named (`bb` and `bb:latest` alike), or its id.
fn ancestor_matches(rec: &ContainerRecord, filter: &str) -> bool {
    let name = rec.image_name.as_str();
    let untagged = |n: &str| -> String {
        match n.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') && tag == "latest" => repo.to_string(),
            _ => n.to_string(),
        }
    };
    let id = rec.image.to_string();
    let hex = id.strip_prefix("sha256:").unwrap_or(&id);
    untagged(name) == untagged(filter)
        || (filter.len() >= 4 && (hex.starts_with(filter) || id.starts_with(filter)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, image: &str, labels: serde_json::Value) -> ContainerRecord {
        serde_json::from_value(serde_json::json!({
            "Id": "abcdef0123456789",
            "Name": name,
            "Image": format!("sha256:{}", "1".repeat(64)),
            "ImageName": image,
            "Created": "2026-01-01T00:00:00Z",
            "Config": {"Labels": labels},
            "HostConfig": {},
            "LowerDirs": [],
            "Spec": {},
        }))
        .unwrap()
    }

    fn f(args: &[&str]) -> Filters {
        Filters::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn filters_as_docker_combines_them() {
        let r = record(
            "web-1",
            "localhost/bb",
            serde_json::json!({"tier": "front"}),
        );
        let running = Seen {
            status: "running",
            exit_code: None,
        };
        let exited = Seen {
            status: "exited",
            exit_code: Some(3),
        };
        assert!(f(&["name=web"]).matches(&r, &running));
        assert!(f(&["name=^/web-1$"]).matches(&r, &running));
        assert!(f(&["name=^web-1$"]).matches(&r, &running));
        assert!(!f(&["name=^eb"]).matches(&r, &running));
        assert!(
            f(&["name=nope", "name=web"]).matches(&r, &running),
            "alternatives"
        );
        assert!(
            !f(&["name=web", "status=exited"]).matches(&r, &running),
            "all keys"
        );
        assert!(f(&["id=abcd"]).matches(&r, &running));
        assert!(f(&["label=tier"]).matches(&r, &running));
        assert!(f(&["label=tier=front"]).matches(&r, &running));
        assert!(!f(&["label=tier=back"]).matches(&r, &running));
        assert!(f(&["exited=3"]).matches(&r, &exited));
        assert!(!f(&["exited=0"]).matches(&r, &exited));
        assert!(f(&["ancestor=localhost/bb:latest"]).matches(&r, &running));
        assert!(f(&["ancestor=1111"]).matches(&r, &running));
        assert!(!f(&["ancestor=localhost/other"]).matches(&r, &running));
        assert!(f(&["status=exited"]).lists_stopped());
    }

    #[test]
    fn bad_filters_are_one_line() {
        for bad in ["nokey", "color=red", "status=asleep", "exited=x", "name=("] {
            let e = Filters::parse(&[bad.to_string()]).err().unwrap();
            let msg = format!("{e:#}");
            assert!(msg.contains(bad.split('=').next().unwrap()), "{msg}");
            assert_eq!(msg.lines().count(), 1, "{msg}");
        }
    }
}
