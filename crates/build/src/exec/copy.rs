//! `COPY`/`ADD` and `WORKDIR` as layers written straight from files, without a container.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::files::{glob, has_glob, walk_host, Ignore, Merged};
use super::layer::LayerWriter;

/// Where `COPY` reads from.
pub enum From<'a> {
    /// The build context, filtered by `.dockerignore`.
    Context(&'a Path, &'a Ignore),
    /// A stage or image: its layer directories, top first.
    Layers(&'a [PathBuf]),
}

/// One file to copy: where it goes in the image and where it is on the host.
pub struct Item {
    dest: String,
    host: PathBuf,
}

/// Resolves the sources of a `COPY` to items, following Docker's rules: a directory's contents
/// go into the destination; a file goes to `dest/NAME` when `dest` ends in `/` (or several
/// sources are given), else to `dest` itself.
pub fn plan(from: &From, srcs: &[String], dest: &str) -> Result<Vec<Item>, String> {
    let mut roots: Vec<(String, PathBuf)> = Vec::new();
    for src in srcs {
        let src_rel = src.trim_start_matches("./").trim_start_matches('/');
        // `.` (or `./`) is the whole context.
        let src_rel = if src_rel == "." { "" } else { src_rel };
        let (parent, last) = match src_rel.rsplit_once('/') {
            Some((p, l)) => (p.to_string(), l.to_string()),
            None => (String::new(), src_rel.to_string()),
        };
        let names: Vec<String> = if has_glob(&last) {
            let listed: Vec<String> = match from {
                From::Context(root, _) => fs::read_dir(root.join(&parent))
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.file_name().to_string_lossy().to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
                From::Layers(dirs) => Merged { dirs }.list(&parent).into_iter().collect(),
            };
            let mut m: Vec<String> = listed
                .into_iter()
                .filter(|n| glob(last.as_bytes(), n.as_bytes()))
                .collect();
            m.sort();
            m
        } else {
            vec![last.clone()]
        };
        let mut found = false;
        for n in names {
            let rel = join(&parent, &n);
            let host = match from {
                From::Context(root, ig) => {
                    if !rel.is_empty() && ig.excluded(&rel) {
                        continue;
                    }
                    let p = root.join(&rel);
                    fs::symlink_metadata(&p).ok().map(|_| p)
                }
                From::Layers(dirs) => Merged { dirs }.lookup(&rel),
            };
            if let Some(h) = host {
                roots.push((rel, h));
                found = true;
            }
        }
        if !found {
            return Err(format!(
                "{src}: not found (in the build context, or excluded by .dockerignore)"
            ));
        }
    }
    let into_dir = dest.ends_with('/') || srcs.len() > 1 || roots.len() > 1;
    let dest = dest.trim_end_matches('/');
    let mut items = Vec::new();
    for (rel, host) in roots {
        let meta = fs::metadata(&host).map_err(|e| format!("{rel}: {e}"))?;
        if meta.is_dir() {
            let mut below = Vec::new();
            match from {
                From::Context(root, ig) => {
                    walk_host(root, &rel, &|r| ig.excluded(r), &mut below);
                    for r in below {
                        let sub = r[rel.len()..].trim_start_matches('/').to_string();
                        items.push(Item {
                            dest: join(dest, &sub),
                            host: root.join(&r),
                        });
                    }
                }
                From::Layers(dirs) => walk_merged(&Merged { dirs }, &rel, dest, &mut items),
            }
            continue;
        }
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        let target = if into_dir {
            join(dest, name)
        } else {
            dest.to_string()
        };
        items.push(Item { dest: target, host });
    }
    Ok(items)
}

fn walk_merged(m: &Merged, rel: &str, dest: &str, items: &mut Vec<Item>) {
    for n in m.list(rel) {
        let r = join(rel, &n);
        let Some(host) = m.lookup(&r) else { continue };
        let d = join(dest, &n);
        let is_dir = fs::symlink_metadata(&host).is_ok_and(|x| x.is_dir());
        items.push(Item {
            dest: d.clone(),
            host,
        });
        if is_dir {
            walk_merged(m, &r, &d, items);
        }
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{}/{}", a.trim_end_matches('/'), b),
    }
}

/// A digest over the names, modes and contents of the items: the cache key of a copy.
pub fn digest(items: &[Item]) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    for it in items {
        let m = fs::symlink_metadata(&it.host)?;
        h.update(format!("{}\0{:o}\0{}\0", it.dest, m.mode(), m.len()).as_bytes());
        if m.is_file() {
            let mut f = fs::File::open(&it.host)?;
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        } else if m.file_type().is_symlink() {
            h.update(fs::read_link(&it.host)?.as_os_str().as_encoded_bytes());
        }
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Writes the items into `w`, making the destination's missing parents (those absent from
/// the stage, per `exists`) as root-owned 0755 directories.
pub fn write(
    w: &mut LayerWriter,
    items: &[Item],
    owner: (u32, u32),
    chmod: Option<u32>,
    exists: &dyn Fn(&str) -> bool,
) -> std::io::Result<()> {
    let mut made = std::collections::BTreeSet::new();
    for it in items {
        let path = it.dest.trim_start_matches('/');
        let mut parent = String::new();
        for comp in path
            .split('/')
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .skip(1)
            .rev()
        {
            parent = join(&parent, comp);
            if !made.contains(&parent) && !exists(&parent) {
                w.add_dir(&parent, 0o755, (0, 0))?;
            }
            made.insert(parent.clone());
        }
        let meta = fs::symlink_metadata(&it.host)?;
        let mode = if meta.file_type().is_symlink() {
            None
        } else {
            chmod
        };
        w.add(path, &it.host, &meta, owner, mode)?;
        made.insert(path.to_string());
    }
    Ok(())
}
