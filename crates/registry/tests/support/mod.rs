//! A real `docker-registry` on 127.0.0.1 for the integration tests, and test data helpers.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_registry::{Client, RegistryOptions};
use berth_types::{Digest, DigestWriter};

/// A registry process that is killed when dropped.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Holds the storage, config and htpasswd files.
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// A registry without authentication.
    pub fn start() -> Registry {
        Self::start_with(None)
    }

    /// A registry with htpasswd (bcrypt) authentication for `user`/`pass`.
    pub fn start_basic(user: &str, pass: &str) -> Registry {
        Self::start_with(Some((user, pass)))
    }

    fn start_with(basic: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some((user, pass)) = basic {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("htpasswd (apache2-utils) is installed");
            assert!(out.status.success());
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed");
        let reg = Registry { child, addr, dir };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&self) {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .build();
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("http://{}/v2/", self.addr);
        while Instant::now() < deadline {
            match agent.get(&url).call() {
                Ok(_) | Err(ureq::Error::Status(401, _)) => return,
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        panic!("registry at {} did not start", self.addr);
    }

    /// A client that reaches this registry over plain HTTP, with `docker_config` for logins.
    pub fn client(&self, docker_config: Option<PathBuf>) -> Client {
        Client::new(RegistryOptions {
            insecure: vec![self.addr.clone()],
            docker_config: Some(
                docker_config.unwrap_or_else(|| self.dir.path().join("no-config.json")),
            ),
            ..RegistryOptions::default()
        })
        .unwrap()
    }

    /// `127.0.0.1:PORT/<repo>:<tag>` parsed.
    pub fn image(&self, repo_and_tag: &str) -> berth_types::ImageRef {
        berth_types::ImageRef::parse(&format!("{}/{repo_and_tag}", self.addr)).unwrap()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic pseudo-random bytes, produced on the fly so large blobs never sit in memory.
pub struct Noise {
    state: u64,
    left: u64,
}

impl Noise {
    pub fn new(seed: u64, len: u64) -> Noise {
        Noise {
            state: seed | 1,
            left: len,
        }
    }

    /// The digest of `Noise::new(seed, len)`.
    pub fn digest(seed: u64, len: u64) -> Digest {
        let mut w = DigestWriter::sha256();
        std::io::copy(&mut Noise::new(seed, len), &mut w).unwrap();
        w.finish()
    }
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for b in &mut buf[..n] {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *b = self.state as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Pushes `bytes` as a blob and returns its digest.
pub fn push_bytes(client: &Client, image: &berth_types::ImageRef, bytes: &[u8]) -> Digest {
    let digest = Digest::sha256_of(bytes);
    client
        .push_blob(
            image,
            &digest,
            bytes.len() as u64,
            Box::new(std::io::Cursor::new(bytes.to_vec())),
        )
        .unwrap();
    digest
}
