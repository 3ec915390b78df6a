//! An unprivileged user for rootless tests, and running commands as that user.

use std::fs;
use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::cache::{lock, nanos, require_program};

/// The account created by [`unprivileged_user`].
const USER_NAME: &str = "berthtest";

/// A local user account that tests can run commands as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestUser {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory (exists, owned by the user).
    pub home: PathBuf,
}

impl TestUser {
    /// `/run/user/<uid>`, created owned by the user with mode 0700 (as logind would), so rootless
    /// code finds the runtime directory it expects.
    pub fn runtime_dir(&self) -> PathBuf {
        let base = Path::new("/run/user");
        if !base.exists() {
            let _ = fs::create_dir_all(base);
            let _ = fs::set_permissions(base, fs::Permissions::from_mode(0o755));
        }
        let dir = base.join(self.uid.to_string());
        if !dir.exists() {
            fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
        chown(&dir, Some(self.uid), Some(self.gid))
            .unwrap_or_else(|e| panic!("cannot chown {}: {e}", dir.display()));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", dir.display()));
        dir
    }

    /// Copies `src` (a file) into `~/.berth-testkit/` of this user, owned by them with the same
    /// permission bits, and returns the copy's path.
    ///
    /// Needed because root's home and cargo's target directory under it are usually mode 0700:
    /// the test user cannot execute the `berth` binary or read a cached fixture in place.
    pub fn copy_to_home(&self, src: &Path) -> PathBuf {
        let dir = self.home.join(".berth-testkit");
        fs::create_dir_all(&dir).expect("create ~/.berth-testkit");
        chown(&dir, Some(self.uid), Some(self.gid)).expect("chown ~/.berth-testkit");
        let name = src
            .file_name()
            .unwrap_or_else(|| panic!("{} has no file name", src.display()));
        let dest = dir.join(name);
        // Copy then rename: parallel tests copying the same file never see a half-written one,
        // and a process still executing the old copy keeps its inode.
        let tmp = dir.join(format!(
            ".{}.tmp-{}-{}",
            name.to_string_lossy(),
            std::process::id(),
            nanos()
        ));
        fs::copy(src, &tmp).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        chown(&tmp, Some(self.uid), Some(self.gid)).expect("chown copy");
        fs::rename(&tmp, &dest).expect("rename copy into place");
        dest
    }
}

/// True when this process runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    // /proc/self belongs to the process's effective uid; this avoids a raw geteuid call.
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Returns the user `berthtest`, creating it first if needed (`useradd -m`, which also assigns
/// subordinate uid/gid ranges in `/etc/subuid` and `/etc/subgid`; if it did not, a free range of
/// 65536 ids is added with `usermod`).
///
/// Creation needs root and is serialised by a lock, so parallel tests can all call this.
/// Panics if the user does not exist and this process is not root.
pub fn unprivileged_user() -> TestUser {
    static USER: OnceLock<TestUser> = OnceLock::new();
    USER.get_or_init(|| {
        if let Some(u) = lookup(USER_NAME) {
            if !is_root() || has_subids(USER_NAME) {
                return u;
            }
        }
        assert!(
            is_root(),
            "user {USER_NAME} does not exist and only root can create it"
        );
        let _guard = lock("user");
        if lookup(USER_NAME).is_none() {
            let out = Command::new(require_program("useradd"))
                .args(["-m", "-U", "-s", "/bin/sh", USER_NAME])
                .output()
                .expect("run useradd");
            assert!(
                out.status.success(),
                "useradd {USER_NAME} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if !has_subids(USER_NAME) {
            add_subids(USER_NAME);
        }
        lookup(USER_NAME).expect("user exists after useradd")
    })
    .clone()
}

/// Returns the user `berthnosub`, created like [`unprivileged_user`] but with no subordinate
/// ids, as on clusters without `/etc/subuid` entries: Berth must fall back to a single-id map.
pub fn unprivileged_user_without_subids() -> TestUser {
    const NAME: &str = "berthnosub";
    static USER: OnceLock<TestUser> = OnceLock::new();
    USER.get_or_init(|| {
        if let Some(u) = lookup(NAME) {
            if !has_subids(NAME) {
                return u;
            }
        }
        assert!(
            is_root(),
            "user {NAME} does not exist and only root can create it"
        );
        let _guard = lock("user-nosub");
        if lookup(NAME).is_none() {
            let out = Command::new(require_program("useradd"))
                .args([
                    "-m",
                    "-U",
                    "-s",
                    "/bin/sh",
                    "-K",
                    "SUB_UID_COUNT=0",
                    "-K",
                    "SUB_GID_COUNT=0",
                    NAME,
                ])
                .output()
                .expect("run useradd");
            assert!(
                out.status.success(),
                "useradd {NAME} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(!has_subids(NAME), "{NAME} must have no /etc/subuid entry");
        lookup(NAME).expect("user exists after useradd")
    })
    .clone()
}

/// Builds a command that runs `cmd` as `user`: through `setpriv` with the user's uid, gid and
/// supplementary groups, in a clean environment (`HOME`, `USER`, `LOGNAME`, `PATH`,
/// `XDG_RUNTIME_DIR`, `LANG`) plus the variables set explicitly on `cmd`, in `cmd`'s working
/// directory (or the user's home).
///
/// Stdio settings of `cmd` cannot be read back from a `Command`, so set them on the returned
/// command. Must be called as root.
pub fn as_user(user: &TestUser, cmd: &Command) -> Command {
    let mut wrapped = Command::new(require_program("setpriv"));
    wrapped
        .arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg("--init-groups")
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    // Root's environment (CARGO_TARGET_DIR, BERTH_ROOT, HOME=/root, ...) would leak the
    // caller's paths into the user's run; start clean like a login would.
    wrapped
        .env_clear()
        .env("HOME", &user.home)
        .env("USER", &user.name)
        .env("LOGNAME", &user.name)
        .env(
            "PATH",
            "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
        )
        .env("XDG_RUNTIME_DIR", user.runtime_dir())
        .env("LANG", "C.UTF-8");
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => wrapped.env(key, v),
            None => wrapped.env_remove(key),
        };
    }
    wrapped.current_dir(cmd.get_current_dir().unwrap_or(&user.home));
    wrapped
}

/// Runs `cmd` as `user` (see [`as_user`]) and returns its output; panics only if it cannot be
/// started.
pub fn run_as(user: &TestUser, cmd: &mut Command) -> Output {
    as_user(user, cmd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?} as {}: {e}", cmd.get_program(), user.name))
}

/// Reads the passwd entry of `name` through NSS (`getent`), so it works with any user database.
fn lookup(name: &str) -> Option<TestUser> {
    let out = Command::new("getent")
        .args(["passwd", name])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = line.trim().split(':').collect();
    if fields.len() < 7 {
        return None;
    }
    Some(TestUser {
        name: fields[0].to_string(),
        uid: fields[2].parse().ok()?,
        gid: fields[3].parse().ok()?,
        home: PathBuf::from(fields[5]),
    })
}

fn has_subids(name: &str) -> bool {
    ["/etc/subuid", "/etc/subgid"].iter().all(|f| {
        fs::read_to_string(f)
            .map(|t| t.lines().any(|l| l.split(':').next() == Some(name)))
            .unwrap_or(false)
    })
}

/// Gives `name` 65536 subordinate uids and gids starting after every range already assigned.
fn add_subids(name: &str) {
    let mut start: u64 = 100_000;
    for f in ["/etc/subuid", "/etc/subgid"] {
        for line in fs::read_to_string(f).unwrap_or_default().lines() {
            let parts: Vec<&str> = line.split(':').collect();
            if let [_, first, count] = parts[..] {
                if let (Ok(first), Ok(count)) = (first.parse::<u64>(), count.parse::<u64>()) {
                    start = start.max(first + count);
                }
            }
        }
    }
    let range = format!("{start}-{}", start + 65_535);
    let out = Command::new(require_program("usermod"))
        .args(["--add-subuids", &range, "--add-subgids", &range, name])
        .output()
        .expect("run usermod");
    assert!(
        out.status.success(),
        "usermod --add-subuids {range} {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
