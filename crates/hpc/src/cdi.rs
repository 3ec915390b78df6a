//! CDI, the Container Device Interface: vendors describe what a container needs to use a device
//! (device nodes, driver files, variables, hooks) in spec files under `/etc/cdi` and
//! `/var/run/cdi`, and a runtime asked for `vendor.com/class=name` applies those edits.
//!
//! The caller reads the spec files and hands their text in; [`Registry::resolve`] returns the
//! edits of the requested devices as [`DeviceEdits`], every item sourced to its spec file and
//! device, and never touches the host. Spec versions 0.3.0 to 0.8.x are read, as JSON
//! (`*.json`) or YAML (`*.yaml`, `*.yml`).
//!
//! A spec file that cannot be read is skipped with a warning rather than failing every run on
//! the node: a driver upgrade that leaves one broken file behind should only break the devices
//! it describes.

use serde::Deserialize;

use crate::Sourced;

/// Where CDI spec files are looked for, lowest priority first: a device defined in both wins
/// from the later directory, as in the reference implementation.
pub const CDI_SPEC_DIRS: &[&str] = &["/etc/cdi", "/var/run/cdi"];

/// The oldest and newest minor version of the 0.x spec this module reads.
const VERSIONS: (u32, u32) = (3, 8);

/// The OCI hook names a CDI spec may use.
const HOOK_NAMES: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// The text of one spec file, as the caller read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecText {
    /// Its path, used in messages and sources; the extension picks JSON or YAML.
    pub path: String,
    /// Its whole contents.
    pub text: String,
    /// The index of its directory in the search list: a higher priority wins.
    pub priority: usize,
}

/// A device node to make available in the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceNode {
    /// Path inside the container.
    pub path: String,
    /// Path of the node on the host (the container path when the spec gives none).
    pub host_path: String,
    /// `c`, `u` (character), `b` (block) or `p` (fifo), when the spec says.
    pub kind: Option<String>,
    /// Major number, when the spec says.
    pub major: Option<i64>,
    /// Minor number, when the spec says.
    pub minor: Option<i64>,
    /// Mode bits for the node, when the spec says.
    pub file_mode: Option<u32>,
    /// Cgroup permissions, some of `rwm`; `rwm` when the spec gives none.
    pub permissions: String,
    /// Owner inside the container, when the spec says.
    pub uid: Option<u32>,
    /// Group inside the container, when the spec says.
    pub gid: Option<u32>,
}

/// A mount to add to the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceMount {
    /// Source on the host.
    pub host_path: String,
    /// Absolute path inside the container.
    pub container_path: String,
    /// Filesystem type, when the spec says (`bind`, `none` and absent all mean a bind mount).
    pub kind: Option<String>,
    /// OCI mount options (`ro`, `nosuid`, `bind`…).
    pub options: Vec<String>,
}

/// An OCI hook a spec asks the runtime to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    /// When it runs: `createRuntime`, `createContainer`, `startContainer`, `poststart`…
    pub hook_name: String,
    /// Absolute path of the program.
    pub path: String,
    /// Its argument vector, `argv[0]` included.
    pub args: Vec<String>,
    /// Its environment, `NAME=value`.
    pub env: Vec<String>,
    /// Seconds before it is aborted.
    pub timeout: Option<i64>,
}

/// What the requested devices add to a container: data only, each item with its source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceEdits {
    /// Variables to set, `(name, value)`, in the order the specs give them.
    pub env: Vec<Sourced<(String, String)>>,
    /// Device nodes to expose.
    pub device_nodes: Vec<Sourced<DeviceNode>>,
    /// Mounts to add.
    pub mounts: Vec<Sourced<DeviceMount>>,
    /// Hooks to run.
    pub hooks: Vec<Sourced<Hook>>,
    /// Supplementary groups for the container's process.
    pub additional_gids: Vec<Sourced<u32>>,
    /// Specs that ask for Intel RDT settings, as sources; the caller decides what to say.
    pub intel_rdt: Vec<String>,
}

impl DeviceEdits {
    /// Appends everything from `other`.
    pub fn extend(&mut self, other: DeviceEdits) {
        self.env.extend(other.env);
        self.device_nodes.extend(other.device_nodes);
        self.mounts.extend(other.mounts);
        self.hooks.extend(other.hooks);
        self.additional_gids.extend(other.additional_gids);
        self.intel_rdt.extend(other.intel_rdt);
    }
}

/// Why a device request could not be served. Each message is one line naming the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// A spec file could not be parsed or breaks the spec's rules.
    #[error("invalid cdi spec {path}: {reason}")]
    InvalidSpec {
        /// The spec file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `--device` names something that is not `vendor.com/class=name`.
    #[error("invalid cdi device name {0:?}: expected vendor.com/class=name")]
    InvalidName(String),
    /// No spec defines the requested device.
    #[error("unknown cdi device {name}: {offered}")]
    UnknownDevice {
        /// The device as requested.
        name: String,
        /// What the specs offer, or where none were found.
        offered: String,
    },
    /// Two spec files of the same priority define the same device.
    #[error("cdi device {name} is defined twice, in {first} and {second}")]
    Conflict {
        /// The device.
        name: String,
        /// One spec file.
        first: String,
        /// The other.
        second: String,
    },
    /// `--gpus` could not be read.
    #[error("invalid --gpus {flag:?}: {reason}")]
    InvalidGpus {
        /// The flag as given.
        flag: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `--gpus` asks for GPUs that are not there or not in the job's allocation.
    #[error("--gpus {flag}: {reason}")]
    GpusUnavailable {
        /// The flag as given.
        flag: String,
        /// Which GPUs are missing and what may be used instead, with its source.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecFile {
    cdi_version: String,
    kind: String,
    #[serde(default)]
    devices: Vec<DeviceFile>,
    #[serde(default)]
    container_edits: EditsFile,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceFile {
    #[serde(deserialize_with = "text_or_number")]
    name: String,
    #[serde(default)]
    container_edits: EditsFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EditsFile {
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    device_nodes: Vec<NodeFile>,
    #[serde(default)]
    mounts: Vec<MountFile>,
    #[serde(default)]
    hooks: Vec<HookFile>,
    #[serde(default, alias = "additionalGIDs")]
    additional_gids: Vec<u32>,
    #[serde(default)]
    intel_rdt: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeFile {
    path: String,
    host_path: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    major: Option<i64>,
    minor: Option<i64>,
    file_mode: Option<u32>,
    permissions: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MountFile {
    host_path: String,
    container_path: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    options: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HookFile {
    hook_name: String,
    path: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    timeout: Option<i64>,
}

/// A device name, which hand-written YAML often leaves unquoted (`name: 0`).
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Name {
        Text(String),
        Number(u64),
    }
    Ok(match Name::deserialize(d)? {
        Name::Text(s) => s,
        Name::Number(n) => n.to_string(),
    })
}

/// One parsed, checked spec file.
#[derive(Debug)]
struct Spec {
    path: String,
    priority: usize,
    kind: String,
    devices: Vec<(String, DeviceEdits)>,
    edits: DeviceEdits,
}

/// Every device the spec files offer.
#[derive(Debug)]
pub struct Registry {
    dirs: Vec<String>,
    specs: Vec<Spec>,
    /// One line per spec file that was skipped, and why.
    pub warnings: Vec<String>,
}

impl Registry {
    /// Parses `files`, found in `dirs` (named in messages). Files that fail are left out, each
    /// with a line in [`Registry::warnings`].
    pub fn new(dirs: &[String], files: &[SpecText]) -> Registry {
        let mut specs = Vec::new();
        let mut warnings = Vec::new();
        for f in files {
            match parse_spec(f) {
                Ok(s) => specs.push(s),
                Err(e) => warnings.push(format!("{e}; skipped")),
            }
        }
        Registry {
            dirs: dirs.to_vec(),
            specs,
            warnings,
        }
    }

    /// Whether some spec defines devices of `kind` (`nvidia.com/gpu`).
    pub fn has_kind(&self, kind: &str) -> bool {
        self.specs.iter().any(|s| s.kind == kind)
    }

    /// The device names of `kind`, sorted, each once.
    pub fn names(&self, kind: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .specs
            .iter()
            .filter(|s| s.kind == kind)
            .flat_map(|s| s.devices.iter().map(|(n, _)| n.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Every qualified device name offered, sorted: `vendor.com/class=name`.
    pub fn offered(&self) -> Vec<String> {
        let mut kinds: Vec<&str> = self.specs.iter().map(|s| s.kind.as_str()).collect();
        kinds.sort();
        kinds.dedup();
        kinds
            .into_iter()
            .flat_map(|k| self.names(k).into_iter().map(move |n| format!("{k}={n}")))
            .collect()
    }

    /// The edits for `requests`, each `vendor.com/class=name`. `=all` means every device of
    /// that kind unless a spec defines a device called `all`. A spec's own edits are applied
    /// once, before those of the first of its devices requested; a device asked for twice
    /// counts once.
    pub fn resolve(&self, requests: &[String]) -> Result<DeviceEdits, DeviceError> {
        let mut chosen: Vec<(usize, String)> = Vec::new();
        for request in requests {
            let (kind, name) = parse_qualified(request)?;
            if !self.has_kind(kind) {
                return Err(self.unknown(request));
            }
            let names = if name == "all" && !self.names(kind).iter().any(|n| n == "all") {
                self.names(kind)
            } else {
                vec![name.to_string()]
            };
            for n in names {
                let spec = self.find(kind, &n)?.ok_or_else(|| self.unknown(request))?;
                if !chosen.contains(&(spec, n.clone())) {
                    chosen.push((spec, n));
                }
            }
        }
        let mut out = DeviceEdits::default();
        let mut applied: Vec<usize> = Vec::new();
        for (spec, name) in chosen {
            let s = &self.specs[spec];
            if !applied.contains(&spec) {
                applied.push(spec);
                out.extend(s.edits.clone());
            }
            if let Some((_, e)) = s.devices.iter().find(|(n, _)| *n == name) {
                out.extend(e.clone());
            }
        }
        Ok(out)
    }

    /// The spec that defines `kind=name` with the highest priority.
    fn find(&self, kind: &str, name: &str) -> Result<Option<usize>, DeviceError> {
        let mut best: Option<usize> = None;
        for (i, s) in self.specs.iter().enumerate() {
            if s.kind != kind || !s.devices.iter().any(|(n, _)| n == name) {
                continue;
            }
            match best {
                Some(b) if self.specs[b].priority > s.priority => {}
                Some(b) if self.specs[b].priority == s.priority => {
                    return Err(DeviceError::Conflict {
                        name: format!("{kind}={name}"),
                        first: self.specs[b].path.clone(),
                        second: s.path.clone(),
                    })
                }
                _ => best = Some(i),
            }
        }
        Ok(best)
    }

    fn unknown(&self, request: &str) -> DeviceError {
        let offered = self.offered();
        let offered = if offered.is_empty() {
            format!("no cdi devices are defined in {}", self.dirs.join(", "))
        } else {
            format!("the cdi specs offer {}", offered.join(", "))
        };
        DeviceError::UnknownDevice {
            name: request.to_string(),
            offered,
        }
    }
}

/// Whether `s` has the shape of a CDI device name rather than a host path.
pub fn is_qualified_name(s: &str) -> bool {
    !s.starts_with('/') && parse_qualified(s).is_ok()
}

/// Splits `vendor.com/class=name` into kind and name, checking both.
pub fn parse_qualified(s: &str) -> Result<(&str, &str), DeviceError> {
    let bad = || DeviceError::InvalidName(s.to_string());
    let (kind, name) = s.split_once('=').ok_or_else(bad)?;
    if !valid_kind(kind) || !valid_device_name(name) {
        return Err(bad());
    }
    Ok((kind, name))
}

/// `vendor.com/class`: a DNS-like vendor and a class of alphanumerics, `-`, `_` and `.`.
fn valid_kind(kind: &str) -> bool {
    let Some((vendor, class)) = kind.split_once('/') else {
        return false;
    };
    let vendor_ok = !vendor.is_empty()
        && vendor.split('.').all(|l| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    vendor_ok && class.len() <= 63 && edges_alnum(class, "-_.")
}

/// Device names may also hold `:` (NVIDIA names MIG devices `0:1`).
fn valid_device_name(name: &str) -> bool {
    edges_alnum(name, "-_.:")
}

fn edges_alnum(s: &str, inner: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    alnum(s.chars().next())
        && alnum(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || inner.contains(c))
}

fn parse_spec(f: &SpecText) -> Result<Spec, DeviceError> {
    let invalid = |reason: String| DeviceError::InvalidSpec {
        path: f.path.clone(),
        reason,
    };
    let raw: SpecFile = if f.path.ends_with(".json") {
        serde_json::from_str(&f.text).map_err(|e| invalid(e.to_string()))?
    } else {
        serde_yaml::from_str(&f.text).map_err(|e| invalid(one_line(&e.to_string())))?
    };
    check_version(&raw.cdi_version).map_err(invalid)?;
    if !valid_kind(&raw.kind) {
        return Err(invalid(format!(
            "kind {:?} is not vendor.com/class",
            raw.kind
        )));
    }
    if raw.devices.is_empty() {
        return Err(invalid("it defines no devices".into()));
    }
    let spec_source = format!("cdi spec {} ({})", f.path, raw.kind);
    let edits = convert(raw.container_edits, &spec_source).map_err(invalid)?;
    let mut devices: Vec<(String, DeviceEdits)> = Vec::new();
    for d in raw.devices {
        if !valid_device_name(&d.name) {
            return Err(invalid(format!("invalid device name {:?}", d.name)));
        }
        if devices.iter().any(|(n, _)| *n == d.name) {
            return Err(invalid(format!("device {:?} is defined twice", d.name)));
        }
        let source = format!("cdi device {}={} in {}", raw.kind, d.name, f.path);
        let e = convert(d.container_edits, &source).map_err(invalid)?;
        devices.push((d.name, e));
    }
    Ok(Spec {
        path: f.path.clone(),
        priority: f.priority,
        kind: raw.kind,
        devices,
        edits,
    })
}

/// serde_yaml's messages may span lines; messages here are one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check_version(v: &str) -> Result<(), String> {
    let parts: Vec<&str> = v.trim_start_matches('v').split('.').collect();
    let num = |i: usize| parts.get(i).and_then(|p| p.parse::<u32>().ok());
    match (num(0), num(1)) {
        (Some(0), Some(minor)) if (VERSIONS.0..=VERSIONS.1).contains(&minor) => Ok(()),
        _ => Err(format!(
            "cdiVersion {v:?} is not supported (0.{}.0 to 0.{}.x are)",
            VERSIONS.0, VERSIONS.1
        )),
    }
}

fn absolute(what: &str, p: &str) -> Result<(), String> {
    if p.starts_with('/') {
        Ok(())
    } else {
        Err(format!("{what} {p:?} is not an absolute path"))
    }
}

fn convert(e: EditsFile, source: &str) -> Result<DeviceEdits, String> {
    let mut out = DeviceEdits::default();
    for v in e.env {
        let (k, val) = v
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| format!("env entry {v:?} is not NAME=value"))?;
        out.env
            .push(Sourced::new((k.to_string(), val.to_string()), source));
    }
    for n in e.device_nodes {
        absolute("device node path", &n.path)?;
        let host_path = n.host_path.unwrap_or_else(|| n.path.clone());
        absolute("device node hostPath", &host_path)?;
        if let Some(k) = &n.kind {
            if !["c", "u", "b", "p"].contains(&k.as_str()) {
                return Err(format!("device node {} has unknown type {k:?}", n.path));
            }
        }
        let permissions = n.permissions.unwrap_or_else(|| "rwm".into());
        if permissions.is_empty() || !permissions.chars().all(|c| "rwm".contains(c)) {
            return Err(format!(
                "device node {} has permissions {permissions:?}, expected some of rwm",
                n.path
            ));
        }
        out.device_nodes.push(Sourced::new(
            DeviceNode {
                path: n.path,
                host_path,
                kind: n.kind,
                major: n.major,
                minor: n.minor,
                file_mode: n.file_mode,
                permissions,
                uid: n.uid,
                gid: n.gid,
            },
            source,
        ));
    }
    for m in e.mounts {
        absolute("mount containerPath", &m.container_path)?;
        out.mounts.push(Sourced::new(
            DeviceMount {
                host_path: m.host_path,
                container_path: m.container_path,
                kind: m.kind,
                options: m.options,
            },
            source,
        ));
    }
    for h in e.hooks {
        if !HOOK_NAMES.contains(&h.hook_name.as_str()) {
            return Err(format!("unknown hook name {:?}", h.hook_name));
        }
        absolute("hook path", &h.path)?;
        out.hooks.push(Sourced::new(
            Hook {
                hook_name: h.hook_name,
                path: h.path,
                args: h.args,
                env: h.env,
                timeout: h.timeout,
            },
            source,
        ));
    }
    // A gid of 0 is ignored by the spec's own rule.
    for g in e.additional_gids.into_iter().filter(|g| *g != 0) {
        out.additional_gids.push(Sourced::new(g, source));
    }
    if e.intel_rdt.is_some() {
        out.intel_rdt.push(source.to_string());
    }
    Ok(out)
}

/// The spec files of `dirs` in the order [`Registry::new`] wants them, given each
/// directory's listing: JSON and YAML files only, sorted by name within a directory, each
/// with its directory's index as priority. Reading the files stays with the caller.
pub fn spec_paths(dirs: &[(String, Vec<String>)]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (priority, (dir, names)) in dirs.iter().enumerate() {
        let mut names: Vec<&String> = names
            .iter()
            .filter(|n| {
                !n.starts_with('.')
                    && (n.ends_with(".json") || n.ends_with(".yaml") || n.ends_with(".yml"))
            })
            .collect();
        names.sort();
        for n in names {
            out.push((format!("{}/{n}", dir.trim_end_matches('/')), priority));
        }
    }
    out
}

#[cfg(test)]
#[path = "cdi_tests.rs"]
mod tests;
