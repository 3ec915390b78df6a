use anyhow::Result;
use berth_cli::ImagesArgs;
use berth_store::{ImageRecord, Store};
use berth_types::ImageRef;
use serde_json::{json, Value};

use crate::humanize;
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(s: &Settings, a: &ImagesArgs) -> Result<u8> {
    let store = s.open_store()?;
    let p = Printer::new(false);
    let mut images = store.images()?;
    images.sort_by(|x, y| y.created.cmp(&x.created).then(y.added.cmp(&x.added)));
    let filter = a.repository.as_deref().map(Filter::new).transpose()?;
    let filters = match Filters::parse(&a.filter) {
        Ok(f) => f,
        Err(e) => {
            // Docker's status for a refused filter.
            crate::printer::error(&e, false);
            return Ok(1);
        }
    };
    let mut rows = Vec::new();
    for img in &images {
        if !filters.image_matches(&store, img)? {
            continue;
        }
        for r in rows_of(&store, img, a.no_trunc)? {
            let keep = match &filter {
                Some(f) => f.matches(&r),
                None => true,
            };
            if keep && filters.row_matches(&r) {
                rows.push(r);
            }
        }
    }
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            let id = r["ID"].as_str().unwrap_or_default().to_string();
            if seen.insert(id.clone()) {
                p.out(id);
            }
        }
        return Ok(0);
    }
    let default = if a.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    p.rows(a.format.as_deref(), default, &rows)?;
    Ok(0)
}

/// One row per tag (a dangling image gets one `<none>` row), with Docker's field names.
fn rows_of(store: &Store, img: &ImageRecord, no_trunc: bool) -> Result<Vec<Value>> {
    let size = store.image_size(img)?;
    let id = if no_trunc {
        img.id.to_string()
    } else {
        img.id.short().to_string()
    };
    let digest_for = |name: &str| {
        img.repo_digests
            .iter()
            .find(|d| d.name() == name)
            .and_then(|d| d.digest().map(|x| x.to_string()))
            .unwrap_or_else(|| "<none>".into())
    };
    let row = |repo: String, tag: String, digest: String| {
        json!({
            "Containers": "N/A",
            "CreatedAt": img.created,
            "CreatedSince": humanize::since(&img.created),
            "Digest": digest,
            "ID": id,
            "Repository": repo,
            "SharedSize": "N/A",
            "Size": humanize::size(size),
            "Tag": tag,
            "UniqueSize": "N/A",
            "VirtualSize": humanize::size(size),
        })
    };
    if img.repo_tags.is_empty() {
        let digest = img
            .repo_digests
            .first()
            .and_then(|d| d.digest().map(|x| x.to_string()))
            .unwrap_or_else(|| "<none>".into());
        let repo = img
            .repo_digests
            .first()
            .map(|d| d.familiar_name())
            .unwrap_or_else(|| "<none>".into());
        return Ok(vec![row(repo, "<none>".into(), digest)]);
    }
    Ok(img
        .repo_tags
        .iter()
        .map(|t| {
            row(
                t.familiar_name(),
                t.tag().unwrap_or("<none>").to_string(),
                digest_for(&t.name()),
            )
        })
        .collect())
}

/// `berth images alpine` / `berth images alpine:3`: repository, optionally with tag.
struct Filter {
    name: String,
    tag: Option<String>,
}

impl Filter {
    fn new(s: &str) -> Result<Filter> {
        let r = ImageRef::parse(s)?;
        let explicit_tag = s.rsplit('/').next().is_some_and(|last| last.contains(':'));
        Ok(Filter {
            name: r.familiar_name(),
            tag: explicit_tag.then(|| r.tag().unwrap_or_default().to_string()),
        })
    }
    fn matches(&self, row: &Value) -> bool {
        row["Repository"] == self.name.as_str()
            && self.tag.as_ref().is_none_or(|t| row["Tag"] == t.as_str())
    }
}

/// `images --filter`, as Docker's: values of one key are alternatives, keys must all match.
#[derive(Default)]
struct Filters {
    dangling: Option<bool>,
    references: Vec<regex::Regex>,
    labels: Vec<String>,
}

impl Filters {
    fn parse(args: &[String]) -> Result<Filters> {
        let mut f = Filters::default();
        for a in args {
            match a.split_once('=') {
                Some(("dangling", "true")) => f.dangling = Some(true),
                Some(("dangling", "false")) => f.dangling = Some(false),
                Some(("dangling", _)) => {
                    anyhow::bail!("invalid filter {a:?}: dangling is true or false")
                }
                Some(("reference", pattern)) => f.references.push(glob(pattern)),
                Some(("label", l)) => f.labels.push(l.to_string()),
                Some((key, _)) => anyhow::bail!("invalid filter {key:?}"),
                None => anyhow::bail!("invalid filter {a:?}: expected KEY=VALUE"),
            }
        }
        Ok(f)
    }

    /// What is known per image: tagged or not, and its labels (read only when asked for).
    fn image_matches(&self, store: &Store, img: &ImageRecord) -> Result<bool> {
        if self.dangling.is_some_and(|d| d != img.repo_tags.is_empty()) {
            return Ok(false);
        }
        if self.labels.is_empty() {
            return Ok(true);
        }
        let config = store.config(img)?;
        let labels = config
            .config()
            .as_ref()
            .and_then(|c| c.labels().clone())
            .unwrap_or_default();
        Ok(self.labels.iter().any(|l| match l.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(l),
        }))
    }

    /// `reference`: a pattern against `REPOSITORY:TAG`, or the repository alone.
    fn row_matches(&self, row: &Value) -> bool {
        if self.references.is_empty() {
            return true;
        }
        let repo = row["Repository"].as_str().unwrap_or_default();
        let full = format!("{repo}:{}", row["Tag"].as_str().unwrap_or_default());
        self.references
            .iter()
            .any(|r| r.is_match(&full) || r.is_match(repo))
    }
}

/// A shell pattern as Docker's reference filter takes it (`*` and `?` stop at `/`), as an
/// anchored regular expression.
fn glob(pattern: &str) -> regex::Regex {
    let mut re = String::from("^");
    for c in pattern.chars() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).expect("an escaped pattern is a valid regular expression")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_patterns_as_docker() {
        let f = Filters::parse(&["reference=busy*".into()]).unwrap();
        let row = |r: &str, t: &str| serde_json::json!({"Repository": r, "Tag": t});
        assert!(f.row_matches(&row("busybox", "latest")));
        assert!(
            !f.row_matches(&row("localhost/busybox", "latest")),
            "* stops at /"
        );
        let f = Filters::parse(&["reference=*/bb:1".into()]).unwrap();
        assert!(f.row_matches(&row("localhost/bb", "1")));
        assert!(!f.row_matches(&row("localhost/bb", "2")));
        assert!(Filters::parse(&["dangling=maybe".into()]).is_err());
        assert!(Filters::parse(&["size=1".into()]).is_err());
    }
}
