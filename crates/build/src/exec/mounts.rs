//! `RUN --mount`: cache, bind, secret and tmpfs mounts, resolved to host paths that the step's
//! container binds. None of them ends up in the layer; only bind sources enter the cache key.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use berth_types::StepMount;

use super::plan::Scratch;
use super::{backend_err, copy, files, sha, BuildFailure, Ctx, Ignore, State};
use crate::{CacheSharing, Dockerfile, MountKind, RunMount};

/// Where secrets are mounted when a mount names no target (BuildKit's place).
const SECRETS_DIR: &str = "/run/secrets";

/// A bind source, resolved before the cache lookup so that its contents enter the key.
struct Bind {
    items: Vec<copy::Item>,
    /// The source is a file, copied to `ROOT/file`, rather than a directory.
    file: bool,
}

/// The mounts of one `RUN`, planned.
pub(super) struct MountPlan<'m> {
    mounts: &'m [RunMount],
    /// One per bind mount, in order.
    binds: Vec<Bind>,
    workdir: String,
    /// What the cache key adds: the digests of bind sources (never a secret).
    pub(super) extra: String,
}

/// Mounts ready for a step; what was made for them goes, and locks are released, on drop.
pub(super) struct Prepared {
    pub(super) mounts: Vec<StepMount>,
    /// `KEY=VALUE` for secrets mounted with `env=`.
    pub(super) env: Vec<String>,
    _scratch: Vec<Scratch>,
    _locks: Vec<File>,
}

fn absolute(workdir: &str, target: &str) -> String {
    if target.starts_with('/') {
        target.to_string()
    } else {
        format!("{}/{}", workdir.trim_end_matches('/'), target)
    }
}

/// A secret's id: `id=`, else the last component of its target (as BuildKit does).
fn secret_id(m: &RunMount) -> Option<String> {
    m.id.clone().or_else(|| {
        m.target
            .as_deref()
            .and_then(|t| t.rsplit('/').next())
            .filter(|s| !s.is_empty())
            .map(String::from)
    })
}

impl Ctx<'_> {
    /// Checks the mounts of a `RUN` and resolves its bind sources.
    pub(super) fn plan_mounts<'m>(
        &self,
        df: &Dockerfile,
        i: usize,
        states: &BTreeMap<usize, State>,
        st: &State,
        mounts: &'m [RunMount],
        fail: &dyn Fn(String) -> BuildFailure,
    ) -> Result<MountPlan<'m>, BuildFailure> {
        let workdir = st.config["config"]["WorkingDir"]
            .as_str()
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string();
        let mut plan = MountPlan {
            mounts,
            binds: Vec::new(),
            workdir,
            extra: String::new(),
        };
        for m in mounts {
            match m.kind {
                MountKind::Ssh => {
                    return Err(fail("RUN --mount=type=ssh is not supported".into()));
                }
                MountKind::Cache | MountKind::Tmpfs if m.target.is_none() => {
                    return Err(fail("--mount needs a target".into()));
                }
                MountKind::Secret => {
                    let id = secret_id(m)
                        .ok_or_else(|| fail("--mount=type=secret needs an id".into()))?;
                    if m.required && !self.opts.secrets.contains_key(&id) {
                        return Err(fail(format!(
                            "secret {id} not found: pass --secret id={id},src=FILE"
                        )));
                    }
                }
                MountKind::Bind => {
                    if m.target.is_none() {
                        return Err(fail("--mount needs a target".into()));
                    }
                    let bind = self.plan_bind(df, i, states, m, &mut plan.extra, fail)?;
                    plan.binds.push(bind);
                }
                _ => {}
            }
        }
        Ok(plan)
    }

    fn plan_bind(
        &self,
        df: &Dockerfile,
        i: usize,
        states: &BTreeMap<usize, State>,
        m: &RunMount,
        extra: &mut String,
        fail: &dyn Fn(String) -> BuildFailure,
    ) -> Result<Bind, BuildFailure> {
        let src = m.source.clone().unwrap_or_else(|| ".".into());
        let rel = src.trim_start_matches("./").trim_start_matches('/');
        let dirs: Vec<PathBuf>;
        let from = match &m.from {
            None => copy::From::Context(&self.opts.context, &self.ignore),
            Some(f) => {
                dirs = self.source_layers(df, i, states, f, extra, fail)?;
                copy::From::Layers(&dirs)
            }
        };
        let host = match &from {
            copy::From::Context(root, _) => Some(root.join(rel)),
            copy::From::Layers(dirs) => files::Merged { dirs }.lookup(rel),
        };
        let file = host.is_some_and(|h| h.is_file());
        let opts = copy::Options {
            heredocs: &[],
            exclude: &Ignore::default(),
            unpack: false,
            parents: false,
        };
        let dest = if file { "/file" } else { "/" };
        let items = copy::plan(&from, std::slice::from_ref(&src), dest, &opts)
            .map_err(|e| fail(format!("--mount source {e}")))?;
        let digest = copy::digest(&items, &mut self.file_digests.borrow_mut())
            .map_err(|e| fail(e.to_string()))?;
        extra.push_str(&digest);
        Ok(Bind { items, file })
    }

    /// Makes the host side of each mount: cache directories (locked as `sharing=` says),
    /// copies of bind sources, secret files and empty directories for tmpfs mounts.
    pub(super) fn prepare_mounts(&self, plan: &MountPlan) -> Result<Prepared, String> {
        let mut out = Prepared {
            mounts: Vec::new(),
            env: Vec::new(),
            _scratch: Vec::new(),
            _locks: Vec::new(),
        };
        let mut binds = plan.binds.iter();
        let scratch = |out: &mut Prepared| -> Result<PathBuf, String> {
            let dir = self.backend.scratch_dir().map_err(backend_err)?;
            out._scratch.push(Scratch(dir.clone()));
            Ok(dir)
        };
        for m in plan.mounts {
            let target = m.target.as_deref().map(|t| absolute(&plan.workdir, t));
            let (source, target, readonly) = match m.kind {
                MountKind::Cache => {
                    let target = target.expect("checked when planned");
                    let id = m.id.clone().unwrap_or_else(|| target.clone());
                    let source = self.cache_mount(&id, m, &mut out, &scratch)?;
                    (source, target, m.readonly.unwrap_or(false))
                }
                MountKind::Bind => {
                    let bind = binds.next().expect("one planned per bind mount");
                    let dir = scratch(&mut out)?;
                    copy::materialize(&bind.items, &dir)
                        .map_err(|e| format!("cannot copy the --mount source: {e}"))?;
                    let source = if bind.file { dir.join("file") } else { dir };
                    let target = target.expect("checked when planned");
                    (source, target, m.readonly.unwrap_or(true))
                }
                MountKind::Secret => {
                    let id = secret_id(m).expect("checked when planned");
                    let Some(path) = self.opts.secrets.get(&id) else {
                        continue;
                    };
                    if let Some(var) = &m.env {
                        let v = fs::read_to_string(path)
                            .map_err(|e| format!("cannot read secret {id}: {e}"))?;
                        out.env.push(format!("{var}={v}"));
                        if target.is_none() {
                            continue;
                        }
                    }
                    let target = target.unwrap_or_else(|| format!("{SECRETS_DIR}/{id}"));
                    (path.clone(), target, true)
                }
                MountKind::Tmpfs => {
                    let target = target.expect("checked when planned");
                    (scratch(&mut out)?, target, false)
                }
                MountKind::Ssh => unreachable!("refused when planned"),
            };
            out.mounts.push(StepMount {
                source,
                target,
                readonly,
            });
        }
        Ok(out)
    }

    /// The persistent directory of cache `id`, beside the build cache index.
    fn cache_mount(
        &self,
        id: &str,
        m: &RunMount,
        out: &mut Prepared,
        scratch: &dyn Fn(&mut Prepared) -> Result<PathBuf, String>,
    ) -> Result<PathBuf, String> {
        use rustix::fs::{flock, FlockOperation};
        use std::os::unix::fs::PermissionsExt;
        let index = self.backend.cache_index();
        let root = index.parent().unwrap_or(Path::new(".")).join("mounts");
        let dir = root.join(sha(&[id]));
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(|e| format!("cannot create cache {id}: {e}"))?;
            let mode = m.mode.unwrap_or(0o755);
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
                .map_err(|e| format!("cannot create cache {id}: {e}"))?;
            // Only as root are the container's ids the host's; in a single-id namespace every
            // file is root's anyway, and under a subordinate range the owner is left as is.
            if (m.uid.is_some() || m.gid.is_some()) && rustix::process::geteuid().is_root() {
                std::os::unix::fs::chown(&dir, m.uid, m.gid)
                    .map_err(|e| format!("cannot chown cache {id}: {e}"))?;
            }
        }
        let sharing = m.sharing.unwrap_or(CacheSharing::Shared);
        if sharing == CacheSharing::Shared {
            return Ok(dir);
        }
        let lock = File::create(dir.with_extension("lock"))
            .map_err(|e| format!("cannot lock cache {id}: {e}"))?;
        if sharing == CacheSharing::Locked {
            flock(&lock, FlockOperation::LockExclusive)
                .map_err(|e| format!("cannot lock cache {id}: {e}"))?;
        } else if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
            // In use by another build: this one gets a fresh, throwaway directory.
            return scratch(out);
        }
        out._locks.push(lock);
        Ok(dir)
    }
}

/// Removes from `upper` the mount points the runtime made for `mounts` where the stage had
/// nothing (`existed` says what it had), so that a mount leaves no trace in the layer.
pub(super) fn remove_mount_points(
    upper: &Path,
    mounts: &[StepMount],
    existed: &dyn Fn(&str) -> bool,
) {
    for m in mounts {
        let mut rel = m.target.trim_matches('/').to_string();
        while !rel.is_empty() && !existed(&rel) {
            let p = upper.join(&rel);
            let gone = match fs::symlink_metadata(&p) {
                Ok(md) if md.is_dir() => fs::remove_dir(&p).is_ok(),
                Ok(md) if md.is_file() && md.len() == 0 => fs::remove_file(&p).is_ok(),
                _ => false,
            };
            if !gone {
                break;
            }
            rel = rel
                .rsplit_once('/')
                .map(|(a, _)| a.to_string())
                .unwrap_or_default();
        }
    }
}
