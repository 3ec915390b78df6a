//! `--mpi=host` and the launcher's needs: reads the ldconfig cache, the host's ELF libraries
//! and the image's library directories, lets berth-hpc decide, and turns its answer into binds
//! and variables.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use berth_hpc::{ElfDynamic, HostFiles, MpiError};
use berth_oci::{MountKind, MountSpec};

/// What MPI adds to the container.
#[derive(Default)]
pub struct Mpi {
    pub mounts: Vec<MountSpec>,
    /// `NAME=value` entries set like `-e` (the prepended `LD_LIBRARY_PATH`).
    pub env: Vec<String>,
    /// Variables that only fill gaps.
    pub extra_env: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

/// `--mpi` as given (`host`, or `none` for nothing), with the image's layers (top-most first),
/// its `ENV`, the `-e` entries so far and the caller's environment. `own_userns` is false for
/// `--userns=host`, where ranks share the host's user namespace and single-copy works.
#[allow(clippy::too_many_arguments)]
pub fn resolve(
    flag: Option<&str>,
    own_userns: bool,
    library_dir: Option<&Path>,
    cache_dir: &Path,
    lower_dirs: &[PathBuf],
    image_env: &[String],
    user_env: &[String],
    caller_env: &[(String, String)],
) -> Result<Mpi> {
    let mut out = Mpi::default();
    let launcher = berth_hpc::launcher(caller_env);
    for m in &launcher.mounts {
        let (src, dst, ro) = &m.value;
        if Path::new(src).is_dir() {
            out.mounts.push(bind(src, dst, *ro));
        }
    }
    if own_userns {
        out.extra_env = launcher.env_pairs();
    }
    match flag {
        None | Some("none") => return Ok(out),
        Some("host") => {}
        Some(other) => bail!("invalid --mpi {other:?}: expected host or none"),
    }
    let host = cached_host_mpi(library_dir, cache_dir)?;
    berth_hpc::check_abi(&host.library, image_mpi(lower_dirs).as_ref())?;
    for m in &host.contribution.mounts {
        let (src, dst, ro) = &m.value;
        out.mounts.push(bind(src, dst, *ro));
    }
    // -e wins over the image's ENV; the caller's own LD_LIBRARY_PATH never passes through.
    let existing = user_env
        .iter()
        .chain(image_env)
        .find_map(|e| e.strip_prefix("LD_LIBRARY_PATH="));
    for (k, v) in host.contribution.env_pairs() {
        if k == "LD_LIBRARY_PATH" {
            let value = berth_hpc::prepend_library_path(&v, existing);
            out.env.push(format!("{k}={value}"));
        }
    }
    out.warnings.extend(host.contribution.warnings);
    Ok(out)
}

/// The host MPI, from `cache_dir/host-mpi.json` when nothing it was worked out from has
/// changed: reading some 150 ELF files and the linker cache costs a rank's start about 20 ms,
/// every time, for the same answer.
fn cached_host_mpi(library_dir: Option<&Path>, cache_dir: &Path) -> Result<berth_hpc::HostMpi> {
    let key = host_mpi_key(library_dir);
    let file = cache_dir.join("host-mpi.json");
    if let Some(k) = &key {
        let stored = fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<(String, berth_hpc::HostMpi)>(&b).ok());
        if let Some((stored_key, host)) = stored {
            // A file gone since (an uninstalled plug-in) means working it out again.
            let present = host
                .contribution
                .mounts
                .iter()
                .all(|m| Path::new(&m.value.0).exists());
            if &stored_key == k && present {
                return Ok(host);
            }
        }
    }
    let cache = berth_hpc::ldconfig_entries(&ldconfig());
    let libmpi = host_libmpi(library_dir, &cache)?;
    let mut files = RealFiles::default();
    let host = berth_hpc::host_mpi(&libmpi, &cache, &mut files)?;
    if let Some(k) = key {
        // Best effort: a start must not fail for want of a cache.
        let _ = fs::create_dir_all(cache_dir).and_then(|()| {
            let tmp = tempfile::NamedTempFile::new_in(cache_dir)?;
            serde_json::to_writer(&tmp, &(k, &host))?;
            tmp.persist(&file)?;
            Ok(())
        });
    }
    Ok(host)
}

/// What the host MPI is worked out from, as a string that changes when any of it does: this
/// binary's version, the linker cache (package updates rewrite it) and, with
/// `mpi_library_dir`, that directory and the libraries in it. `None` when one of them cannot be
/// read, which disables the cache.
fn host_mpi_key(library_dir: Option<&Path>) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let stamp = |p: &Path| {
        fs::metadata(p).ok().map(|m| {
            format!(
                "{}:{}:{}:{}.{}",
                m.dev(),
                m.ino(),
                m.len(),
                m.mtime(),
                m.mtime_nsec()
            )
        })
    };
    let mut key = format!(
        "{} {}",
        env!("CARGO_PKG_VERSION"),
        stamp(Path::new("/etc/ld.so.cache"))?
    );
    if let Some(dir) = library_dir {
        key.push_str(&format!(" {} {}", dir.display(), stamp(dir)?));
        let mut libs: Vec<PathBuf> = fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains(".so"))
            })
            .collect();
        libs.sort();
        for l in libs {
            key.push_str(&format!(" {}", stamp(&l)?));
        }
    }
    Some(key)
}

fn bind(src: &str, dst: &str, readonly: bool) -> MountSpec {
    MountSpec {
        kind: MountKind::Bind,
        source: src.to_string(),
        target: dst.to_string(),
        readonly,
        options: Vec::new(),
    }
}

/// The host's `libmpi.so.N`: in the configured directory, or from the ldconfig cache.
fn host_libmpi(library_dir: Option<&Path>, cache: &[(String, String)]) -> Result<String> {
    if let Some(dir) = library_dir {
        let mut found: Vec<String> = fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("--mpi=host: mpi_library_dir {}: {e}", dir.display()))?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| berth_hpc::is_libmpi_soname(n))
            .collect();
        found.sort();
        return match found.pop() {
            Some(n) => Ok(dir.join(n).display().to_string()),
            None => Err(MpiError::NoHostMpi(format!(
                "no libmpi.so.N in mpi_library_dir {}",
                dir.display()
            ))
            .into()),
        };
    }
    match berth_hpc::host_libmpi(cache) {
        Some((_, path)) => Ok(path),
        None => Err(MpiError::NoHostMpi(
            "no libmpi.so.N in the ldconfig cache; set mpi_library_dir in the config".into(),
        )
        .into()),
    }
}

/// `ldconfig -p`, empty when there is no ldconfig.
fn ldconfig() -> String {
    ["/sbin/ldconfig", "/usr/sbin/ldconfig", "ldconfig"]
        .iter()
        .find_map(|l| {
            let out = std::process::Command::new(l).arg("-p").output().ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .unwrap_or_default()
}

/// The image's `libmpi.so.N`, looked for in its library directories, top layer first.
fn image_mpi(lower_dirs: &[PathBuf]) -> Option<berth_hpc::MpiLibrary> {
    let mut found = Vec::new();
    for dir in berth_hpc::IMAGE_LIB_DIRS {
        let mut names: Vec<String> = lower_dirs
            .iter()
            .filter_map(|l| fs::read_dir(l.join(dir)).ok())
            .flat_map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
            })
            .filter(|n| berth_hpc::is_libmpi_soname(n))
            .collect();
        names.sort();
        names.dedup();
        for n in names {
            let rel = format!("{dir}/{n}");
            let elf = image_file(lower_dirs, &rel).and_then(|p| {
                let bytes = fs::read(&p).ok()?;
                berth_hpc::parse_elf(&rel, &bytes).ok()
            });
            found.push((n, format!("/{rel}"), elf));
        }
    }
    berth_hpc::image_mpi(&found)
}

/// The host path of the image's file `rel`, following links inside the image (an absolute
/// link names a path of the image, not of the host).
fn image_file(lower_dirs: &[PathBuf], rel: &str) -> Option<PathBuf> {
    let mut rel = rel.trim_start_matches('/').to_string();
    for _ in 0..8 {
        let path = lower_dirs
            .iter()
            .map(|l| l.join(&rel))
            .find(|p| p.symlink_metadata().is_ok())?;
        match fs::read_link(&path) {
            Ok(target) if target.is_absolute() => {
                rel = target.display().to_string().trim_start_matches('/').into();
            }
            Ok(target) => {
                let dir = Path::new(&rel).parent().unwrap_or(Path::new(""));
                rel = dir.join(target).display().to_string();
            }
            Err(_) => return Some(path),
        }
    }
    None
}

/// The host's files, read as asked, each ELF file parsed once.
#[derive(Default)]
struct RealFiles {
    elves: HashMap<String, Option<ElfDynamic>>,
}

impl HostFiles for RealFiles {
    fn elf(&mut self, path: &str) -> Option<ElfDynamic> {
        self.elves
            .entry(path.to_string())
            .or_insert_with(|| {
                let bytes = fs::read(path).ok()?;
                berth_hpc::parse_elf(path, &bytes).ok()
            })
            .clone()
    }

    fn canonical(&mut self, path: &str) -> Option<String> {
        fs::canonicalize(path).ok().map(|p| p.display().to_string())
    }

    fn list(&mut self, dir: &str) -> Option<Vec<String>> {
        let rd = fs::read_dir(dir).ok()?;
        Some(
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
        )
    }

    fn is_file(&mut self, path: &str) -> bool {
        Path::new(path).is_file()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// Two layers: the top one links `libmpi.so.12` absolutely to a file of the lower one,
    /// which must be found in the image, not at that path on the host.
    #[test]
    fn image_library_links_resolve_inside_the_layers() {
        let top = tempfile::tempdir().unwrap();
        let lower = tempfile::tempdir().unwrap();
        let lib = top.path().join("usr/lib");
        fs::create_dir_all(&lib).unwrap();
        symlink("/opt/mpich/lib/libmpi.so.12.1.0", lib.join("libmpi.so.12")).unwrap();
        let opt = lower.path().join("opt/mpich/lib");
        fs::create_dir_all(&opt).unwrap();
        fs::write(opt.join("libmpi.so.12.1.0"), b"not elf").unwrap();
        let layers = [top.path().to_path_buf(), lower.path().to_path_buf()];
        assert_eq!(
            image_file(&layers, "usr/lib/libmpi.so.12"),
            Some(opt.join("libmpi.so.12.1.0"))
        );
        let found = image_mpi(&layers).unwrap();
        assert_eq!(found.to_string(), "libmpi.so.12, MPICH ABI");
        assert_eq!(found.path, "/usr/lib/libmpi.so.12");
        assert!(image_mpi(&layers[1..]).is_none());
    }

    #[test]
    fn launcher_variables_without_mpi_host() {
        let env = [("PMIX_RANK".to_string(), "0".to_string())];
        let cache = tempfile::tempdir().unwrap();
        let m = resolve(None, true, None, cache.path(), &[], &[], &[], &env).unwrap();
        assert_eq!(
            m.extra_env,
            [(
                "OMPI_MCA_btl_vader_single_copy_mechanism".to_string(),
                "none".to_string()
            )]
        );
        assert!(m.mounts.is_empty() && m.env.is_empty());
        let shared = resolve(Some("none"), false, None, cache.path(), &[], &[], &[], &env).unwrap();
        assert!(shared.extra_env.is_empty());
        let err = resolve(Some("hots"), true, None, cache.path(), &[], &[], &[], &env)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "invalid --mpi \"hots\": expected host or none"
        );
    }
}
