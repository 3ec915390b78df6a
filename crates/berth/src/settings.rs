//! Flags, config files and environment, resolved once into the settings commands use.
//!
//! Config is TOML, read from `/etc/berth/config.toml`, then `~/.config/berth/config.toml`, then
//! `--config`/`BERTH_CONFIG`; later files override earlier keys, and flags override them all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use berth_cli::{EnvVars, GlobalArgs, RegistryArgs};
use serde::Deserialize;

/// What the config files may say. Unknown keys are refused, so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Image store directory.
    pub root: Option<PathBuf>,
    /// Default run profile (`docker` or `hpc`), used by `run`.
    pub profile: Option<String>,
    /// Registries reached over plain HTTP or with unverified TLS (`host:port`).
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// Registry host → mirror hosts tried first for pulls.
    #[serde(default)]
    pub registry_mirrors: HashMap<String, Vec<String>>,
    /// Site mounts added in the hpc profile, as `-v` spells them (`/softs:/softs:ro`).
    #[serde(default)]
    pub site_mounts: Vec<String>,
    /// Read-only stores (a site's image cache on a shared file system), searched in order
    /// after the caller's own store and before any pull.
    #[serde(default)]
    pub shared_stores: Vec<PathBuf>,
    /// Directories searched for CDI device specs, lowest priority first; replaces the default
    /// `/etc/cdi`, `/var/run/cdi`.
    pub cdi_spec_dirs: Option<Vec<PathBuf>>,
    /// Directory of the host's `libmpi.so.N` for `--mpi=host`, where the ldconfig cache does
    /// not list it (an MPI in `/opt`, loaded by environment modules).
    pub mpi_library_dir: Option<PathBuf>,
    /// How root mounts single-file images: `kernel` (default: a loop device, fastest) or
    /// `fuse` (`squashfuse_ll`, as for everyone else), for sites that keep the kernel from
    /// parsing file systems that users bring.
    pub squashfs_mount: Option<SquashfsMountMode>,
    /// Where the writable layer of a `--rm` container lives: `disk` (in the store, as Docker
    /// keeps it; the docker profile's default) or `memory` (a tmpfs of the container's own;
    /// the hpc profile's default).
    pub writable_layer: Option<WritableLayer>,
}

/// The `writable_layer` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WritableLayer {
    /// In the store's `containers/<id>/upper`.
    Disk,
    /// In memory, gone with the container; a store on NFS needs no upper layer then.
    Memory,
}

/// The `squashfs_mount` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SquashfsMountMode {
    /// The kernel's squashfs, from a loop device (root only).
    Kernel,
    /// `squashfuse_ll`, whoever the caller is.
    Fuse,
}

impl ConfigFile {
    fn merge(&mut self, other: ConfigFile) {
        if other.root.is_some() {
            self.root = other.root;
        }
        if other.profile.is_some() {
            self.profile = other.profile;
        }
        self.insecure_registries.extend(other.insecure_registries);
        self.registry_mirrors.extend(other.registry_mirrors);
        self.site_mounts.extend(other.site_mounts);
        self.shared_stores.extend(other.shared_stores);
        if other.cdi_spec_dirs.is_some() {
            self.cdi_spec_dirs = other.cdi_spec_dirs;
        }
        if other.mpi_library_dir.is_some() {
            self.mpi_library_dir = other.mpi_library_dir;
        }
        if other.squashfs_mount.is_some() {
            self.squashfs_mount = other.squashfs_mount;
        }
        if other.writable_layer.is_some() {
            self.writable_layer = other.writable_layer;
        }
    }
}

/// Resolved settings shared by every command.
pub struct Settings {
    pub root: PathBuf,
    pub config: ConfigFile,
    pub docker_config: Option<PathBuf>,
}

impl Settings {
    pub fn resolve(global: &GlobalArgs) -> Result<Settings> {
        let mut config = ConfigFile::default();
        let mut files = vec![PathBuf::from("/etc/berth/config.toml")];
        if let Some(dir) = user_config_dir() {
            files.push(dir.join("berth/config.toml"));
        }
        if let Some(f) = &global.config {
            if !f.exists() {
                anyhow::bail!("config file {} does not exist", f.display());
            }
            files.push(f.clone());
        }
        for f in files {
            if let Some(c) = read_config(&f)? {
                config.merge(c);
            }
        }
        let root = global
            .root
            .clone()
            .or_else(|| config.root.clone())
            .unwrap_or_else(berth_store::Store::default_root);
        let docker_config = global.docker_config.as_ref().map(|d| d.join("config.json"));
        Ok(Settings {
            root,
            config,
            docker_config,
        })
    }

    /// Registry client options for a command with these registry flags.
    pub fn registry_options(&self, args: &RegistryArgs) -> berth_registry::RegistryOptions {
        berth_registry::RegistryOptions {
            insecure: self.config.insecure_registries.clone(),
            tls_verify: args.tls_verify.unwrap_or(true),
            mirrors: self.config.registry_mirrors.clone(),
            docker_config: self.docker_config.clone(),
            user_agent: format!("berth/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    pub fn open_store(&self) -> Result<berth_store::Store> {
        let store = berth_store::Store::open(&self.root)?;
        Ok(match crate::dispatch::delegate::tree_remover() {
            Some(r) => store.with_remover(r),
            None => store,
        })
    }

    /// The configured shared stores, opened read-only, in order.
    pub fn shared_stores(&self) -> Result<Vec<berth_store::Store>> {
        self.config
            .shared_stores
            .iter()
            .map(|p| {
                berth_store::Store::open_read_only(p)
                    .with_context(|| format!("shared_stores entry {}", p.display()))
            })
            .collect()
    }
}

fn user_config_dir() -> Option<PathBuf> {
    std::env::var_os(EnvVars::XDG_CONFIG_HOME)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os(EnvVars::HOME).map(|h| PathBuf::from(h).join(".config")))
}

fn read_config(path: &Path) -> Result<Option<ConfigFile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let config = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start].matches('\n').count() + 1)
            .unwrap_or(0);
        anyhow::anyhow!(
            "{}:{}: {}",
            path.display(),
            line,
            e.message().trim_end_matches('.')
        )
    })?;
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "root = \"/x\"\nbogus = 1\n").unwrap();
        let e = read_config(&f).unwrap_err().to_string();
        assert!(e.contains("c.toml:2:"), "{e}");
        std::fs::write(&f, "insecure_registries = [\"127.0.0.1:5000\"]\n").unwrap();
        let c = read_config(&f).unwrap().unwrap();
        assert_eq!(c.insecure_registries, vec!["127.0.0.1:5000"]);
    }
}
