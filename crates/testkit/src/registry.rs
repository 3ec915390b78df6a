//! A private `docker-registry` (CNCF distribution) per test, optionally behind authentication.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::cache::require_program;
use crate::fixtures::oci_layout_from_tar;
use crate::net::{free_port, http_get_status};

/// The token server, shipped inside the crate so it works wherever the crate is built.
const TOKEN_SERVER: &str = include_str!("../assets/token_server.py");
/// The `service` the registry announces in its Bearer challenge and expects as token audience.
const TOKEN_SERVICE: &str = "berth-test-registry";
/// The `iss` claim the registry trusts.
const TOKEN_ISSUER: &str = "berth-test-issuer";
/// How long a server may take to come up before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How clients must authenticate to a [`Registry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Anonymous access to everything.
    None,
    /// HTTP Basic against a bcrypt htpasswd file with this one user.
    Htpasswd {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// Bearer tokens from the bundled token server, which accepts this one user.
    Token {
        /// User name.
        user: String,
        /// Password.
        password: String,
        /// The token endpoint (the `realm` of the registry's Bearer challenge).
        realm: String,
    },
}

/// A running registry on `127.0.0.1:<port>`, plain HTTP, deletes enabled, with its own storage in
/// a temporary directory.
///
/// Dropping it kills the processes it started (by their handles, never by name) and removes the
/// temporary directory.
pub struct Registry {
    children: Vec<Child>,
    dir: TempDir,
    addr: String,
    storage: PathBuf,
    auth: Auth,
}

impl Registry {
    /// Starts a registry that needs no authentication.
    pub fn start() -> Registry {
        Self::launch(Auth::None)
    }

    /// Starts a registry that requires HTTP Basic authentication as `user`/`password`.
    pub fn start_htpasswd(user: &str, password: &str) -> Registry {
        Self::launch(Auth::Htpasswd {
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    /// Starts a registry that requires Bearer tokens, plus a token server that issues them to
    /// `user`/`password` (HTTP Basic on the token request) for whatever scope is asked.
    /// Anonymous token requests are refused with 401.
    pub fn start_token(user: &str, password: &str) -> Registry {
        Self::launch(Auth::Token {
            user: user.to_string(),
            password: password.to_string(),
            realm: String::new(),
        })
    }

    /// `"127.0.0.1:PORT"`, the registry's address as it appears in image references.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The storage root; blobs are under `docker/registry/v2/blobs/sha256/<xx>/<hex>/data`.
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// Path of the blob file for `digest` (`sha256:<hex>`), for tampering tests.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2.min(hex.len())])
            .join(hex)
            .join("data")
    }

    /// How clients must authenticate (for token registries, `realm` is the token endpoint).
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The user and password this registry accepts, if it requires any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        match &self.auth {
            Auth::None => None,
            Auth::Htpasswd { user, password } | Auth::Token { user, password, .. } => {
                Some((user, password))
            }
        }
    }

    /// The logs of the registry and token server so far, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["registry.log", "token-server.log"] {
            if let Ok(text) = fs::read_to_string(self.dir.path().join(name)) {
                out.push_str(&format!("--- {name}\n{text}"));
            }
        }
        out
    }

    /// Pushes a one-layer image made from `rootfs_tar` as `<this registry>/<repo_tag>` (for
    /// example `"test/busybox:1"`) with `umoci` and `skopeo`, independently of Berth, and
    /// returns the manifest digest. The image config has `Cmd ["/bin/sh"]`.
    pub fn push_image(&self, rootfs_tar: &Path, repo_tag: &str) -> String {
        let work = tempfile::tempdir_in(self.dir.path()).expect("tempdir for push");
        let layout = work.path().join("layout");
        oci_layout_from_tar(rootfs_tar, &layout, "latest");
        let digest_file = work.path().join("digest");
        let mut cmd = Command::new(require_program("skopeo"));
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false", "--digestfile"])
            .arg(&digest_file);
        if let Some((user, password)) = self.credentials() {
            cmd.arg("--dest-creds").arg(format!("{user}:{password}"));
        }
        cmd.arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{}/{repo_tag}", self.addr));
        let out = cmd.output().expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy to {}/{repo_tag} failed: {}\n{}",
            self.addr,
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        fs::read_to_string(&digest_file)
            .expect("skopeo digest file")
            .trim()
            .to_string()
    }

    fn launch(auth: Auth) -> Registry {
        let registry_bin = require_program("docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .expect("registry tempdir");
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage).expect("registry storage dir");
        let mut reg = Registry {
            children: Vec::new(),
            dir,
            addr: String::new(),
            storage,
            auth,
        };
        let auth_yaml = reg.prepare_auth();
        // Another process may grab the port between free_port() and the registry's bind; the
        // registry then exits, and we try again on another port.
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let config = reg.dir.path().join("config.yml");
            fs::write(&config, reg.config_yaml(&addr, &auth_yaml)).expect("write registry config");
            let log_path = reg.dir.path().join("registry.log");
            let log = File::create(&log_path).expect("registry log");
            let child = Command::new(&registry_bin)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log)
                .spawn()
                .expect("spawn docker-registry");
            reg.children.push(child);
            if reg.wait_listening(&addr, &log_path) {
                reg.addr = addr;
                return reg;
            }
            if let Some(mut dead) = reg.children.pop() {
                let _ = dead.kill();
                let _ = dead.wait();
            }
        }
        panic!(
            "docker-registry did not start after 5 tries:\n{}",
            reg.logs()
        );
    }

    /// Writes what the auth method needs (htpasswd file, token server + its certificate) and
    /// returns the registry config's `auth:` section.
    fn prepare_auth(&mut self) -> String {
        match self.auth.clone() {
            Auth::None => String::new(),
            Auth::Htpasswd { user, password } => {
                let out = Command::new(require_program("htpasswd"))
                    .args(["-Bbn", &user, &password])
                    .output()
                    .expect("run htpasswd");
                assert!(out.status.success(), "htpasswd failed: {out:?}");
                let file = self.dir.path().join("htpasswd");
                fs::write(&file, &out.stdout).expect("write htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    yaml_str(&file)
                )
            }
            Auth::Token { user, password, .. } => {
                let cert = self.dir.path().join("token.crt");
                let port = self.start_token_server(&user, &password, &cert);
                let realm = format!("http://127.0.0.1:{port}/token");
                self.auth = Auth::Token {
                    user,
                    password,
                    realm: realm.clone(),
                };
                format!(
                    "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    \
                     issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    yaml_str(Path::new(&realm)),
                    yaml_str(&cert)
                )
            }
        }
    }

    /// Starts the token server; returns its port once it listens and has written `cert`.
    fn start_token_server(&mut self, user: &str, password: &str, cert: &Path) -> u16 {
        let script = self.dir.path().join("token_server.py");
        fs::write(&script, TOKEN_SERVER).expect("write token server");
        let log = File::create(self.dir.path().join("token-server.log")).expect("token log");
        // The system interpreter, not whatever `python3` comes first in PATH: only it is
        // guaranteed to see the Debian python3-cryptography package.
        let python = Path::new("/usr/bin/python3");
        assert!(
            python.exists(),
            "/usr/bin/python3 is missing; run scripts/install-deps"
        );
        let mut child = Command::new(python)
            .arg(&script)
            .arg(cert)
            .env("BERTH_TOKEN_USER", user)
            .env("BERTH_TOKEN_PASSWORD", password)
            .env("BERTH_TOKEN_ISSUER", TOKEN_ISSUER)
            .env("BERTH_TOKEN_SERVICE", TOKEN_SERVICE)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn token server");
        let stdout = child.stdout.take().expect("token server stdout");
        self.children.push(child);
        // The server prints its port only after the certificate is written and the socket is
        // bound, so the first line is the readiness signal. EOF means it died.
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "token server did not start (got {line:?}):\n{}",
                    self.logs()
                )
            });
        assert!(cert.exists(), "token server wrote no certificate");
        port
    }

    fn config_yaml(&self, addr: &str, auth_yaml: &str) -> String {
        format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: {addr}\n  secret: berth-test-secret-not-secret\n\
             health:\n  storagedriver:\n    enabled: false\n\
             {auth_yaml}",
            yaml_str(&self.storage)
        )
    }

    /// Waits until the registry logs that it listens on `addr` and answers HTTP there.
    /// Returns false if it exits first (typically: address already in use).
    fn wait_listening(&mut self, addr: &str, log_path: &Path) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        let child = self.children.last_mut().expect("registry child");
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            // The log line comes after the bind succeeded, so an answer on the port is ours
            // and not from some other server that won the race for it.
            let listening = fs::read_to_string(log_path)
                .map(|log| log.contains(&format!("listening on {addr}")))
                .unwrap_or(false);
            if listening && http_get_status(addr, "/v2/").is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "docker-registry did not answer on {addr} within {START_TIMEOUT:?}:\n{}",
            self.logs()
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A YAML double-quoted scalar for a path or URL.
fn yaml_str(p: &Path) -> String {
    let s = p.to_string_lossy();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
