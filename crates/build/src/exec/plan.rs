//! Planning a `COPY` or `ADD`: its sources (context, stage, image or heredoc), destination,
//! exclusions, and the digest of everything it reads, for the cache key.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use super::{backend_err, copy, remote, BuildFailure, Ctx, Ignore, State};
use crate::{Dockerfile, Heredoc, Instruction};

/// A directory removed when dropped: heredoc bodies live there until the layer is written.
pub(super) struct Scratch(pub(super) PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A `COPY`/`ADD` ready to write.
pub(super) struct CopyPlan {
    pub(super) items: Vec<copy::Item>,
    /// The destination, made absolute against `WORKDIR`.
    pub(super) dest: String,
    /// What the cache key adds: the digest of the sources and of the stage copied from.
    pub(super) extra: String,
    /// `ADD`'s URL sources; their files join `items` before the layer is written.
    pub(super) remote: remote::Remotes,
    _bodies: Option<Scratch>,
}

impl Ctx<'_> {
    /// The layer directories, top first, of what `from` names (an earlier stage, else an
    /// image), with what identifies them added to the cache key in `extra`.
    pub(super) fn source_layers(
        &self,
        df: &Dockerfile,
        i: usize,
        states: &BTreeMap<usize, State>,
        from: &str,
        extra: &mut String,
        fail: &dyn Fn(String) -> BuildFailure,
    ) -> Result<Vec<PathBuf>, BuildFailure> {
        let layers = match df.find_stage(from, i) {
            Some(j) => {
                extra.push_str(&states[&j].key);
                states[&j].layers.clone()
            }
            None => {
                let img = self
                    .backend
                    .base_image(from, self.opts.platform.as_deref())
                    .map_err(|e| fail(backend_err(e)))?;
                extra.push_str(&img.id.to_string());
                img.layers
            }
        };
        Ok(layers
            .iter()
            .rev()
            .map(|l| self.backend.layer_dir(&l.diff_id))
            .collect())
    }

    /// Plans `ins` when it is a `COPY` or `ADD`; `None` for other instructions.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn plan_copy(
        &self,
        df: &Dockerfile,
        i: usize,
        states: &BTreeMap<usize, State>,
        st: &State,
        ins: &Instruction,
        args: &[(String, String)],
        fail: &dyn Fn(String) -> BuildFailure,
    ) -> Result<Option<CopyPlan>, BuildFailure> {
        let (srcs, dest, from, exclude, heredocs, unpack, parents, checksum) = match ins {
            Instruction::Copy {
                srcs,
                dest,
                from,
                exclude,
                heredocs,
                parents,
                ..
            } => (
                srcs,
                dest,
                from.as_ref(),
                exclude,
                heredocs,
                false,
                *parents,
                None,
            ),
            Instruction::Add {
                srcs,
                dest,
                exclude,
                heredocs,
                checksum,
                ..
            } => (
                srcs,
                dest,
                None,
                exclude,
                heredocs,
                true,
                false,
                checksum.as_deref(),
            ),
            _ => return Ok(None),
        };
        let workdir = st.config["config"]["WorkingDir"].as_str().unwrap_or("/");
        let dest = absolute_dest(workdir, dest);
        let mut extra = String::new();
        let remote = if unpack {
            self.plan_remote(srcs, &dest, checksum, &mut extra)
                .map_err(fail)?
        } else if let Some(u) = srcs.iter().find(|s| remote::is_url(s)) {
            return Err(fail(format!("{u}: COPY cannot download a URL; use ADD")));
        } else {
            remote::Remotes::default()
        };
        // The other sources are copied as if the URLs were not there, except that with
        // several sources the destination is a directory whatever it ends with.
        let local: Vec<String> = srcs
            .iter()
            .filter(|s| !unpack || !remote::is_url(s))
            .cloned()
            .collect();
        let local_dest = if srcs.len() > 1 && !dest.ends_with('/') {
            format!("{dest}/")
        } else {
            dest.clone()
        };
        let dirs: Vec<PathBuf>;
        let source = match from {
            None => copy::From::Context(&self.opts.context, &self.ignore),
            Some(f) => {
                dirs = self.source_layers(df, i, states, f, &mut extra, fail)?;
                copy::From::Layers(&dirs)
            }
        };
        let (bodies, scratch) = if heredocs.is_empty() {
            (Vec::new(), None)
        } else {
            let dir = self
                .backend
                .scratch_dir()
                .map_err(|e| fail(backend_err(e)))?;
            let scratch = Scratch(dir);
            let env = env_and_args(&st.config, args);
            let bodies =
                write_bodies(&scratch.0, heredocs, &env, df.directives.escape).map_err(fail)?;
            (bodies, Some(scratch))
        };
        let exclude = Ignore::parse(&exclude.join("\n"));
        let opts = copy::Options {
            heredocs: &bodies,
            exclude: &exclude,
            unpack,
            parents,
        };
        let items = if local.is_empty() {
            Vec::new()
        } else {
            copy::plan(&source, &local, &local_dest, &opts).map_err(fail)?
        };
        let digest = copy::digest(&items, &mut self.file_digests.borrow_mut());
        extra.push_str(&digest.map_err(|e| fail(e.to_string()))?);
        Ok(Some(CopyPlan {
            items,
            dest,
            extra,
            remote,
            _bodies: scratch,
        }))
    }
}

/// The variables a heredoc body sees: the stage's environment, then build arguments in scope.
fn env_and_args(config: &Value, args: &[(String, String)]) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = config["config"]["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str()?.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in args {
        if !vars.iter().any(|(n, _)| n == k) {
            vars.push((k.clone(), v.clone()));
        }
    }
    vars
}

/// Writes each body to `dir/NAME` (mode 0644), variables expanded unless the delimiter was
/// quoted.
fn write_bodies(
    dir: &std::path::Path,
    heredocs: &[Heredoc],
    vars: &[(String, String)],
    escape: char,
) -> Result<Vec<(String, PathBuf)>, String> {
    use std::os::unix::fs::PermissionsExt;
    let lookup = |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut out = Vec::new();
    for h in heredocs {
        if h.name.contains('/') || h.name == "." || h.name == ".." {
            return Err(format!("invalid heredoc name {:?} for a file", h.name));
        }
        let text = if h.expand {
            crate::expand_raw(&h.text(), &lookup, escape)
                .map_err(|e| format!("heredoc {}: {e}", h.name))?
        } else {
            h.text()
        };
        let p = dir.join(&h.name);
        fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644))
            .map_err(|e| format!("cannot chmod {}: {e}", p.display()))?;
        out.push((h.name.clone(), p));
    }
    Ok(out)
}

/// `--chown=UID[:GID]`, numeric only: names need the image's passwd file.
pub(super) fn parse_chown(c: Option<&str>) -> Result<Option<(u32, u32)>, String> {
    let Some(c) = c else { return Ok(None) };
    let (u, g) = c.split_once(':').unwrap_or((c, c));
    match (u.parse(), g.parse()) {
        (Ok(u), Ok(g)) => Ok(Some((u, g))),
        _ => Err(format!("--chown={c}: only numeric ids are supported")),
    }
}

/// A COPY or ADD destination made absolute against `workdir` and cleaned of `.` and `..`. As in
/// BuildKit, `.`, `DIR/.` and `DIR/` all name a directory to copy into, which the trailing `/` of
/// the result keeps saying. (Docker's legacy builder copies to a file `DIR` for `DIR/.`.)
fn absolute_dest(workdir: &str, dest: &str) -> String {
    let into_dir = dest == "." || dest.ends_with('/') || dest.ends_with("/.");
    let joined = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{workdir}/{dest}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = format!("/{}", parts.join("/"));
    if into_dir && out != "/" {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::absolute_dest;

    #[test]
    fn destinations_as_docker_reads_them() {
        assert_eq!(absolute_dest("/src", "."), "/src/");
        assert_eq!(absolute_dest("/src", "./"), "/src/");
        assert_eq!(absolute_dest("/src", "sub/."), "/src/sub/");
        assert_eq!(absolute_dest("/src", "f"), "/src/f");
        assert_eq!(absolute_dest("/", "."), "/");
        assert_eq!(absolute_dest("/a/b", "../c"), "/a/c");
        assert_eq!(absolute_dest("/a", "/x/./y/"), "/x/y/");
    }
}
