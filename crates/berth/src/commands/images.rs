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
    let mut rows = Vec::new();
    for img in &images {
        for r in rows_of(&store, img, a.no_trunc)? {
            let keep = match &filter {
                Some(f) => f.matches(&r),
                None => true,
            };
            if keep {
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
