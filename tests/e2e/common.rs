//! A `berth` with a private store, home and Docker config, and helpers to run it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

pub struct Berth {
    pub dir: TempDir,
}

impl Berth {
    pub fn new() -> Berth {
        Berth::in_dir(
            tempfile::Builder::new()
                .prefix("berth-e2e-")
                .tempdir()
                .unwrap(),
        )
    }

    /// A Berth whose store, home and config live in `dir`.
    pub fn in_dir(dir: TempDir) -> Berth {
        std::fs::create_dir_all(dir.path().join("home/.config")).unwrap();
        Berth { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.env("BERTH_ROOT", self.root())
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("DOCKER_CONFIG", self.home().join(".docker"))
            .env_remove("BERTH_CONFIG");
        c
    }

    /// Runs `WRAPPER... berth ARGS...` (a shell, `taskset`) with this store's environment.
    pub fn wrapped(&self, wrapper: &[&str], args: &[&str]) -> Output {
        let berth = self.cmd();
        let mut c = Command::new(wrapper[0]);
        c.args(&wrapper[1..]).arg(berth.get_program()).args(args);
        for (k, v) in berth.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.output().unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs the shell line `line` on a terminal of its own (`script(1)`) with this store's
    /// environment; the line names berth by its path.
    pub fn in_terminal(&self, line: &str) -> Output {
        let mut c = Command::new("script");
        for (k, v) in self.cmd().get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.args(["-qec", line, "/dev/null"]).output().unwrap()
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and asserts failure with `code`; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            out.status.code(),
            Some(code),
            "berth {args:?}: expected exit {code}\nstdout: {}\nstderr: {err}",
            String::from_utf8_lossy(&out.stdout)
        );
        err
    }

    /// Imports the busybox fixture as `name`.
    pub fn import_busybox(&self, name: &str) -> String {
        let tar = berth_testkit::busybox_rootfs_tar();
        self.ok(&["import", tar.to_str().unwrap(), name])
            .trim()
            .to_string()
    }

    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let out = self.ok(&["image", "inspect", name]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0].clone()
    }
}

/// Every file under `dir` (relative path), for "nothing was left behind" checks.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
