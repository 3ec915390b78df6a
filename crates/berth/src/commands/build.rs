use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use berth_build::exec::{self, BuildFailure, BuildOptions};
use berth_cli::BuildArgs;
use berth_registry::Client;

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

pub fn run(s: &Settings, a: &BuildArgs) -> Result<u8> {
    let started = Instant::now();
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
