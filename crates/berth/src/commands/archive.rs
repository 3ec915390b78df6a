use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::{bail, Context, Result};
use berth_archive::{Format, ImportOptions, SaveImage};
use berth_cli::{ArchiveFormat, ImportArgs, LoadArgs, SaveArgs};
use berth_types::{ImageRef, Platform};

use berth_store::{ImageRecord, Store};

use crate::dispatch::archive::{StoreBlobs, StoreSink};
use crate::printer::Printer;
use crate::settings::Settings;

pub fn save(s: &Settings, a: &SaveArgs) -> Result<u8> {
    let store = s.open_store()?;
    let mut images = Vec::new();
    for name in &a.images {
        let img = store.lookup(name)?;
        // Saving by name records that name only; by id, every name the image has.
        let names = match ImageRef::parse(name) {
            Ok(r) if img.repo_tags.contains(&r) => vec![r],
            _ => img.repo_tags.clone(),
        };
        images.push(save_image(&store, &img, names)?);
    }
    let format = match a.format {
        ArchiveFormat::DockerArchive => Format::Docker,
        ArchiveFormat::OciArchive => Format::Oci,
    };
    write_archive(&store, &images, format, a.output.as_deref())?;
    Ok(0)
}

/// An image of the store as an archive entry recording `names`.
pub fn save_image(store: &Store, img: &ImageRecord, names: Vec<ImageRef>) -> Result<SaveImage> {
    Ok(SaveImage {
        manifest: store.read_blob(&img.manifest)?,
        manifest_digest: img.manifest.clone(),
        manifest_media_type: img.manifest_media_type.clone(),
        config: store.read_blob(&img.id)?,
        names,
    })
}

/// Writes `images` as a `format` archive to `path`, or to stdout when it is `None`.
pub fn write_archive(
    store: &Store,
    images: &[SaveImage],
    format: Format,
    path: Option<&Path>,
) -> Result<()> {
    let blobs = StoreBlobs(store);
    match path {
        Some(path) => {
            // Written beside the target and renamed, so a failed save leaves no half archive.
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => std::path::PathBuf::from("."),
            };
            let mut tmp = tempfile::Builder::new()
                .prefix(".berth-save-")
                .tempfile_in(&dir)
                .with_context(|| format!("cannot write in {}", dir.display()))?;
            berth_archive::save(tmp.as_file_mut(), format, images, &blobs)?;
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("cowardly refusing to save to a terminal: use the -o flag or redirect");
            }
            let mut out = std::io::BufWriter::new(stdout.lock());
            berth_archive::save(&mut out, format, images, &blobs)?;
        }
    }
    Ok(())
}

pub fn load(s: &Settings, a: &LoadArgs) -> Result<u8> {
    let store = s.open_store()?;
    let p = Printer::new(a.quiet);
    let spooled;
    let path = match &a.input {
        Some(path) => path.clone(),
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                bail!("requested load from stdin, but stdin is empty: use -i FILE or redirect");
            }
            let mut tmp = tempfile::NamedTempFile::new_in(std::env::temp_dir())?;
            std::io::copy(&mut stdin.lock(), tmp.as_file_mut())
                .context("cannot read the archive from stdin")?;
            spooled = tmp;
            spooled.path().to_path_buf()
        }
    };
    let _gc = store.hold_gc()?;
    let mut sink = StoreSink {
        store: &store,
        warnings: Vec::new(),
    };
    let loaded = berth_archive::load(&path, &mut sink)
        .with_context(|| format!("loading {}", path.display()))?;
    for w in &sink.warnings {
        p.warn(w);
    }
    for img in &loaded {
        if img.names.is_empty() {
            p.out(format!("Loaded image ID: {}", img.config));
        }
        for n in &img.names {
            p.out(format!(
                "Loaded image: {}:{}",
                n.familiar_name(),
                n.tag().unwrap_or("latest")
            ));
        }
    }
    Ok(0)
}

pub fn import(s: &Settings, a: &ImportArgs) -> Result<u8> {
    let store = s.open_store()?;
    let p = Printer::new(a.quiet);
    let platform = match &a.platform {
        Some(x) => x.parse::<Platform>()?,
        None => Platform::host(),
    };
    let names = a
        .reference
        .as_deref()
        .map(ImageRef::parse)
        .transpose()?
        .into_iter()
        .collect();
    let opts = ImportOptions {
        names,
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        changes: a.change.clone(),
        message: a.message.clone(),
        created: None,
    };
    let mut input: Box<dyn Read> = if a.file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(&a.file).with_context(|| format!("cannot open {}", a.file))?)
    };
    let _gc = store.hold_gc()?;
    let mut sink = StoreSink {
        store: &store,
        warnings: Vec::new(),
    };
    let img = berth_archive::import_rootfs(&mut input, &opts, &mut sink)
        .with_context(|| format!("importing {}", a.file))?;
    for w in &sink.warnings {
        p.warn(w);
    }
    p.out(img.config.to_string());
    Ok(0)
}
