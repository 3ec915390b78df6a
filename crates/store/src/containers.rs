//! Container records and named volumes.
//!
//! A container is a directory `containers/<id>/` holding its record (`config.json`, written
//! once), its state (`state.json`, rewritten by its monitor), its writable overlay layer and
//! the log of a detached run. The record names the image, which keeps the image's blobs and
//! layers from garbage collection for as long as the container exists.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::atomic::{write_replace, write_replace_beside};
use crate::error::{IoContext, StoreError};
use crate::{spare, Store};
use berth_types::Digest;

/// What a container was created from and with; written once, at creation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerRecord {
    /// 64 hex characters.
    pub id: String,
    /// Unique name (`--name` or generated).
    pub name: String,
    /// The image id (config digest); garbage collection reads this field.
    pub image: Digest,
    /// The image as the user named it.
    pub image_name: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// Docker-style `Config` (Cmd, Entrypoint, Env, WorkingDir, User, Labels, …).
    pub config: Value,
    /// Docker-style `HostConfig` (the run flags that matter after creation).
    pub host_config: Value,
    /// Read-only layers of the root filesystem, top-most first.
    pub lower_dirs: Vec<std::path::PathBuf>,
    /// The OCI runtime spec the container runs with.
    pub spec: Value,
    /// Named volumes the container mounts.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// The writable layer lives in memory, in a file system of the container's own that goes
    /// with it, and not in the store: the store holds no `upper` or `work` directory for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub layer_in_memory: bool,
    /// Docker's default seccomp profile confines the container, resolved for these
    /// capabilities when it starts (as Docker builds its spec at each start). The profile is
    /// kept out of `spec`, of which it would be two thirds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_seccomp: Option<Vec<String>>,
}

/// What a container is doing, as its monitor last recorded it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// `created`, `running`, `paused` or `exited`.
    pub status: String,
    /// Host pid of the container's main process (0 when none).
    pub pid: i32,
    /// Host pid of the monitor process that waits for it.
    pub monitor_pid: i32,
    /// Start time of the monitor (field 22 of `/proc/PID/stat`), so a recycled pid is not it.
    pub monitor_start: u64,
    /// Kernel boot id when the monitor ran; another boot means the container is gone.
    pub boot_id: String,
    /// Host the monitor ran on: a store shared between nodes shows others' containers.
    pub hostname: String,
    /// Exit code once exited (Docker's: 128+N when killed by signal N).
    pub exit_code: Option<i32>,
    /// RFC 3339 times.
    pub started_at: String,
    /// RFC 3339 time of exit.
    pub finished_at: String,
    /// Why the container failed to start, if it did.
    pub error: String,
    /// Cgroup directories created for the container.
    #[serde(default)]
    pub cgroups: Vec<std::path::PathBuf>,
}

impl Store {
    /// Claims the record's name and creates the container directory with its writable layer,
    /// its record and `files` (name in the directory, contents): the files bound into the
    /// container, written before anyone sees it.
    ///
    /// The directory is made (or a spare one taken) in `tmp/`, and renamed into `containers/`
    /// once complete, so no command ever sees half a container. Just before, the name is
    /// claimed (see [`Store::claim_name`]), so concurrent starts never wait on a store-wide
    /// lock.
    pub fn create_container(
        &self,
        rec: &ContainerRecord,
        files: &[(&str, &[u8])],
    ) -> Result<(), StoreError> {
        let staging = match self.take_spare(!rec.layer_in_memory) {
            Some(dir) => dir,
            None => {
                spare::spread_subdirectories(&self.paths.tmp_dir());
                self.paths.temp("container-new")
            }
        };
        let dir = self.paths.container_dir(&rec.id);
        let claimed = self
            .fill_container_dir(&staging, rec, files)
            .and_then(|()| self.claim_name(&rec.name, &rec.id, &staging.join("config.json")));
        let made = claimed.and_then(|()| {
            fs::rename(&staging, &dir).at(&dir).inspect_err(|_| {
                self.release_name(&rec.name, &rec.id);
            })
        });
        if made.is_err() {
            let _ = self.remove_tree(&staging);
        }
        made
    }

    fn fill_container_dir(
        &self,
        dir: &Path,
        rec: &ContainerRecord,
        files: &[(&str, &[u8])],
    ) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let fresh = match fs::create_dir(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(StoreError::io(dir, e)),
        };
        if !rec.layer_in_memory {
            for name in spare::LAYER_DIRS {
                let d = dir.join(name);
                match fs::create_dir(&d) {
                    // Whatever the umask: the upper directory's mode is the mode of `/`.
                    Ok(()) if name == "upper" => {
                        let mode = fs::Permissions::from_mode(spare::UPPER_MODE);
                        fs::set_permissions(&d, mode).at(&d)?;
                    }
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(StoreError::io(&d, e)),
                }
            }
        }
        if !fresh {
            // A spare directory keeps the files of the container before: drop those this one
            // does not write.
            for entry in fs::read_dir(dir).at(dir)?.flatten() {
                let name = entry.file_name();
                let wanted = name == "config.json"
                    || files.iter().any(|(f, _)| name == *f)
                    || entry.file_type().is_ok_and(|t| t.is_dir());
                if !wanted {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let config = dir.join("config.json");
        spare::write_in_place(&config, &encode(rec, &config)?).at(&config)?;
        for (name, bytes) in files {
            let path = dir.join(name);
            spare::write_in_place(&path, bytes).at(&path)?;
        }
        Ok(())
    }

    /// Frees `name` if `id` holds it.
    fn release_name(&self, name: &str, id: &str) {
        let claim = self.paths.container_names_dir().join(name);
        if fs::read_to_string(&claim).is_ok_and(|h| holder_id(&h) == id) {
            let _ = fs::remove_file(&claim);
        }
    }

    /// Gives the container `id` the new name `name`: the new name is claimed first, so a
    /// failure (the name is taken) leaves the old one in place.
    pub fn rename_container(&self, rec: &ContainerRecord, name: &str) -> Result<(), StoreError> {
        self.claim_name(name, &rec.id, &self.paths.container_config(&rec.id))?;
        let mut renamed = rec.clone();
        renamed.name = name.to_string();
        let path = self.paths.container_config(&rec.id);
        let bytes = encode(&renamed, &path)?;
        if let Err(e) = write_replace(&self.paths, &path, &bytes) {
            self.release_name(name, &rec.id);
            return Err(e);
        }
        self.release_name(&rec.name, &rec.id);
        Ok(())
    }

    /// Replaces the record of an existing container (`update` changes its limits).
    pub fn update_container(&self, rec: &ContainerRecord) -> Result<(), StoreError> {
        let path = self.paths.container_config(&rec.id);
        fs::metadata(&path).at(&path)?;
        let bytes = encode(rec, &path)?;
        write_replace(&self.paths, &path, &bytes)
    }

    /// Claims `name` for `id` by linking `container-names/<name>` to `record`, the container's
    /// record (a link, so that no inode is made for it and the claim is never seen empty);
    /// a claim whose container is gone is taken over. Claims made by earlier versions are
    /// files holding the id.
    fn claim_name(&self, name: &str, id: &str, record: &Path) -> Result<(), StoreError> {
        let names = self.paths.container_names_dir();
        let claim = names.join(name);
        loop {
            let linked = match fs::hard_link(record, &claim) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    fs::create_dir_all(&names).at(&names)?;
                    fs::hard_link(record, &claim)
                }
                other => other,
            };
            match linked {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = fs::read_to_string(&claim).unwrap_or_default();
                    let holder = holder_id(&holder);
                    // A claim file of an earlier version being written: give it a moment.
                    if holder.is_empty() {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        if fs::read_to_string(&claim).is_ok_and(|h| !h.is_empty()) {
                            continue;
                        }
                    }
                    if holder == id {
                        return Ok(());
                    }
                    // A linked record with another name still exists: in `containers/`, or
                    // about to be renamed there.
                    let linked = fs::metadata(&claim).is_ok_and(|m| {
                        use std::os::unix::fs::MetadataExt;
                        m.nlink() > 1
                    });
                    if !holder.is_empty() && (linked || self.paths.container_dir(&holder).exists())
                    {
                        return Err(StoreError::NameInUse {
                            name: name.to_string(),
                            id: holder,
                        });
                    }
                    let _ = fs::remove_file(&claim);
                }
                Err(e) => return Err(StoreError::io(&claim, e)),
            }
        }
    }

    /// Every container with a readable record; half-created ones are skipped.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>, StoreError> {
        let dir = self.paths.containers_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(&dir, e)),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let id = e.file_name().to_string_lossy().to_string();
            if let Ok(bytes) = fs::read(self.paths.container_config(&id)) {
                if let Ok(rec) = serde_json::from_slice::<ContainerRecord>(&bytes) {
                    out.push(rec);
                }
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(out)
    }

    /// By name, full id or unique id prefix, as Docker resolves containers.
    pub fn lookup_container(&self, s: &str) -> Result<ContainerRecord, StoreError> {
        let all = self.containers()?;
        if let Some(c) = all.iter().find(|c| c.name == s || c.id == s) {
            return Ok(c.clone());
        }
        let matches: Vec<_> = all.iter().filter(|c| c.id.starts_with(s)).collect();
        match matches.as_slice() {
            [one] if !s.is_empty() => Ok((*one).clone()),
            [] | [_] => Err(StoreError::ContainerNotFound(s.to_string())),
            many => Err(StoreError::AmbiguousId {
                input: s.to_string(),
                count: many.len(),
            }),
        }
    }

    /// The last recorded state; `created` when the monitor has not written one yet.
    pub fn container_state(&self, id: &str) -> Result<ContainerState, StoreError> {
        let path = self.paths.container_state(id);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ContainerState {
                status: "created".into(),
                ..Default::default()
            }),
            Err(e) => Err(StoreError::io(path, e)),
        }
    }

    /// Replaces the state atomically, so readers never see half of it.
    pub fn set_container_state(&self, id: &str, st: &ContainerState) -> Result<(), StoreError> {
        let path = self.paths.container_state(id);
        let bytes = encode(st, &path)?;
        write_replace_beside(&self.paths, &path, &bytes)
    }

    /// Deletes the container directory. The record goes first (renamed away), so a removal
    /// interrupted half-way leaves no container that looks alive.
    pub fn remove_container(&self, id: &str) -> Result<(), StoreError> {
        let dir = self.paths.container_dir(id);
        if !dir.exists() {
            return Err(StoreError::ContainerNotFound(id.to_string()));
        }
        let name = fs::read(self.paths.container_config(id))
            .ok()
            .and_then(|b| serde_json::from_slice::<ContainerRecord>(&b).ok())
            .map(|r| r.name);
        self.remove_container_dir(id, name.as_deref())
    }

    /// Takes a container out of the store without deleting its files yet: once this returns,
    /// no command sees the container and its name is free. The files wait in `tmp/` for
    /// [`Store::delete_unpublished`] (or, if that never runs, for `system prune`).
    pub fn unpublish_container(&self, rec: &ContainerRecord) -> Result<PathBuf, StoreError> {
        self.unpublish(&rec.id, Some(&rec.name))
    }

    /// Deletes the files of a container [`Store::unpublish_container`] took out; its emptied
    /// directory may wait in `spare/` for the next container.
    pub fn delete_unpublished(&self, doomed: &Path) -> Result<(), StoreError> {
        self.recycle_container_dir(doomed).at(doomed)
    }

    fn unpublish(&self, id: &str, name: Option<&str>) -> Result<PathBuf, StoreError> {
        let dir = self.paths.container_dir(id);
        let doomed = self.paths.temp("container-rm");
        fs::rename(&dir, &doomed).at(&dir)?;
        if let Some(name) = name {
            self.release_name(name, id);
        }
        Ok(doomed)
    }

    fn remove_container_dir(&self, id: &str, name: Option<&str>) -> Result<(), StoreError> {
        let doomed = self.unpublish(id, name)?;
        self.delete_unpublished(&doomed)
    }

    /// Creates a named volume (idempotent) and returns the directory it mounts.
    pub fn create_volume(&self, name: &str) -> Result<std::path::PathBuf, StoreError> {
        let ok = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return Err(StoreError::InvalidVolumeName(name.to_string()));
        }
        let data = self.paths.volume_data(name);
        fs::create_dir_all(&data).at(&data)?;
        Ok(data)
    }

    /// Names of the named volumes.
    pub fn volumes(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.paths.volumes_dir();
        let mut out: Vec<String> = match fs::read_dir(&dir) {
            Ok(e) => e
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StoreError::io(&dir, e)),
        };
        out.sort();
        Ok(out)
    }

    /// The directory of an existing volume.
    pub fn volume_path(&self, name: &str) -> Result<std::path::PathBuf, StoreError> {
        let data = self.paths.volume_data(name);
        if data.is_dir() {
            Ok(data)
        } else {
            Err(StoreError::VolumeNotFound(name.to_string()))
        }
    }

    /// Removes a volume no container uses (any, with `force`).
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<(), StoreError> {
        self.volume_path(name)?;
        if !force {
            if let Some(c) = self
                .containers()?
                .into_iter()
                .find(|c| c.volumes.iter().any(|v| v == name))
            {
                return Err(StoreError::VolumeInUse {
                    volume: name.to_string(),
                    container: c.name,
                });
            }
        }
        let dir = self.paths.volumes_dir().join(name);
        let doomed = self.paths.temp("volume-rm");
        fs::rename(&dir, &doomed).at(&dir)?;
        self.remove_tree(&doomed).at(&doomed)
    }
}

/// The id of the container holding a name claim: a link to its record, or (earlier versions) a
/// file holding the id.
fn holder_id(claim: &str) -> String {
    #[derive(Deserialize)]
    struct Id {
        #[serde(rename = "Id")]
        id: String,
    }
    if claim.starts_with('{') {
        serde_json::from_str::<Id>(claim)
            .map(|r| r.id)
            .unwrap_or_default()
    } else {
        claim.trim().to_string()
    }
}

/// Records are written compact: a container's spec holds Docker's whole seccomp profile, and
/// indenting it doubled the bytes and the time every start spends writing the record.
fn encode<T: serde::Serialize>(value: &T, path: &std::path::Path) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
