use std::io::Write;

use anyhow::{bail, Result};
use berth_cli::{MonitorArgs, RunArgs, StartArgs};
use berth_registry::Client;
use berth_store::{ContainerRecord, Store, StoreError};
use berth_types::{ImageRef, Platform};

use crate::dispatch::create::{self, ImageInput};
use crate::dispatch::host::effective_status;
use crate::dispatch::start::{self, Io};
use crate::dispatch::{local_image, pull};
use crate::printer::Printer;
use crate::settings::Settings;
use crate::settings::SquashfsMountMode;

/// The image to run: from the caller's store, else from the first shared store that has it,
/// else pulled (unless `--pull never`); `--pull always` pulls first.
fn image(s: &Settings, store: &Store, a: &RunArgs, p: &Printer) -> Result<ImageInput> {
    let platform = match &a.platform {
        Some(x) => Some(x.parse::<Platform>()?),
        None => None,
    };
    let mut local = store.lookup(&a.image);
    // As Docker: a local image of another platform than --platform asks for is pulled again
    // for that one (or refused with --pull never), never run as if it were.
    if let (Ok(img), Some(want)) = (&local, &platform) {
        let config: serde_json::Value = serde_json::from_slice(&store.read_blob(&img.id)?)?;
        let field = |k: &str| config[k].as_str().unwrap_or_default().to_string();
        let (os, arch) = (field("os"), field("architecture"));
        let variant = config["variant"].as_str();
        if !want.matches(&os, &arch, variant) {
            let have = [os, arch, variant.unwrap_or_default().to_string()]
                .iter()
                .filter(|x| !x.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join("/");
            if a.pull == "never" {
                bail!(
                    "image {} is {have}, not {} (and --pull never)",
                    a.image,
                    a.platform.as_deref().unwrap_or_default()
                );
            }
            if !a.quiet {
                p.warn(format!(
                    "image {} is {have}, not {}: pulling",
                    a.image,
                    a.platform.as_deref().unwrap_or_default()
                ));
            }
            local = Err(StoreError::ImageNotFound(a.image.clone()));
        }
    }
    let missing = matches!(local, Err(StoreError::ImageNotFound(_)));
    let want_pull = match (a.pull.as_str(), missing) {
        ("always", _) => true,
        ("missing" | "never", false) => false,
        ("missing" | "never", true) => {
            for shared in s.shared_stores()? {
                if let Ok(img) = shared.lookup(&a.image) {
                    return ImageInput::from_store(&shared, &img);
                }
            }
            if a.pull == "never" {
                bail!("no such image: {} (and --pull never)", a.image)
            }
            true
        }
        (other, _) => bail!("invalid --pull {other:?}: expected missing, always or never"),
    };
    if !want_pull {
        return ImageInput::from_store(store, &local?);
    }
    let r = ImageRef::parse(&a.image)?;
    let platform = platform.unwrap_or_else(Platform::host);
    let client = Client::new(s.registry_options(&a.registry))?;
    if !a.quiet {
        p.warn(format!("unable to find image '{}' locally", a.image));
    }
    pull::pull(store, &client, &r, &platform, p)?;
    ImageInput::from_store(store, &store.lookup(&r.to_string())?)
}

/// The image resolved (pulled when needed) and the container recorded, not started; its
/// warnings printed and its id written to `--cidfile`.
fn new_container(s: &Settings, store: &Store, a: &RunArgs, quiet: bool) -> Result<ContainerRecord> {
    let quiet_printer = Printer::new(a.quiet || quiet);
    let img = match local_image::local_path(&a.image) {
        Some(path) => {
            let fuse = s.config.squashfs_mount == Some(SquashfsMountMode::Fuse);
            local_image::open(store, &path, fuse)?
        }
        None => image(s, store, a, &quiet_printer)?,
    };
    let created = match create::create(s, store, &img, a) {
        Ok(c) => c,
        Err(e) => {
            local_image::release_input(&img);
            return Err(e);
        }
    };
    let p = Printer::new(false);
    for w in &created.warnings {
        p.warn(w);
    }
    let rec = created.record;
    if let Some(f) = &a.cidfile {
        std::fs::write(f, &rec.id)?;
    }
    Ok(rec)
}

/// `berth create`: as `run`, up to the point of starting; prints the new container's id.
pub fn create_only(s: &Settings, a: &RunArgs) -> Result<u8> {
    let store = s.open_store()?;
    let rec = new_container(s, &store, a, false)?;
    Printer::new(false).out(&rec.id);
    Ok(0)
}

/// `berth start`: each container gets a detached monitor, as after `run -d`; with `-a` the one
/// container runs in the foreground instead, as after `run`, and its exit code is returned.
pub fn start(s: &Settings, a: &StartArgs) -> Result<u8> {
    if a.attach && a.containers.len() > 1 {
        bail!("you cannot start and attach multiple containers at once");
    }
    let store = s.open_store()?;
    let p = Printer::new(false);
    let mut status = 0;
    for name in &a.containers {
        let r = (|| -> Result<Option<i32>> {
            let rec = store.lookup_container(name)?;
            let st = store.container_state(&rec.id)?;
            // Already running: nothing to do, as with Docker.
            if matches!(effective_status(&st).as_str(), "running" | "paused") {
                if a.attach {
                    bail!("container {name} is already running; use berth exec or berth logs -f");
                }
                return Ok(None);
            }
            if !a.attach {
                start::spawn_monitor(&s.root, &rec.id)?;
                return Ok(None);
            }
            let io = Io::Foreground {
                tty: rec.spec["process"]["terminal"].as_bool().unwrap_or(false),
                interactive: a.interactive,
            };
            Ok(Some(start::run(&store, &rec, io, true, &p, None)?))
        })();
        match r {
            Ok(Some(code)) => return Ok(code.clamp(0, 255) as u8),
            Ok(None) => p.out(name),
            Err(e) if a.attach => return Err(e),
            Err(e) => {
                crate::printer::error(&e, false);
                status = 1;
            }
        }
    }
    Ok(status)
}

pub fn run(s: &Settings, a: &RunArgs) -> Result<u8> {
    let store = s.open_store()?;
    let rec = new_container(s, &store, a, a.detach)?;
    let p = Printer::new(false);
    if a.detach {
        if a.tty {
            p.warn("-t with -d: the detached container gets no terminal; its output goes to berth logs");
        }
        start::spawn_monitor(&s.root, &rec.id)?;
        p.out(&rec.id);
        return Ok(0);
    }
    let io = Io::Foreground {
        tty: a.tty,
        interactive: a.interactive,
    };
    let code = start::run(&store, &rec, io, a.sig_proxy, &p, None)?;
    Ok(code.clamp(0, 255) as u8)
}

/// `berth __monitor ID`: the detached container's monitor. Its stdout is a pipe to the `run -d`
/// that started it, which reads one line: `started PID` or `failed CODE MESSAGE`.
pub fn monitor(s: &Settings, a: &MonitorArgs) -> Result<u8> {
    let store = s.open_store()?;
    let rec = store.lookup_container(&a.id)?;
    let p = Printer::new(true);
    let mut out = std::io::stdout();
    match start::run(&store, &rec, Io::Logged, true, &p, Some(&mut out)) {
        Ok(code) => Ok(code.clamp(0, 255) as u8),
        Err(e) => {
            let code = start::exit_code_of(&e, 125);
            let _ = writeln!(out, "failed {code} {}", one_line(&e));
            Ok(code as u8)
        }
    }
}

pub fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}
