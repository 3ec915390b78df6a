//! Docker's `~/.docker/config.json`: stored logins and credential helpers.
//!
//! The file is shared with Docker, Podman and other tools, so every key Berth does not know is
//! kept as it was when the file is rewritten.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{Map, Value};

use crate::error::RegistryError;

/// The key `docker login` uses for Docker Hub, kept for compatibility with every tool.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A username and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The contents of a Docker client configuration file.
#[derive(Clone, Debug, Default)]
pub struct DockerConfig {
    raw: Map<String, Value>,
    path: Option<PathBuf>,
}

/// The registry name as references spell it: Docker Hub's aliases become `docker.io`.
pub fn normalize_registry(registry: &str) -> &str {
    match registry {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io",
        other => other,
    }
}

/// The key under which `docker login` stores a registry's credential.
pub fn server_key(registry: &str) -> String {
    match normalize_registry(registry) {
        "docker.io" => DOCKER_HUB_KEY.to_string(),
        other => other.to_string(),
    }
}

/// The registry host a config key names: `https://host:5000/v1/` → `host:5000`.
fn key_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest);
    normalize_registry(host)
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> PathBuf {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("config.json");
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        home.join(".docker").join("config.json")
    }

    /// Reads `path`; a missing or empty file is an empty configuration.
    pub fn load(path: &Path) -> Result<DockerConfig, RegistryError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(RegistryError::Config {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
            }
        };
        let mut cfg = Self::parse(&text).map_err(|message| RegistryError::Config {
            path: path.to_path_buf(),
            message,
        })?;
        cfg.path = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parses the JSON text of a config file.
    pub fn parse(text: &str) -> Result<DockerConfig, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(raw)) => Ok(DockerConfig { raw, path: None }),
            Ok(_) => Err("not a JSON object".to_string()),
            Err(e) => Err(format!("invalid JSON: {e}")),
        }
    }

    /// The credential for `registry` (`docker.io`, `host:5000`), if one is stored.
    ///
    /// Order: a `credHelpers` entry for the registry, the `credsStore` helper, then `auths`.
    /// A helper that is not installed is skipped, because config files copied from a desktop
    /// often name one that a cluster node does not have, and public images must still pull.
    pub fn get(&self, registry: &str) -> Result<Option<Credential>, RegistryError> {
        let url = server_key(registry);
        for helper in self.helpers_for(registry) {
            match helper_get(&helper, &url)? {
                HelperAnswer::Found(c) => return Ok(Some(c)),
                HelperAnswer::NotFound | HelperAnswer::Missing => {}
            }
        }
        let Some(entry) = self.auth_entry(registry) else {
            return Ok(None);
        };
        decode_entry(entry).map_err(|message| RegistryError::Config {
            path: self
                .path
                .clone()
                .unwrap_or_else(|| PathBuf::from("config.json")),
            message: format!("auths entry for {registry}: {message}"),
        })
    }

    /// Stores `cred` for `registry`: through the helper the file names for it, else in `auths`.
    pub fn set(&mut self, registry: &str, cred: &Credential) -> Result<(), RegistryError> {
        let key = server_key(registry);
        if let Some(helper) = self.helpers_for(registry).into_iter().next() {
            let input = serde_json::json!({
                "ServerURL": key,
                "Username": cred.username,
                "Secret": cred.password,
            });
            run_helper(&helper, "store", &input.to_string())?;
            // Docker records an empty entry so that the login is listed; keep doing so.
            self.remove_auths(registry);
            self.auths_mut().insert(key, Value::Object(Map::new()));
            return Ok(());
        }
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", cred.username, cred.password));
        self.remove_auths(registry);
        let mut entry = Map::new();
        entry.insert("auth".to_string(), Value::String(auth));
        self.auths_mut().insert(key, Value::Object(entry));
        Ok(())
    }

    /// Removes the credential for `registry`; true when one was stored.
    pub fn erase(&mut self, registry: &str) -> Result<bool, RegistryError> {
        let mut erased = false;
        if let Some(helper) = self.helpers_for(registry).into_iter().next() {
            match run_helper(&helper, "erase", &server_key(registry)) {
                Ok(_) => erased = true,
                Err(RegistryError::CredentialHelper { message, .. }) if is_not_found(&message) => {}
                Err(e) => return Err(e),
            }
        }
        // With a helper, `auths` only holds an empty marker entry, which is not a credential.
        let had_credential = self
            .auth_entry(registry)
            .is_some_and(|e| matches!(decode_entry(e), Ok(Some(_))));
        let removed = self.remove_auths(registry);
        Ok(erased || (removed && (had_credential || !self.has_helper(registry))))
    }

    /// Writes the file atomically with mode 0600, creating its directory with mode 0700.
    pub fn save(&self, path: &Path) -> Result<(), RegistryError> {
        let cfg_err = |message: String| RegistryError::Config {
            path: path.to_path_buf(),
            message,
        };
        // Docker follows a symlinked config file; write to its target so the link survives.
        let target = match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                std::fs::canonicalize(path).map_err(|e| cfg_err(e.to_string()))?
            }
            _ => path.to_path_buf(),
        };
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| cfg_err(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut text = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut text, fmt);
        serde::Serialize::serialize(&self.raw, &mut ser).map_err(|e| cfg_err(e.to_string()))?;
        text.push(b'\n');
        // tempfile creates the file with mode 0600, so the secret is never world-readable.
        let mut tmp = tempfile::Builder::new()
            .prefix(".config.json.")
            .tempfile_in(&dir)
            .map_err(|e| cfg_err(format!("cannot create temporary file: {e}")))?;
        tmp.write_all(&text)
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(|e| cfg_err(e.to_string()))?;
        tmp.persist(&target)
            .map_err(|e| cfg_err(e.error.to_string()))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The registries that have an `auths` entry, as written in the file.
    pub fn registries(&self) -> Vec<String> {
        self.auths()
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn auths(&self) -> Option<&Map<String, Value>> {
        self.raw.get("auths").and_then(Value::as_object)
    }

    fn auths_mut(&mut self) -> &mut Map<String, Value> {
        let slot = self
            .raw
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        match slot {
            Value::Object(m) => m,
            _ => unreachable!("replaced by an object just above"),
        }
    }

    /// The `auths` entry for `registry`: the exact key first, then any spelling of its host.
    fn auth_entry(&self, registry: &str) -> Option<&Value> {
        let auths = self.auths()?;
        let key = server_key(registry);
        let want = normalize_registry(registry);
        auths.get(&key).or_else(|| auths.get(registry)).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| key_host(k) == want)
                .map(|(_, v)| v)
        })
    }

    fn remove_auths(&mut self, registry: &str) -> bool {
        let want = normalize_registry(registry).to_string();
        let Some(Value::Object(auths)) = self.raw.get_mut("auths") else {
            return false;
        };
        let before = auths.len();
        auths.retain(|k, _| key_host(k) != want);
        auths.len() != before
    }

    fn has_helper(&self, registry: &str) -> bool {
        !self.helpers_for(registry).is_empty()
    }

    /// Helpers to ask, most specific first: the `credHelpers` entry, then `credsStore`.
    fn helpers_for(&self, registry: &str) -> Vec<String> {
        let mut out = Vec::new();
        let want = normalize_registry(registry);
        if let Some(helpers) = self.raw.get("credHelpers").and_then(Value::as_object) {
            let key = server_key(registry);
            let found = helpers
                .get(&key)
                .or_else(|| helpers.get(registry))
                .or_else(|| {
                    helpers
                        .iter()
                        .find(|(k, _)| key_host(k) == want)
                        .map(|(_, v)| v)
                });
            if let Some(name) = found.and_then(Value::as_str).filter(|s| !s.is_empty()) {
                out.push(name.to_string());
            }
        }
        if let Some(store) = self
            .raw
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            if !out.iter().any(|h| h == store) {
                out.push(store.to_string());
            }
        }
        out
    }
}

fn decode_entry(entry: &Value) -> Result<Option<Credential>, String> {
    let Some(obj) = entry.as_object() else {
        return Err("not a JSON object".to_string());
    };
    if let Some(auth) = obj
        .get("auth")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| format!("invalid base64 in \"auth\": {e}"))?;
        let text = String::from_utf8(bytes).map_err(|_| "\"auth\" is not UTF-8".to_string())?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| "\"auth\" is not user:password".to_string())?;
        return Ok(Some(Credential {
            username: user.to_string(),
            password: pass.to_string(),
        }));
    }
    let field = |name: &str| obj.get(name).and_then(Value::as_str).unwrap_or_default();
    if !field("username").is_empty() {
        return Ok(Some(Credential {
            username: field("username").to_string(),
            password: field("password").to_string(),
        }));
    }
    Ok(None)
}

enum HelperAnswer {
    Found(Credential),
    NotFound,
    Missing,
}

fn is_not_found(message: &str) -> bool {
    message
        .to_ascii_lowercase()
        .contains("credentials not found")
}

fn helper_get(helper: &str, server_url: &str) -> Result<HelperAnswer, RegistryError> {
    let out = match run_helper(helper, "get", server_url) {
        Ok(out) => out,
        Err(RegistryError::CredentialHelper { message, .. }) if is_not_found(&message) => {
            return Ok(HelperAnswer::NotFound)
        }
        Err(RegistryError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(HelperAnswer::Missing)
        }
        Err(e) => return Err(e),
    };
    let bad = |message: String| RegistryError::CredentialHelper {
        helper: helper.to_string(),
        message,
    };
    let v: Value =
        serde_json::from_str(&out).map_err(|e| bad(format!("invalid JSON from get: {e}")))?;
    let field = |name: &str| v.get(name).and_then(Value::as_str).unwrap_or_default();
    if field("Username").is_empty() && field("Secret").is_empty() {
        return Ok(HelperAnswer::NotFound);
    }
    Ok(HelperAnswer::Found(Credential {
        username: field("Username").to_string(),
        password: field("Secret").to_string(),
    }))
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin; returns its stdout.
///
/// A helper that cannot be started is an `Io` error of kind `NotFound`, so callers can tell
/// "not installed" from "failed".
fn run_helper(helper: &str, action: &str, input: &str) -> Result<String, RegistryError> {
    if helper.is_empty() || helper.contains('/') {
        return Err(RegistryError::CredentialHelper {
            helper: helper.to_string(),
            message: "invalid helper name".to_string(),
        });
    }
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RegistryError::io(format!("cannot run {program}"), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may exit without reading; its exit status tells the real story.
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| RegistryError::io(format!("cannot run {program}"), e))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let message = [stdout.as_str(), stderr.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("; ")
            .replace('\n', " ");
        return Err(RegistryError::CredentialHelper {
            helper: helper.to_string(),
            message: format!(
                "{action} failed ({}): {}",
                out.status,
                if message.is_empty() {
                    "no output"
                } else {
                    &message
                }
            ),
        });
    }
    Ok(stdout)
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
