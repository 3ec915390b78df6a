//! Executing a parsed Dockerfile against a [`BuildBackend`]: stages in dependency order, each
//! step cached by its parent, its instruction after substitution and its inputs.

mod archive;
mod copy;
mod filehash;
mod files;
mod layer;
mod meta;
mod mounts;
mod onbuild;
mod plan;
mod platform;
mod prune;
mod remote;
mod script;
mod stubs;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use berth_types::{BuildBackend, BuildError, Digest, LayerRef, RunStep};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

pub use archive::{is_archive, unpack_context};
pub use files::Ignore;
pub use layer::{is_opaque, Compression, IdMaps, LayerFile, LayerWriter};
use meta::now;
use platform::{foreign_platform, with_platform_args};
use prune::file_digests_path;
pub use prune::prune_cache;
pub use script::{run_argv, StepFiles};

use crate::{Dockerfile, Instruction, ParseError, ShellOrExec};

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// The name the Dockerfile is shown under in errors.
    pub dockerfile_name: String,
    /// The context directory.
    pub context: PathBuf,
    /// `--build-arg`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--label`.
    pub labels: Vec<(String, String)>,
    /// `-t`.
    pub tags: Vec<String>,
    /// `--compression`: how the layers the build writes are compressed.
    pub compression: Compression,
    /// `--platform`: the platform of base images whose `FROM` names none.
    pub platform: Option<String>,
    /// `--secret id=ID,src=FILE`: secret ids and the files that hold them.
    pub secrets: BTreeMap<String, PathBuf>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildFailure {
    /// The Dockerfile does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A `RUN` exited non-zero.
    #[error("{file}:{line}:{col}: {instruction}: exit code {code}{tail}")]
    RunFailed {
        /// The Dockerfile.
        file: String,
        /// Line.
        line: usize,
        /// Column.
        col: usize,
        /// The instruction as written.
        instruction: String,
        /// Its exit code.
        code: i32,
        /// The last lines of its output, each on a line of its own.
        tail: String,
    },
    /// Any other step failed.
    #[error("{file}:{line}:{col}: {instruction}: {message}")]
    Step {
        /// The Dockerfile.
        file: String,
        /// Line.
        line: usize,
        /// Column.
        col: usize,
        /// The instruction as written.
        instruction: String,
        /// What went wrong.
        message: String,
    },
    /// Setting up or finishing the build failed.
    #[error("{0}")]
    Other(String),
}

/// What one cached step produced.
#[derive(Serialize, Deserialize, Clone)]
struct CacheEntry {
    layer: Option<LayerRef>,
    config: Value,
}

/// A stage as built so far.
#[derive(Clone)]
struct State {
    layers: Vec<LayerRef>,
    config: Value,
    key: String,
}

/// The result of a build.
#[derive(Debug, Clone)]
pub struct Built {
    /// The image id.
    pub id: Digest,
    /// Steps executed and steps taken from the cache.
    pub executed: usize,
    /// Steps taken from the cache.
    pub cached: usize,
}

struct Ctx<'a> {
    backend: &'a dyn BuildBackend,
    opts: &'a BuildOptions,
    log: &'a (dyn Fn(&str) + Sync),
    ignore: Ignore,
    cache: BTreeMap<String, CacheEntry>,
    step: usize,
    executed: usize,
    cached: usize,
    /// Whether the log already says how RUN steps map ids.
    mode_noted: std::cell::Cell<bool>,
    /// Digests of source files, remembered across builds.
    file_digests: std::cell::RefCell<filehash::FileDigests>,
    /// `SOURCE_DATE_EPOCH`, see [`meta::source_date_epoch`].
    epoch: Option<i64>,
}

fn sha(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    format!("{:x}", h.finalize())
}

/// Builds the image the options describe; progress lines go to `log`.
pub fn build(
    backend: &dyn BuildBackend,
    opts: &BuildOptions,
    log: &(dyn Fn(&str) + Sync),
) -> Result<Built, BuildFailure> {
    let build_args = with_platform_args(opts)?;
    let epoch = meta::source_date_epoch(&build_args).map_err(BuildFailure::Other)?;
    let df = crate::parse_with_args(&opts.dockerfile, &opts.dockerfile_name, &build_args)?;
    let target = match &opts.target {
        Some(t) => df
            .find_stage(t, df.stages.len())
            .ok_or_else(|| BuildFailure::Other(format!("target stage {t:?} could not be found")))?,
        None => df.stages.len() - 1,
    };
    // BuildKit's rule: `NAME.dockerignore` beside the Dockerfile wins over the context's.
    let own = PathBuf::from(format!("{}.dockerignore", opts.dockerfile_name));
    let own = own.is_file().then_some(own);
    let ignore = own
        .map_or_else(
            || Err(std::io::ErrorKind::NotFound.into()),
            fs::read_to_string,
        )
        .or_else(|_| fs::read_to_string(opts.context.join(".dockerignore")))
        .map(|t| Ignore::parse(&t))
        .unwrap_or_default();
    // Read even with --no-cache: the index is written back, and must keep others' entries.
    let cache = fs::read(backend.cache_index())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut cx = Ctx {
        backend,
        opts,
        log,
        ignore,
        cache,
        step: 0,
        executed: 0,
        cached: 0,
        mode_noted: std::cell::Cell::new(false),
        file_digests: std::cell::RefCell::new(filehash::FileDigests::load(&file_digests_path(
            backend,
        ))),
        epoch,
    };
    let needed = needed_stages(&df, target);
    let mut states: BTreeMap<usize, State> = BTreeMap::new();
    let result = (|| {
        for i in needed {
            let st = cx.build_stage(&df, i, &states)?;
            states.insert(i, st);
        }
        Ok::<_, BuildFailure>(())
    })();
    cx.save_cache();
    cx.file_digests.borrow().save(&file_digests_path(backend));
    result?;
    let mut st = states.remove(&target).expect("target stage was built");
    let cfg = config_obj(&mut st.config);
    if !opts.labels.is_empty() {
        let labels = obj(cfg, "Labels");
        for (k, v) in &opts.labels {
            labels.insert(k.clone(), json!(v));
        }
    }
    let created = st.config["history"]
        .as_array()
        .and_then(|h| h.last())
        .and_then(|h| h["created"].as_str())
        .map(String::from)
        .unwrap_or_else(|| now(epoch));
    st.config["created"] = json!(created);
    st.config["rootfs"] = json!({
        "type": "layers",
        "diff_ids": st.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec(&st.config).map_err(|e| BuildFailure::Other(e.to_string()))?;
    let id = backend
        .commit(&bytes, &st.layers, &opts.tags)
        .map_err(|e| BuildFailure::Other(format!("cannot commit the image: {e}")))?;
    Ok(Built {
        id,
        executed: cx.executed,
        cached: cx.cached,
    })
}

/// The stages the target needs (through `FROM` and `COPY --from`), in file order.
fn needed_stages(df: &Dockerfile, target: usize) -> Vec<usize> {
    let mut need = vec![false; df.stages.len()];
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut need[i], true) {
            continue;
        }
        if let Some(j) = df.find_stage(&df.stages[i].base, i) {
            todo.push(j);
        }
        for ins in &df.stages[i].instructions {
            let froms: Vec<&String> = match &ins.instruction {
                Instruction::Copy { from: Some(f), .. } => vec![f],
                Instruction::Run { mounts, .. } => {
                    mounts.iter().filter_map(|m| m.from.as_ref()).collect()
                }
                _ => Vec::new(),
            };
            todo.extend(froms.into_iter().filter_map(|f| df.find_stage(f, i)));
        }
    }
    (0..need.len()).filter(|i| need[*i]).collect()
}

fn config_obj(config: &mut Value) -> &mut Map<String, Value> {
    obj(
        config.as_object_mut().expect("image config is an object"),
        "config",
    )
}

fn obj<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    if !m.get(key).is_some_and(Value::is_object) {
        m.insert(key.to_string(), json!({}));
    }
    m.get_mut(key)
        .and_then(Value::as_object_mut)
        .expect("just made an object")
}

fn argv(cmd: &ShellOrExec, shell: &[String]) -> Vec<String> {
    match cmd {
        ShellOrExec::Exec(v) => v.clone(),
        ShellOrExec::Shell(s) => shell.iter().cloned().chain([s.clone()]).collect(),
    }
}

fn backend_err(e: BuildError) -> String {
    e.to_string()
}

impl Ctx<'_> {
    fn save_cache(&self) {
        let path = self.backend.cache_index();
        if let Ok(bytes) = serde_json::to_vec(&self.cache) {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            if let Some(dir) = path.parent() {
                let _ = fs::create_dir_all(dir);
            }
            // Written aside and renamed, so a concurrent build never reads half an index.
            if fs::write(&tmp, bytes).is_ok() {
                let _ = fs::rename(&tmp, &path);
            }
        }
    }

    fn base(
        &self,
        df: &Dockerfile,
        i: usize,
        states: &BTreeMap<usize, State>,
    ) -> Result<State, BuildFailure> {
        let stage = &df.stages[i];
        if let Some(j) = df.find_stage(&stage.base, i) {
            return Ok(states[&j].clone());
        }
        let platform = stage.platform.as_deref().or(self.opts.platform.as_deref());
        if stage.base.eq_ignore_ascii_case("scratch") {
            let p = match platform {
                Some(p) => p.parse::<berth_types::Platform>().map_err(|e| {
                    BuildFailure::Other(format!("{}:{}: {e}", df.file, stage.pos.line))
                })?,
                None => berth_types::Platform::host(),
            };
            return Ok(State {
                layers: Vec::new(),
                config: json!({
                    "architecture": p.architecture, "os": p.os, "config": {},
                    "rootfs": {"type": "layers", "diff_ids": []}, "history": [],
                }),
                // The host's platform keeps the key it always had.
                key: match platform {
                    Some(_) => sha(&["scratch", &p.os, &p.architecture]),
                    None => sha(&["scratch"]),
                },
            });
        }
        let img = self
            .backend
            .base_image(&stage.base, platform)
            .map_err(|e| BuildFailure::Step {
                file: df.file.clone(),
                line: stage.pos.line,
                col: stage.pos.col,
                instruction: format!("FROM {}", stage.base),
                message: backend_err(e),
            })?;
        Ok(State {
            layers: img.layers,
            config: img.config,
            key: sha(&[&img.id.to_string()]),
        })
    }

    fn build_stage(
        &mut self,
        df: &Dockerfile,
        i: usize,
        states: &BTreeMap<usize, State>,
    ) -> Result<State, BuildFailure> {
        let stage = &df.stages[i];
        self.step += 1;
        (self.log)(&format!("#{} FROM {}", self.step, stage.base));
        let mut st = self.base(df, i, states)?;
        // The base's triggers run now and are not handed down (Docker's ONBUILD).
        let triggers = onbuild::triggers(&st.config);
        let with_triggers;
        let df = if triggers.is_empty() {
            df
        } else {
            config_obj(&mut st.config).remove("OnBuild");
            with_triggers = onbuild::prepend(df, i, &triggers)?;
            &with_triggers
        };
        if !st.config["history"].is_array() {
            st.config["history"] = json!([]);
        }
        meta::default_path(&mut st.config);
        let image_env: Vec<(String, String)> = st.config["config"]["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str()?.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let mut cmd_set = false;
        for r in df.resolve_stage(i, &image_env)? {
            self.step += 1;
            let ins = &r.step.instruction;
            cmd_set |= matches!(ins, Instruction::Cmd(_));
            let line = r.step.source.trim().to_string();
            let fail = |message: String| BuildFailure::Step {
                file: df.file.clone(),
                line: r.step.pos.line,
                col: r.step.pos.col,
                instruction: line.clone(),
                message,
            };
            let args: Vec<String> = r.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            // Inputs that the instruction text does not show: file contents, stage results.
            let mut extra = String::new();
            let mut copy_items = self.plan_copy(df, i, states, &st, ins, &r.args, &fail)?;
            if let Some(p) = &copy_items {
                extra.push_str(&p.extra);
            }
            let mount_plan = match ins {
                Instruction::Run { mounts, .. } if !mounts.is_empty() => {
                    let p = self.plan_mounts(df, i, states, &st, mounts, &fail)?;
                    extra.push_str(&p.extra);
                    Some(p)
                }
                _ => None,
            };
            // Layers of another compression are other blobs: they must not be taken for these.
            if self.opts.compression != Compression::Gzip {
                extra.push_str(&format!("{:?}", self.opts.compression));
            }
            // So are layers with clamped times, and history recorded at another time.
            if let Some(e) = self.epoch {
                extra.push_str(&format!("epoch={e}"));
            }
            let key = sha(&[&st.key, &format!("{ins:?}"), &args.join("\n"), &extra]);
            if let Some(hit) = self
                .cache
                .get(&key)
                .filter(|_| !self.opts.no_cache)
                .filter(|h| h.layer.as_ref().is_none_or(|l| self.backend.has_layer(l)))
            {
                (self.log)(&format!("#{} CACHED {line}", self.step));
                st.layers.extend(hit.layer.clone());
                st.config = hit.config.clone();
                st.key = key;
                self.cached += 1;
                continue;
            }
            (self.log)(&format!("#{} {line}", self.step));
            self.executed += 1;
            let mut layer = None;
            let mut created_by = format!("/bin/sh -c #(nop) {}", onbuild::history_text(ins, &line));
            match ins {
                Instruction::Run {
                    cmd,
                    heredocs,
                    network,
                    ..
                } => {
                    foreign_platform(&st.config).map_err(fail)?;
                    let prepared = mount_plan
                        .as_ref()
                        .map(|p| self.prepare_mounts(p))
                        .transpose()
                        .map_err(fail)?;
                    let shell: Vec<String> = st.config["config"]["Shell"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|s| s.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
                    let (argv, files) = run_argv(cmd, heredocs, &shell).map_err(fail)?;
                    created_by = format!("RUN {}", argv.join(" "));
                    layer = self.run(
                        &st,
                        (argv, files),
                        args.clone(),
                        (network.clone(), prepared),
                        df,
                        &r.step,
                        &line,
                    )?;
                }
                Instruction::Copy { chown, chmod, .. } | Instruction::Add { chown, chmod, .. } => {
                    let mut plan = copy_items.take().expect("planned above");
                    self.fetch_remote(&mut plan).map_err(fail)?;
                    let (items, dest) = (&plan.items, &plan.dest);
                    let owner = plan::parse_chown(chown.as_deref()).map_err(fail)?;
                    let mode = chmod
                        .as_deref()
                        .map(|m| {
                            u32::from_str_radix(m, 8)
                                .map_err(|_| fail(format!("invalid --chmod {m:?}")))
                        })
                        .transpose()?;
                    created_by = format!("{} {}", ins.keyword(), dest);
                    let dirs = self.layer_dirs(&st);
                    let merged = files::Merged { dirs: &dirs };
                    layer = self
                        .write_layer(|w| {
                            copy::write(w, items, owner, mode, &|p| merged.lookup(p).is_some())
                        })
                        .map_err(fail)?;
                }
                Instruction::Workdir(dir) => {
                    let cfg = config_obj(&mut st.config);
                    let cur = cfg.get("WorkingDir").and_then(Value::as_str).unwrap_or("/");
                    let new = if dir.starts_with('/') {
                        dir.clone()
                    } else {
                        format!("{}/{}", cur.trim_end_matches('/'), dir)
                    };
                    cfg.insert("WorkingDir".into(), json!(new));
                    let dirs = self.layer_dirs(&st);
                    let merged = files::Merged { dirs: &dirs };
                    if merged.lookup(&new).is_none() {
                        // Made now, so the image has it whatever runs later.
                        layer = self
                            .write_layer(|w| {
                                let mut p = String::new();
                                for c in new.split('/').filter(|c| !c.is_empty()) {
                                    p = format!("{p}/{c}");
                                    if merged.lookup(&p).is_none() {
                                        w.add_dir(&p, 0o755, (0, 0))?;
                                    }
                                }
                                Ok(())
                            })
                            .map_err(fail)?;
                    }
                }
                other => meta::apply_meta(&mut st.config, other, &r.step.text, cmd_set),
            }
            let mut h = json!({"created": now(self.epoch), "created_by": created_by});
            if layer.is_none() {
                h["empty_layer"] = json!(true);
            }
            st.config["history"]
                .as_array_mut()
                .expect("history is an array")
                .push(h);
            st.layers.extend(layer.clone());
            st.key = key.clone();
            self.cache.insert(
                key,
                CacheEntry {
                    layer,
                    config: st.config.clone(),
                },
            );
        }
        Ok(st)
    }

    /// The unpacked layers of `st`, top layer first.
    fn layer_dirs(&self, st: &State) -> Vec<PathBuf> {
        let layers = st.layers.iter().rev();
        layers.map(|l| self.backend.layer_dir(&l.diff_id)).collect()
    }

    /// Writes a layer with `fill`; stores and unpacks it unless it came out empty.
    fn write_layer(
        &self,
        fill: impl FnOnce(&mut layer::LayerWriter) -> std::io::Result<()>,
    ) -> Result<Option<LayerRef>, String> {
        let dir = self.backend.scratch_dir().map_err(backend_err)?;
        let res = (|| {
            let mut w =
                layer::LayerWriter::create_with(&dir.join("layer.tar"), self.opts.compression)
                    .map_err(|e| e.to_string())?;
            w.clamp_mtimes(self.epoch.map(|e| e as u64));
            fill(&mut w).map_err(|e| format!("cannot write the layer: {e}"))?;
            if w.entries == 0 {
                return Ok(None);
            }
            let f = w
                .finish()
                .map_err(|e| format!("cannot write the layer: {e}"))?;
            self.backend
                .add_layer(
                    &f.path,
                    &f.blob,
                    &f.diff_id,
                    self.opts.compression.media_type(),
                )
                .map(Some)
                .map_err(backend_err)
        })();
        let _ = fs::remove_dir_all(&dir);
        res
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        st: &State,
        (argv, files): (Vec<String>, script::StepFiles),
        mut env: Vec<String>,
        (network, mounts): (Option<String>, Option<mounts::Prepared>),
        df: &Dockerfile,
        step: &crate::Located,
        line: &str,
    ) -> Result<Option<LayerRef>, BuildFailure> {
        let other = |m: String| BuildFailure::Step {
            file: df.file.clone(),
            line: step.pos.line,
            col: step.pos.col,
            instruction: line.to_string(),
            message: m,
        };
        let dir = self
            .backend
            .scratch_dir()
            .map_err(|e| other(backend_err(e)))?;
        let res = (|| {
            let (upper, work) = (dir.join("upper"), dir.join("work"));
            for d in [&upper, &work] {
                fs::create_dir_all(d)
                    .map_err(|e| other(format!("cannot create {}: {e}", d.display())))?;
            }
            let step_mounts = mounts
                .as_ref()
                .map(|m| m.mounts.clone())
                .unwrap_or_default();
            env.extend(mounts.as_ref().map(|m| m.env.clone()).unwrap_or_default());
            let run = RunStep {
                layers: st.layers.clone(),
                config: st.config.clone(),
                argv,
                env,
                upper: upper.clone(),
                work,
                network,
                files,
                mounts: step_mounts.clone(),
            };
            if !self.mode_noted.replace(true) {
                if let Some(mode) = self.backend.run_mode() {
                    (self.log)(&format!("#{} {mode}", self.step));
                }
            }
            let tail = std::sync::Mutex::new(Vec::<String>::new());
            let pending = std::sync::Mutex::new(Vec::<u8>::new());
            let prefix = format!("#{} ", self.step);
            let emit = |bytes: &[u8]| {
                let mut p = pending.lock().expect("no panics hold this lock");
                p.extend_from_slice(bytes);
                while let Some(n) = p.iter().position(|b| *b == b'\n') {
                    let l: Vec<u8> = p.drain(..=n).collect();
                    let s = String::from_utf8_lossy(&l[..n]).to_string();
                    (self.log)(&format!("{prefix}{s}"));
                    let mut t = tail.lock().expect("no panics hold this lock");
                    t.push(s);
                    if t.len() > 10 {
                        t.remove(0);
                    }
                }
            };
            let out = self
                .backend
                .run(&run, &emit)
                .map_err(|e| other(backend_err(e)))?;
            emit(b"\n");
            if out.exit_code != 0 {
                let t = tail.into_inner().expect("no panics hold this lock");
                let tail: String = t
                    .iter()
                    .filter(|l| !l.is_empty())
                    .map(|l| format!("\n  {l}"))
                    .collect();
                return Err(BuildFailure::RunFailed {
                    file: df.file.clone(),
                    line: step.pos.line,
                    col: step.pos.col,
                    instruction: line.to_string(),
                    code: out.exit_code,
                    tail,
                });
            }
            drop(mounts);
            let dirs: Vec<PathBuf> = st
                .layers
                .iter()
                .rev()
                .map(|l| self.backend.layer_dir(&l.diff_id))
                .collect();
            let merged = files::Merged { dirs: &dirs };
            mounts::remove_mount_points(&upper, &step_mounts, &|p| merged.lookup(p).is_some());
            let ids = IdMaps {
                uids: out.uid_map,
                gids: out.gid_map,
            };
            stubs::remove(&upper, &self.layer_dirs(st));
            self.write_layer(|w| w.add_upper(&upper, &ids))
                .map_err(other)
        })();
        let _ = fs::remove_dir_all(&dir);
        res
    }
}
