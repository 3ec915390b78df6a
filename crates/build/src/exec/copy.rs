//! `COPY`/`ADD` and `WORKDIR` as layers written straight from files, without a container.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::archive;
use super::filehash::FileDigests;
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
    /// A tar archive that `ADD` unpacks into `dest` (a directory).
    archive: bool,
}

impl Item {
    /// A file downloaded for `ADD`, placed at `dest` as it is: never unpacked.
    pub fn downloaded(dest: String, host: PathBuf) -> Item {
        Item {
            dest,
            host,
            archive: false,
        }
    }
}

/// What shapes a copy besides its sources.
pub struct Options<'a> {
    /// The bodies of the instruction's heredocs, in order: `(name, host file)`. A source
    /// written `<<NAME` is the next of them, copied as a file called `NAME`.
    pub heredocs: &'a [(String, PathBuf)],
    /// `--exclude` patterns, matched (with `.dockerignore` rules) against paths relative to
    /// each source's parent: `*.log` leaves out a source `a.log` and a directory source's
    /// top-level `.log` files; `**/*.log` those at any depth.
    pub exclude: &'a Ignore,
    /// `ADD`: a local tar archive (compressed or not) is unpacked into the destination.
    pub unpack: bool,
    /// `COPY --parents`: each source keeps its path below the destination, from the start or
    /// from a `/./` written in it (`src/./app/main.c` lands in `DEST/app/main.c`).
    pub parents: bool,
}

/// A source path as listed, without `.` components, and with `--parents` the part of it
/// that is kept below the destination.
fn split_pivot(rel: &str, parents: bool) -> (String, Option<String>) {
    let clean = |p: &str| {
        p.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect::<Vec<_>>()
            .join("/")
    };
    let keep = parents.then(|| match rel.split_once("/./") {
        Some((_, after)) => clean(after),
        None => clean(rel),
    });
    (clean(rel), keep)
}

/// Resolves the sources of a `COPY` to items, following Docker's rules: a directory's contents
/// go into the destination; a file goes to `dest/NAME` when `dest` ends in `/` (or several
/// sources are given), else to `dest` itself.
pub fn plan(from: &From, srcs: &[String], dest: &str, opts: &Options) -> Result<Vec<Item>, String> {
    let mut roots: Vec<(String, PathBuf, Option<String>)> = Vec::new();
    let mut heredocs = opts.heredocs.iter();
    for src in srcs {
        if src.starts_with("<<") {
            let (name, host) = heredocs
                .next()
                .ok_or_else(|| format!("{src}: no heredoc body for this source"))?;
            roots.push((
                name.clone(),
                host.clone(),
                opts.parents.then(|| name.clone()),
            ));
            continue;
        }
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
            let (rel, keep) = split_pivot(&join(&parent, &n), opts.parents);
            if opts.exclude.excluded(&n) {
                found = true;
                continue;
            }
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
                roots.push((rel, h, keep));
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
    for (rel, host, keep) in roots {
        let meta = fs::metadata(&host).map_err(|e| format!("{rel}: {e}"))?;
        let kept = keep.as_ref().map(|k| join(dest, k));
        if meta.is_dir() {
            let dest = kept.as_deref().unwrap_or(dest);
            let mut below = Vec::new();
            match from {
                From::Context(root, ig) => {
                    let below_src = |r: &str| r[rel.len()..].trim_start_matches('/').to_string();
                    let skip = |r: &str| ig.excluded(r) || opts.exclude.excluded(&below_src(r));
                    walk_host(root, &rel, &skip, &mut below);
                    for r in below {
                        items.push(Item {
                            dest: join(dest, &below_src(&r)),
                            host: root.join(&r),
                            archive: false,
                        });
                    }
                }
                From::Layers(dirs) => {
                    let m = Merged { dirs };
                    walk_merged(&m, &rel, "", dest, opts.exclude, &mut items)
                }
            }
            continue;
        }
        // Docker unpacks only archives from the context, never ones from a stage or a URL.
        if opts.unpack && matches!(from, From::Context(..)) && archive::is_archive(&host) {
            items.push(Item {
                dest: dest.to_string(),
                host,
                archive: true,
            });
            continue;
        }
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        let target = if let Some(k) = kept {
            k
        } else if into_dir {
            join(dest, name)
        } else {
            dest.to_string()
        };
        items.push(Item {
            dest: target,
            host,
            archive: false,
        });
    }
    Ok(items)
}

/// Adds what is below `rel` of a stage; `sub` is the path below the copy's source.
fn walk_merged(m: &Merged, rel: &str, sub: &str, dest: &str, ex: &Ignore, items: &mut Vec<Item>) {
    for n in m.list(rel) {
        let (r, s) = (join(rel, &n), join(sub, &n));
        if ex.excluded(&s) {
            continue;
        }
        let Some(host) = m.lookup(&r) else { continue };
        let d = join(dest, &n);
        let is_dir = fs::symlink_metadata(&host).is_ok_and(|x| x.is_dir());
        items.push(Item {
            dest: d.clone(),
            host,
            archive: false,
        });
        if is_dir {
            walk_merged(m, &r, &s, &d, ex, items);
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
/// File contents come through `files`, which remembers them across builds.
pub fn digest(items: &[Item], files: &mut FileDigests) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let mut h = Sha256::new();
    for it in items {
        let m = fs::symlink_metadata(&it.host)?;
        h.update(format!("{}\0{:o}\0{}\0{}\0", it.dest, m.mode(), m.len(), it.archive).as_bytes());
        if m.is_file() {
            h.update(files.digest(&it.host, &m)?.as_bytes());
        } else if m.file_type().is_symlink() {
            h.update(fs::read_link(&it.host)?.as_os_str().as_encoded_bytes());
        }
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Copies the items below `root` on the host, as a `RUN --mount=type=bind` source: a copy, so
/// that the step can neither see ignored files nor change the context or a stored layer.
pub fn materialize(items: &[Item], root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut dirs = Vec::new();
    for it in items {
        let to = root.join(it.dest.trim_start_matches('/'));
        if let Some(p) = to.parent() {
            fs::create_dir_all(p)?;
        }
        let meta = fs::symlink_metadata(&it.host)?;
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&it.host)?, &to)?;
        } else if meta.is_dir() {
            fs::create_dir_all(&to)?;
            dirs.push((to, meta.permissions().mode()));
        } else if meta.is_file() {
            fs::copy(&it.host, &to)?;
        }
    }
    // Modes of directories last: a read-only one would refuse the files copied into it.
    for (d, mode) in dirs.iter().rev() {
        fs::set_permissions(d, fs::Permissions::from_mode(*mode))?;
    }
    Ok(())
}

/// Directories already in the layer being written, or in the stage below it.
struct Dirs<'a> {
    made: std::collections::BTreeSet<String>,
    exists: &'a dyn Fn(&str) -> bool,
}

impl Dirs<'_> {
    /// Adds the missing parents of `path` as root-owned 0755 directories.
    fn parents(&mut self, w: &mut LayerWriter, path: &str) -> std::io::Result<()> {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let mut parent = String::new();
        for comp in comps.iter().take(comps.len().saturating_sub(1)) {
            parent = join(&parent, comp);
            if !self.made.contains(&parent) && !(self.exists)(&parent) {
                w.add_dir(&parent, 0o755, (0, 0))?;
            }
            self.made.insert(parent.clone());
        }
        Ok(())
    }

    /// Adds `path` itself as a directory when it is missing, and its parents.
    fn dir(&mut self, w: &mut LayerWriter, path: &str) -> std::io::Result<()> {
        self.parents(w, path)?;
        if !path.is_empty() && !self.made.contains(path) && !(self.exists)(path) {
            w.add_dir(path, 0o755, (0, 0))?;
        }
        self.made.insert(path.to_string());
        Ok(())
    }
}

/// Writes the items into `w`, making the destination's missing parents (those absent from
/// the stage, per `exists`) as root-owned 0755 directories. `owner` is `--chown`: without it
/// copied files belong to root and unpacked archives keep the ids they record.
pub fn write(
    w: &mut LayerWriter,
    items: &[Item],
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
    exists: &dyn Fn(&str) -> bool,
) -> std::io::Result<()> {
    let mut dirs = Dirs {
        made: Default::default(),
        exists,
    };
    for it in items {
        let path = it.dest.trim_start_matches('/').trim_end_matches('/');
        if it.archive {
            dirs.dir(w, path)?;
            let last = archive::last_entries(&it.host)?;
            let mut i = 0;
            archive::for_each_entry(&it.host, &mut |e, name| {
                i += 1;
                let full = join(path, &name);
                let (last_i, last_is_dir) = last.get(&name).copied().unwrap_or((i - 1, false));
                // A directory named again keeps its first place (its children follow it); any
                // other path is written where it last appears, with what extraction would keep.
                let keep = if e.header().entry_type().is_dir() && last_is_dir {
                    !dirs.made.contains(&full)
                } else {
                    last_i == i - 1
                };
                if !keep {
                    return Ok(());
                }
                dirs.parents(w, &full)?;
                let link = match e.header().entry_type() {
                    tar::EntryType::Link => e
                        .link_name()?
                        .and_then(|l| archive::clean(&l.to_string_lossy()))
                        .map(|l| join(path, &l)),
                    _ => None,
                };
                w.add_tar_entry(e, &full, link.as_deref(), owner)?;
                dirs.made.insert(full);
                Ok(())
            })?;
            continue;
        }
        dirs.parents(w, path)?;
        let meta = fs::symlink_metadata(&it.host)?;
        let mode = if meta.file_type().is_symlink() {
            None
        } else {
            chmod
        };
        w.add(path, &it.host, &meta, owner.unwrap_or((0, 0)), mode)?;
        dirs.made.insert(path.to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::super::layer::Compression;
    use super::*;

    /// A tar that names `d/` and `d/f` twice, as appending to an archive does.
    fn archive_with_duplicates(path: &Path) {
        let mut b = tar::Builder::new(fs::File::create(path).unwrap());
        let mut add = |name: &str, body: &[u8], dir: bool| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(if dir {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            h.set_mode(if dir { 0o755 } else { 0o644 });
            h.set_size(body.len() as u64);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            b.append_data(&mut h, name, body).unwrap();
        };
        add("d/", b"", true);
        add("d/f", b"old", false);
        add("d/g", b"g", false);
        add("d/", b"", true);
        add("d/f", b"new", false);
        b.finish().unwrap();
    }

    #[test]
    fn an_archive_naming_a_path_twice_gives_a_layer_naming_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let tar_path = dir.path().join("a.tar");
        archive_with_duplicates(&tar_path);
        let layer = dir.path().join("layer.tar.gz");
        let mut w = LayerWriter::create_with(&layer, Compression::Gzip).unwrap();
        let item = Item {
            dest: "/opt".into(),
            host: tar_path,
            archive: true,
        };
        write(&mut w, &[item], None, None, &|p| p.is_empty()).unwrap();
        w.finish().unwrap();

        let gz = flate2::read::GzDecoder::new(fs::File::open(&layer).unwrap());
        let mut ar = tar::Archive::new(gz);
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string();
            let mut body = String::new();
            e.read_to_string(&mut body).unwrap();
            seen.push(format!("{name}={body}"));
        }
        assert_eq!(seen, ["opt=", "opt/d=", "opt/d/g=g", "opt/d/f=new"]);
    }
}
