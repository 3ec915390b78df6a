use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use berth_archive::Format;
use berth_build::exec::{self, BuildFailure, BuildOptions};
use berth_cli::{BuildArgs, BuilderPruneArgs};
use berth_registry::Client;
use berth_types::ImageRef;

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

/// `--output type=…,dest=…`: the archive format and its file.
fn output_spec(spec: &str) -> Result<(Format, PathBuf)> {
    let (mut kind, mut dest) = (None, None);
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("type", v)) => kind = Some(v),
            Some(("dest", v)) if !v.is_empty() => dest = Some(PathBuf::from(v)),
            _ => anyhow::bail!("invalid --output {spec:?}: expected type=TYPE,dest=FILE"),
        }
    }
    let format = match kind {
        Some("oci-archive" | "oci") => Format::Oci,
        Some("docker-archive" | "docker") => Format::Docker,
        Some(other) => {
            anyhow::bail!("invalid --output type {other:?}: expected oci-archive or docker-archive")
        }
        None => anyhow::bail!("invalid --output {spec:?}: type= is missing"),
    };
    let dest = dest.with_context(|| format!("invalid --output {spec:?}: dest= is missing"))?;
    Ok((format, dest))
}

/// `--secret id=ID,src=FILE` (`source=` too; the id defaults to the file's name, as in Docker).
fn secret_spec(spec: &str) -> Result<(String, PathBuf)> {
    let (mut id, mut src) = (None, None);
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("id", v)) if !v.is_empty() => id = Some(v.to_string()),
            Some(("src" | "source", v)) if !v.is_empty() => src = Some(PathBuf::from(v)),
            Some(("type", "file")) => {}
            _ => anyhow::bail!("invalid --secret {spec:?}: expected id=ID,src=FILE"),
        }
    }
    let src = src.with_context(|| format!("invalid --secret {spec:?}: src= is missing"))?;
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

pub fn run(s: &Settings, a: &BuildArgs) -> Result<u8> {
    let started = Instant::now();
    let output = a.output.as_deref().map(output_spec).transpose()?;
    let file = a
        .file
        .clone()
        .unwrap_or_else(|| a.context.join("Dockerfile"));
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let opts = BuildOptions {
        dockerfile: text,
        dockerfile_name: file.display().to_string(),
        context: a.context.clone(),
        build_args: key_values(&a.build_arg, "--build-arg", true)?
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        target: a.target.clone(),
        no_cache: a.no_cache,
        labels: key_values(&a.label, "--label", false)?,
        tags: a.tag.clone(),
        secrets: a
            .secret
            .iter()
            .map(|x| secret_spec(x))
            .collect::<Result<_>>()?,
    };
    let store = s.open_store()?;
    let p = Printer::new(a.quiet);
    let engine = Engine {
        store: &store,
        client: Client::new(s.registry_options(&a.registry))?,
        printer: &p,
    };
    let quiet = a.quiet;
    let log = |l: &str| {
        if !quiet {
            eprintln!("{l}");
        }
    };
    let built = match exec::build(&engine, &opts, &log) {
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
    if let Some((format, dest)) = &output {
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
