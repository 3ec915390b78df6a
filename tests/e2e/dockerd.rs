//! A private Debian `dockerd` for comparisons with Docker: started by hand with networking off,
//! its own data root, exec root and socket, and stopped by its PID when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::common::{have, Berth};

/// The image the comparisons run, in both engines.
pub const BUSYBOX: &str = "localhost/bb:latest";

/// Exit code and stdout, what the comparisons hold equal.
pub fn code_and_stdout(o: &Output) -> (Option<i32>, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).to_string(),
    )
}

/// Where Berth's output differs from Docker's, gathered so that a test names all of them.
#[derive(Default)]
pub struct Differences(pub Vec<String>);

impl Differences {
    /// Notes `what` when Docker's result and Berth's are not the same.
    pub fn same<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, theirs: T, ours: T) {
        if theirs != ours {
            self.0
                .push(format!("{what}:\n  docker {theirs:?}\n  berth  {ours:?}"));
        }
    }

    /// Fails the test with every difference noted.
    pub fn assert_none(&self) {
        assert!(self.0.is_empty(), "{}", self.0.join("\n"));
    }
}

pub struct Dockerd {
    child: Child,
    dir: TempDir,
    host: String,
}

impl Dockerd {
    /// Starts the daemon; `None` (after saying why) when it is not installed. Installed (as
    /// `scripts/install-deps` does) but not coming up fails the test with the daemon's log, so
    /// that the comparisons with Docker cannot pass without Docker; `BERTH_TEST_DOCKERD=optional`
    /// skips them instead, for machines where dockerd cannot run.
    pub fn start() -> Option<Dockerd> {
        if !have("dockerd") || !have("docker") {
            eprintln!("dockerd not installed: skipped");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-dockerd-")
            .tempdir_in("/tmp")
            .unwrap();
        let p = |x: &str| -> PathBuf { dir.path().join(x) };
        let host = format!("unix://{}", p("docker.sock").display());
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(p("data"))
            .arg("--exec-root")
            .arg(p("exec"))
            .arg("--pidfile")
            .arg(p("dockerd.pid"))
            .args([
                "-H",
                &host,
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(p("dockerd.log")).unwrap())
            .spawn()
            .unwrap();
        let d = Dockerd { child, dir, host };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if d.docker(&["info"]).status.success() {
                return Some(d);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let log = std::fs::read_to_string(d.dir.path().join("dockerd.log")).unwrap_or_default();
        if std::env::var("BERTH_TEST_DOCKERD").as_deref() == Ok("optional") {
            eprintln!("dockerd did not come up (skipped: BERTH_TEST_DOCKERD=optional): {log}");
            return None;
        }
        panic!("dockerd did not come up in 60 s (BERTH_TEST_DOCKERD=optional skips): {log}");
    }

    /// A store with the busybox image and a daemon that has it too, for a comparison on the
    /// same image; `None` as for [`Dockerd::start`].
    pub fn with_busybox() -> Option<(Berth, Dockerd)> {
        let b = Berth::new();
        b.import_busybox(BUSYBOX);
        let d = Dockerd::start()?;
        d.load_from(&b, BUSYBOX);
        Some((b, d))
    }

    /// The same command through Docker and through Berth; a `run` gets Docker
    /// `--network none`, as Berth's own network is loopback-only.
    pub fn both(&self, b: &Berth, args: &[&str]) -> (Output, Output) {
        let mut theirs = args.to_vec();
        if args.first() == Some(&"run") {
            theirs.splice(1..1, ["--network", "none"]);
        }
        (self.docker(&theirs), b.run(args))
    }

    /// A `docker` client command aimed at this daemon, with its own client config.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", self.dir.path().join("cfg"));
        c
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Gives Docker the same image as Berth's `name`, through `berth save` and `docker load`.
    pub fn load_from(&self, b: &Berth, name: &str) {
        let archive = b.dir.path().join("docker-load.tar");
        b.ok(&["save", "-o", archive.to_str().unwrap(), name]);
        let out = self.docker(&["load", "-i", archive.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "docker load: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_file(archive);
    }

    /// Each command line through Docker and Berth ([`Dockerd::both`]); one entry for each whose
    /// exit code or standard output differs.
    pub fn differences<'a>(
        &self,
        b: &Berth,
        cases: impl IntoIterator<Item = Vec<&'a str>>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for args in cases {
            let (theirs, ours) = self.both(b, &args);
            let (theirs, ours) = (code_and_stdout(&theirs), code_and_stdout(&ours));
            if theirs != ours {
                out.push(format!("{args:?}:\n docker {theirs:?}\n berth  {ours:?}"));
            }
        }
        out
    }

    /// Where Docker and Berth disagree on `inspect -f '{{json FIELD}}' NAME`, one entry per
    /// field (a path such as `.HostConfig.Memory`) that differs.
    pub fn inspect_differences(&self, b: &Berth, name: &str, fields: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for field in fields {
            let format = format!("{{{{json {field}}}}}");
            let (theirs, ours) = self.both(b, &["inspect", "-f", &format, name]);
            let (theirs, ours) = (code_and_stdout(&theirs), code_and_stdout(&ours));
            if theirs != ours {
                out.push(format!(
                    "{name} {field}:\n docker {theirs:?}\n berth  {ours:?}"
                ));
            }
        }
        out
    }

    /// Creates `name` with `flags` (on the busybox image, command `true`) in both, and returns
    /// [`Dockerd::inspect_differences`] for `fields`; the containers are removed after.
    pub fn created_differences(
        &self,
        b: &Berth,
        name: &str,
        flags: &[&str],
        fields: &[&str],
    ) -> Vec<String> {
        let create = [&["create", "--name", name][..], flags, &[BUSYBOX, "true"]].concat();
        let (theirs, ours) = self.both(b, &create);
        assert!(
            theirs.status.success() && ours.status.success(),
            "{create:?}: {}{}",
            String::from_utf8_lossy(&theirs.stderr),
            String::from_utf8_lossy(&ours.stderr)
        );
        let out = self.inspect_differences(b, name, fields);
        self.both(b, &["rm", "-f", name]);
        out
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
