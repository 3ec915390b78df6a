//! Where a `--rm` container's writable layer lives: in the store (the docker profile, as Docker
//! keeps it) or in memory (the hpc profile, or `writable_layer = "memory"`), where nothing of it
//! touches the store and it goes with the container.

use std::path::PathBuf;

use crate::common::Berth;
use crate::run::with_busybox;

fn config(b: &Berth, text: &str) {
    let dir = b.home().join(".config/berth");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), text).unwrap();
}

/// Starts `sleep 30` detached with `--rm` and the given flags; returns its id.
fn sleeper(b: &Berth, flags: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--rm"];
    args.extend(flags);
    args.extend([
        "localhost/bb",
        "sh",
        "-c",
        "echo kept > /in-layer; exec sleep 30",
    ]);
    b.ok(&args).trim().to_string()
}

fn container_dir(b: &Berth, id: &str) -> PathBuf {
    b.root().join("containers").join(id)
}

fn inspect(b: &Berth, id: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", id])).unwrap();
    v[0].clone()
}

/// Waits until the container's shell has written its file, read through `exec`.
fn written(b: &Berth, id: &str) -> String {
    for _ in 0..100 {
        let out = b.run(&["exec", id, "cat", "/in-layer"]);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the container never wrote /in-layer");
}

#[test]
fn hpc_profile_keeps_the_layer_of_rm_containers_in_memory() {
    let b = with_busybox();
    let id = sleeper(&b, &["--hpc"]);
    assert_eq!(written(&b, &id), "kept\n");
    let dir = container_dir(&b, &id);
    assert!(dir.join("config.json").exists());
    assert!(
        !dir.join("upper").exists(),
        "no writable layer in the store"
    );
    assert!(!dir.join("work").exists());
    let data = &inspect(&b, &id)["GraphDriver"]["Data"];
    assert_eq!(data["UpperDir"], "", "{data}");
    assert!(data["LowerDir"].as_str().unwrap().contains("layers"));
    // What reads the layer from outside says why it cannot, in one line.
    let err = b.fails(&["diff", &id], 1);
    assert!(err.contains("in memory"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = b.run(&["commit", &id, "localhost/from-memory"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in memory"), "{err}");
    // cp reaches a running container through its own mounts, layer in memory or not.
    let file = b.dir.path().join("copied");
    std::fs::write(&file, "in\n").unwrap();
    b.ok(&["cp", file.to_str().unwrap(), &format!("{id}:/copied")]);
    assert_eq!(b.ok(&["exec", &id, "cat", "/copied"]), "in\n");
    let back = b.dir.path().join("back");
    b.ok(&["cp", &format!("{id}:/in-layer"), back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "kept\n");
    b.ok(&["kill", &id]);
    for _ in 0..100 {
        if !dir.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!dir.exists(), "--rm removed the container");
    // Before its start, a container with its layer in memory has nowhere to copy to.
    let created = b.ok(&["create", "--rm", "--hpc", "localhost/bb", "true"]);
    let created = created.trim();
    let out = b.run(&["cp", file.to_str().unwrap(), &format!("{created}:/copied")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in memory"), "{err}");
    b.ok(&["rm", created]);
    // A container that is kept has its layer in the store, whatever the profile.
    b.ok(&["run", "--hpc", "--name", "kept", "localhost/bb", "true"]);
    let kept = b.ok(&["inspect", "-f", "{{.Id}}", "kept"]);
    assert!(container_dir(&b, kept.trim()).join("upper").is_dir());
}

#[test]
fn writable_layer_setting_overrides_the_profile() {
    let b = with_busybox();
    config(&b, "writable_layer = \"memory\"\n");
    // The docker profile, root in the container: deleting and recreating files of the image
    // (whiteouts and opaque directories in the upper layer) works in memory too.
    let out = b.ok(&[
        "run",
        "--rm",
        "localhost/bb",
        "sh",
        "-c",
        "rm /etc/group && test ! -e /etc/group && rm -r /home && mkdir /home \
         && ls /home | wc -l && echo done",
    ]);
    assert_eq!(out, "0\ndone\n");
    let id = sleeper(&b, &[]);
    assert_eq!(written(&b, &id), "kept\n");
    assert!(!container_dir(&b, &id).join("upper").exists());
    b.ok(&["kill", &id]);

    config(&b, "writable_layer = \"disk\"\n");
    let id = sleeper(&b, &["--hpc"]);
    assert_eq!(written(&b, &id), "kept\n");
    let upper = container_dir(&b, &id).join("upper");
    assert_eq!(
        std::fs::read_to_string(upper.join("in-layer")).unwrap(),
        "kept\n"
    );
    b.ok(&["kill", &id]);

    config(&b, "writable_layer = \"ram\"\n");
    let err = b.fails(&["run", "--rm", "localhost/bb", "true"], 125);
    assert!(err.contains("config.toml:1"), "{err}");
}

/// The directories of the store's `spare/`, where removed containers' directories wait.
fn spares(root: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join("spare"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Waits until the detached deleter of the last `--rm` container has finished.
fn settled(root: &std::path::Path) {
    for _ in 0..200 {
        let busy = std::fs::read_dir(root.join("tmp")).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("container-rm"))
        });
        if !busy {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the deleter never finished");
}

/// What one `--rm` container did to its root and its bound files, the next one, which reuses
/// its directory, does not see.
fn check_reuse(root: &std::path::Path, run: &dyn Fn(&[&str]) -> String) {
    let dirty = "echo x > /left; mkdir -p /var/d; echo y > /var/d/f; chmod 700 /; \
                 echo 10.0.0.9 other >> /etc/hosts; echo ok";
    assert_eq!(
        run(&["run", "--rm", "localhost/bb", "sh", "-c", dirty]).trim(),
        "ok"
    );
    settled(root);
    let clean = "ls /left /var/d 2>&1; stat -c %a /; grep -c other /etc/hosts || true";
    let seen = run(&["run", "--rm", "localhost/bb", "sh", "-c", clean]);
    assert!(seen.contains("/left: No such file"), "{seen}");
    assert!(seen.contains("/var/d: No such file"), "{seen}");
    let mode_and_count: Vec<&str> = seen.lines().rev().take(2).collect();
    assert_eq!(mode_and_count, ["0", "755"], "{seen}");
    settled(root);
    // Directories left as a container's root chowned them are not kept.
    let before = spares(root).len();
    assert!(
        before >= 1,
        "a removed container's directory is kept for the next"
    );
    run(&["run", "--rm", "localhost/bb", "chown", "1:1", "/"]);
    settled(root);
    assert_eq!(spares(root).len(), before - 1);
    // Nor those of a container in the host's pid namespace, whose processes may outlive it.
    run(&["run", "--rm", "--pid", "host", "localhost/bb", "true"]);
    settled(root);
    assert_eq!(spares(root).len(), (before - 1).saturating_sub(1));
}

#[test]
fn a_removed_containers_directory_serves_the_next_one_clean() {
    let b = with_busybox();
    check_reuse(&b.root(), &|args| b.ok(args));
}

#[test]
fn a_removed_containers_directory_serves_the_next_one_clean_rootless() {
    let u = crate::rootless::AsUser::new(berth_testkit::unprivileged_user());
    u.import("localhost/bb");
    check_reuse(&u.root(), &|args| {
        let out = u.run(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
}

#[test]
fn hpc_containers_leave_their_directory_without_what_they_bound() {
    let b = with_busybox();
    let hostname = || {
        let out = b.ok(&[
            "run",
            "--rm",
            "--hpc",
            "localhost/bb",
            "cat",
            "/etc/hostname",
        ]);
        assert!(!out.trim().is_empty());
        settled(&b.root());
    };
    hostname();
    // No pid namespace of its own: a process it left may still use the files bound into it,
    // so only the directory, its mount point and the record wait for the next one.
    let kept = spares(&b.root());
    if !berth_runtime::layer_in_memory_supported() {
        // Without writable layers in memory the layer was on disk: deleted whole.
        assert!(kept.is_empty());
        return;
    }
    assert_eq!(kept.len(), 1, "{kept:?}");
    let mut names: Vec<String> = std::fs::read_dir(&kept[0])
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["config.json", "rootfs"]);
    hostname();
    assert_eq!(spares(&b.root()).len(), 1);
}

/// A `--rm` start that fails after its clean-up process was started (exec fails, or the init
/// does) hands the deletion to that process too, which lets the container's mounts go first:
/// the next containers, which take the directory again, start as usual.
#[test]
fn failed_starts_leave_their_directory_to_the_next_ones() {
    let b = with_busybox();
    for _ in 0..5 {
        b.fails(&["run", "--rm", "localhost/bb", "no-such-program"], 127);
        let e = b.fails(
            &["run", "--rm", "-w", "/etc/passwd", "localhost/bb", "true"],
            125,
        );
        assert!(e.contains("/etc/passwd"), "{e}");
        assert_eq!(
            b.ok(&["run", "--rm", "localhost/bb", "echo", "ok"]).trim(),
            "ok"
        );
    }
    settled(&b.root());
    assert!(b.ok(&["ps", "-aq"]).trim().is_empty());
    assert!(!spares(&b.root()).is_empty());
}
