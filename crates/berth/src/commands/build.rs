use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use berth_archive::Format;
use berth_build::exec::{self, BuildFailure, BuildOptions};
use berth_cli::{BuildArgs, BuilderPruneArgs, LayerCompression, Progress};
use berth_registry::Client;
use berth_types::ImageRef;

mod progress;

use crate::dispatch::build::Engine;
use crate::printer::Printer;
use crate::settings::Settings;

fn key_values(items: &[String], flag: &str, from_env: bool) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for kv in items {
        match kv.split_once('=') {
            Some((k, v)) => out.push((k.to_string(), v.to_string())),
            None if from_env => {
                if let Ok(v) = std::env::var(kv) {
                    out.push((kv.clone(), v));
                }
            }
            None => anyhow::bail!("invalid {flag} {kv:?}: expected KEY=VALUE"),
        }
    }
    Ok(out)
}

/// Where `--output` sends the image besides the store.
enum Output {
    /// An archive of this format at this path.
    Archive(Format, PathBuf),
    /// The registry of each `-t` name.
    Registry,
}

/// `--output type=…,dest=…`.
fn output_spec(spec: &str) -> Result<Output> {
    let (mut kind, mut dest) = (None, None);
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("type", v)) => kind = Some(v),
            Some(("dest", v)) if !v.is_empty() => dest = Some(PathBuf::from(v)),
            // BuildKit's spelling of "push it", which is all type=registry does anyway.
            Some(("push", "true")) => {}
            _ => anyhow::bail!("invalid --output {spec:?}: expected type=TYPE,dest=FILE"),
        }
    }
    let format = match kind {
        Some("oci-archive" | "oci") => Format::Oci,
        Some("docker-archive" | "docker") => Format::Docker,
        Some("registry") => return Ok(Output::Registry),
        Some(other) => anyhow::bail!(
            "invalid --output type {other:?}: expected oci-archive, docker-archive or registry"
        ),
        None => anyhow::bail!("invalid --output {spec:?}: type= is missing"),
    };
    let dest = dest.with_context(|| format!("invalid --output {spec:?}: dest= is missing"))?;
    Ok(Output::Archive(format, dest))
}

/// `--secret id=ID,src=FILE` (`source=` too; the id defaults to the file's name, as in Docker).
/// `env=VAR` (or no `src=`: the variable named as the id) takes the secret from the
/// environment, written to a private temporary file that `kept` holds until the build ends.
fn secret_spec(spec: &str, kept: &mut Vec<tempfile::NamedTempFile>) -> Result<(String, PathBuf)> {
    let (mut id, mut src, mut env) = (None, None, None);
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("id", v)) if !v.is_empty() => id = Some(v.to_string()),
            Some(("src" | "source", v)) if !v.is_empty() => src = Some(PathBuf::from(v)),
            Some(("env", v)) if !v.is_empty() => env = Some(v.to_string()),
            Some(("type", "file" | "env")) => {}
            _ => {
                anyhow::bail!("invalid --secret {spec:?}: expected id=ID,src=FILE or id=ID,env=VAR")
            }
        }
    }
    if src.is_none() {
        let var = env
            .or(id.clone())
            .with_context(|| format!("invalid --secret {spec:?}: src= is missing"))?;
        let value = std::env::var_os(&var)
            .with_context(|| format!("invalid --secret {spec:?}: {var} is not set"))?;
        let mut f = tempfile::NamedTempFile::new().context("cannot store a secret")?;
        std::io::Write::write_all(&mut f, value.as_encoded_bytes())
            .context("cannot store a secret")?;
        src = Some(f.path().to_path_buf());
        kept.push(f);
        id = id.or(Some(var));
    }
    let src = src.expect("set above");
    let id = match id {
        Some(id) => id,
        None => src
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .with_context(|| format!("invalid --secret {spec:?}: id= is missing"))?,
    };
    if !src.is_file() {
        anyhow::bail!("secret {id}: {} is not a readable file", src.display());
    }
    let src = std::fs::canonicalize(&src)
        .with_context(|| format!("secret {id}: cannot resolve {}", src.display()))?;
    Ok((id, src))
}

/// How a Dockerfile read from standard input is named in errors.
const STDIN_NAME: &str = "<stdin>";

/// A context of `-`: standard input is a tar archive of the context (compressed or not), or
/// else a lone Dockerfile with an empty context, as Docker reads it. Returns the context
/// directory (inside `tmp`) and, for a lone Dockerfile, its text.
fn stdin_context(tmp: &std::path::Path) -> Result<(PathBuf, Option<String>)> {
    let input = tmp.join("stdin");
    let mut f = std::fs::File::create(&input)
        .with_context(|| format!("cannot create {}", input.display()))?;
    std::io::copy(&mut std::io::stdin().lock(), &mut f).context("cannot read standard input")?;
    drop(f);
    let dir = tmp.join("context");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if exec::is_archive(&input) {
        exec::unpack_context(&input, &dir)
            .context("cannot unpack the build context from standard input")?;
        return Ok((dir, None));
    }
    let text = std::fs::read_to_string(&input)
        .context("standard input is neither a tar archive nor a Dockerfile")?;
    Ok((dir, Some(text)))
}

pub fn run(s: &Settings, a: &BuildArgs) -> Result<u8> {
    let started = Instant::now();
    let output = a.output.as_deref().map(output_spec).transpose()?;
    let push = a.push || matches!(output, Some(Output::Registry));
    // Checked before building: a build is too long to waste on a missing name.
    if push && a.tag.is_empty() {
        let flag = if a.push {
            "--push"
        } else {
            "--output type=registry"
        };
        anyhow::bail!("{flag}: no name to push to; give one with -t NAME[:TAG]");
    }
    let push_to = a
        .tag
        .iter()
        .filter(|_| push)
        .map(|t| ImageRef::parse(t).with_context(|| format!("-t {t}")))
        .collect::<Result<Vec<_>>>()?;
    let store = s.open_store()?;
    let from_stdin = a.context.as_os_str() == "-";
    // Kept until the build ends: the context read from standard input lives there.
    let mut _tmp = None;
    let (context, stdin_dockerfile) = if from_stdin {
        let tmp = _tmp.insert(
            tempfile::Builder::new()
                .prefix("build-context-")
                .tempdir_in(store.paths().tmp_dir())
                .context("cannot create a temporary directory in the store")?,
        );
        stdin_context(tmp.path())?
    } else {
        (a.context.clone(), None)
    };
    let (text, name) = match stdin_dockerfile {
        // Named so in errors, and so that no NAME.dockerignore is looked for.
        Some(text) => (text, STDIN_NAME.to_string()),
        None if a.file.as_deref() == Some(std::path::Path::new("-")) => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
                .context("cannot read the Dockerfile from standard input")?;
            (text, STDIN_NAME.to_string())
        }
        None => {
            // With a context from standard input, -f names a file inside it.
            let file = match &a.file {
                Some(f) if from_stdin => context.join(f),
                Some(f) => f.clone(),
                None => context.join("Dockerfile"),
            };
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            (text, file.display().to_string())
        }
    };
    let mut env_secrets = Vec::new();
    let opts = BuildOptions {
        dockerfile: text,
        dockerfile_name: name,
        context,
        build_args: key_values(&a.build_arg, "--build-arg", true)?
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        target: a.target.clone(),
        no_cache: a.no_cache,
        labels: key_values(&a.label, "--label", false)?,
        tags: a.tag.clone(),
        platform: a.platform.clone(),
        compression: match a.compression {
            LayerCompression::Gzip => exec::Compression::Gzip,
            LayerCompression::Zstd => exec::Compression::Zstd,
        },
        secrets: a
            .secret
            .iter()
            .map(|x| secret_spec(x, &mut env_secrets))
            .collect::<Result<_>>()?,
    };
    let p = Printer::new(a.quiet);
    let engine = Engine {
        store: &store,
        client: Client::new(s.registry_options(&a.registry))?,
        printer: &p,
        pull: a.pull,
        pulled: Default::default(),
        network: a.network.clone(),
        add_hosts: a.add_host.clone(),
    };
    let tty = match a.progress {
        Progress::Plain => false,
        Progress::Tty => true,
        Progress::Auto => std::io::stderr().is_terminal(),
    };
    let progress = progress::Log::new(a.quiet, tty);
    let log = |l: &str| progress.line(l);
    let result = exec::build(&engine, &opts, &log);
    progress.finish();
    let built = match result {
        Ok(b) => b,
        Err(e) => {
            // Build errors are the user's input, not Berth failing: exit 1 as Docker does.
            let e = match e {
                BuildFailure::Parse(e) => e.to_string(),
                e => e.to_string(),
            };
            eprintln!("berth: {e}");
            return Ok(1);
        }
    };
    if let Some(f) = &a.iidfile {
        std::fs::write(f, built.id.to_string())
            .with_context(|| format!("cannot write {}", f.display()))?;
    }
    if let Some(Output::Archive(format, dest)) = &output {
        let img = store.lookup(&built.id.to_string())?;
        let names = a
            .tag
            .iter()
            .map(|t| ImageRef::parse(t))
            .collect::<Result<Vec<_>, _>>()?;
        let entry = super::archive::save_image(&store, &img, names)?;
        super::archive::write_archive(&store, &[entry], *format, Some(dest))?;
        log(&format!("wrote {}", dest.display()));
    }
    log(&format!(
        "built {} in {:.3}s ({} steps, {} cached)",
        built.id.short(),
        started.elapsed().as_secs_f64(),
        built.executed + built.cached,
        built.cached
    ));
    for t in &a.tag {
        log(&format!("tagged {t}"));
    }
    if !push_to.is_empty() {
        let img = store.lookup(&built.id.to_string())?;
        for r in &push_to {
            crate::dispatch::push::push(&store, &engine.client, &img, r, &p)?;
        }
    }
    println!("{}", built.id);
    Ok(0)
}

pub fn prune(s: &Settings, a: &BuilderPruneArgs) -> Result<u8> {
    let store = s.open_store()?;
    if !a.force {
        let what = if a.all {
            "all build cache"
        } else {
            "the build cache no image uses"
        };
        if !super::rmi::confirm(&format!(
            "WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] "
        )) {
            return Ok(0);
        }
    }
    let index = store.paths().build_cache_index();
    let prune = |all: bool| {
        exec::prune_cache(&index, all, &|l| {
            store.has_blob(&l.blob) && store.has_layer(&l.diff_id)
        })
        .with_context(|| format!("cannot prune {}", index.display()))
    };
    // The index pins nothing (only images keep layers), so the collection frees the layers
    // of every step no image uses; without --all, only their entries go.
    let mut removed = if a.all { prune(true)? } else { 0 };
    if a.all {
        store.remove_build_cache_mounts()?;
    }
    let freed = store.collect_garbage()?;
    if !a.all {
        removed += prune(false)?;
    }
    println!("Deleted build cache entries: {removed}");
    println!("Total reclaimed space: {}", crate::humanize::size(freed));
    Ok(0)
}
