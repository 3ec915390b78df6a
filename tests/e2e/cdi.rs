//! CDI devices and `--gpus` through the real binary, with spec files in a temporary directory
//! named by `cdi_spec_dirs` in the config.

use std::path::{Path, PathBuf};

use crate::common::Berth;

/// A berth with busybox imported and `cdi_spec_dirs` pointing at two fresh directories
/// (lowest priority first), returned with them.
fn with_specs() -> (Berth, PathBuf, PathBuf) {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let low = b.dir.path().join("cdi-etc");
    let high = b.dir.path().join("cdi-run");
    std::fs::create_dir_all(&low).unwrap();
    std::fs::create_dir_all(&high).unwrap();
    let config = b.home().join(".config/berth");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.toml"),
        format!(
            "cdi_spec_dirs = [\"{}\", \"{}\"]\n",
            low.display(),
            high.display()
        ),
    )
    .unwrap();
    (b, low, high)
}

fn example_spec(data: &Path) -> String {
    format!(
        r#"{{
  "cdiVersion": "0.6.0",
  "kind": "example.com/dev",
  "containerEdits": {{"env": ["EXAMPLE_SPEC=1"]}},
  "devices": [
    {{"name": "null", "containerEdits": {{
      "deviceNodes": [{{"path": "/dev/cdinull", "hostPath": "/dev/null", "type": "c",
                        "major": 1, "minor": 3, "permissions": "rw"}}],
      "mounts": [{{"hostPath": "{}", "containerPath": "/data", "options": ["ro", "bind"]}}],
      "env": ["EXAMPLE_DEV=null"]}}}},
    {{"name": "zero", "containerEdits": {{"deviceNodes": [{{"path": "/dev/zero", "permissions": "r"}}]}}}}
  ]
}}"#,
        data.display()
    )
}

#[test]
fn cdi_device_brings_its_node_mount_and_env() {
    let (b, low, high) = with_specs();
    let data = b.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("f"), "from-host\n").unwrap();
    std::fs::write(low.join("example.json"), example_spec(&data)).unwrap();
    let script = "test -c /dev/cdinull && echo hi > /dev/cdinull && echo node-ok; \
                  cat /data/f; echo x > /data/new 2>/dev/null || echo ro-ok; \
                  echo $EXAMPLE_SPEC $EXAMPLE_DEV; test -e /dev/zero && echo zero";
    let out = b.ok(&[
        "run",
        "--rm",
        "--device",
        "example.com/dev=null",
        "localhost/bb",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out, "node-ok\nfrom-host\nro-ok\n1 null\nzero\n");
    assert!(!data.join("new").exists());

    // The user's -e wins over a spec's variable; =all brings every device of the kind.
    let out = b.ok(&[
        "run",
        "--rm",
        "--device",
        "example.com/dev=all",
        "-e",
        "EXAMPLE_DEV=mine",
        "localhost/bb",
        "sh",
        "-c",
        "test -c /dev/cdinull && echo $EXAMPLE_DEV",
    ]);
    assert_eq!(out, "mine\n");

    // A YAML spec in the higher-priority directory, next to a host-path --device.
    std::fs::write(
        high.join("other.yaml"),
        "cdiVersion: 0.3.0\nkind: example.org/tty\ndevices:\n  - name: one\n    containerEdits:\n      env: [YAML_DEV=one]\n",
    )
    .unwrap();
    let out = b.ok(&[
        "run",
        "--rm",
        "--device",
        "example.org/tty=one",
        "--device",
        "/dev/null:/dev/plain",
        "localhost/bb",
        "sh",
        "-c",
        "test -c /dev/plain && echo $YAML_DEV",
    ]);
    assert_eq!(out, "one\n");
}

#[test]
fn cdi_errors_are_one_line_and_name_the_device() {
    let (b, low, _) = with_specs();
    std::fs::write(low.join("example.json"), example_spec(Path::new("/tmp"))).unwrap();
    let one_line = |err: &str| {
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    };

    let err = b.fails(
        &[
            "run",
            "--rm",
            "--device",
            "example.com/dev=nope",
            "localhost/bb",
            "true",
        ],
        125,
    );
    one_line(&err);
    assert!(
        err.contains("unknown cdi device example.com/dev=nope"),
        "{err}"
    );
    assert!(
        err.contains("example.com/dev=null, example.com/dev=zero"),
        "{err}"
    );

    let err = b.fails(
        &[
            "run",
            "--rm",
            "--device",
            "vendor.com/class=",
            "localhost/bb",
            "true",
        ],
        125,
    );
    one_line(&err);
    assert!(err.contains("invalid cdi device name"), "{err}");

    // A hook program the host lacks is named with its spec file, before anything starts.
    let hooked = low.join("hooked.yaml");
    std::fs::write(
        &hooked,
        "cdiVersion: 0.5.0\nkind: example.com/hooked\ndevices:\n  - name: h\n    containerEdits:\n      hooks:\n        - hookName: createContainer\n          path: /usr/bin/berth-no-such-hook\n",
    )
    .unwrap();
    let err = b.fails(
        &[
            "run",
            "--rm",
            "--device",
            "example.com/hooked=h",
            "localhost/bb",
            "true",
        ],
        125,
    );
    one_line(&err);
    assert!(err.contains(&hooked.display().to_string()), "{err}");
    assert!(err.contains("/usr/bin/berth-no-such-hook"), "{err}");

    // A node the host lacks, and a broken spec beside a good one (a warning, not a failure).
    std::fs::write(
        low.join("missing.json"),
        r#"{"cdiVersion": "0.5.0", "kind": "example.com/missing", "devices": [{"name": "m",
            "containerEdits": {"deviceNodes": [{"path": "/dev/berth-no-such-node"}]}}]}"#,
    )
    .unwrap();
    std::fs::write(low.join("broken.json"), "{").unwrap();
    let err = b.fails(
        &[
            "run",
            "--rm",
            "--device",
            "example.com/missing=m",
            "localhost/bb",
            "true",
        ],
        125,
    );
    assert!(
        err.contains("device node /dev/berth-no-such-node does not exist on this host"),
        "{err}"
    );
    let err = b.fails(
        &[
            "run",
            "--rm",
            "--device",
            "example.com/dev=gone",
            "localhost/bb",
            "true",
        ],
        125,
    );
    one_line(&err);
    assert!(err.contains("broken.json"), "{err}");
    let out = b.run(&[
        "run",
        "--rm",
        "--device",
        "example.com/dev=zero",
        "localhost/bb",
        "true",
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.json"), "{err}");
}

#[test]
fn gpus_without_a_gpu_fail_clearly() {
    if Path::new("/dev/nvidiactl").exists() {
        eprintln!("skipped: this host has an NVIDIA driver");
        return;
    }
    let (b, _, _) = with_specs();
    for flag in ["all", "1", "device=0"] {
        let err = b.fails(
            &["run", "--rm", "--gpus", flag, "localhost/bb", "true"],
            125,
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("--gpus {flag}: no NVIDIA GPU on this host")),
            "{err}"
        );
    }
    let err = b.fails(
        &["run", "--rm", "--gpus", "lots", "localhost/bb", "true"],
        125,
    );
    assert!(err.contains("invalid --gpus \"lots\""), "{err}");
}

#[test]
fn gpus_use_nvidias_cdi_spec_within_the_allocation() {
    // A cgroup v1 devices list is this test's caller's allocation, and lists no GPU.
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    if cgroups.lines().any(|l| l.contains(":devices:")) {
        eprintln!("skipped: a cgroup v1 devices controller decides the GPUs here");
        return;
    }
    // A stand-in for the spec nvidia-ctk writes: GPUs by index, /dev/null as their nodes.
    let (b, low, _) = with_specs();
    std::fs::write(
        low.join("nvidia.yaml"),
        "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n\
         - name: '0'\n  containerEdits:\n    deviceNodes:\n      - {path: /dev/nvidia0, hostPath: /dev/null}\n\
         - name: '1'\n  containerEdits:\n    deviceNodes:\n      - {path: /dev/nvidia1, hostPath: /dev/null}\n\
         containerEdits:\n  env: [NVIDIA_VISIBLE_DEVICES=void]\n",
    )
    .unwrap();
    let script =
        "ls /dev | grep nvidia | tr '\\n' ' '; echo $NVIDIA_VISIBLE_DEVICES $CUDA_VISIBLE_DEVICES";
    let run = |flag: &str, env: &[(&str, &str)]| {
        let mut c = b.cmd();
        c.env_remove("CUDA_VISIBLE_DEVICES")
            .env_remove("SLURM_STEP_GPUS")
            .env_remove("SLURM_JOB_GPUS");
        for (k, v) in env {
            c.env(k, v);
        }
        c.args([
            "run",
            "--rm",
            "--gpus",
            flag,
            "localhost/bb",
            "sh",
            "-c",
            script,
        ]);
        c.output().unwrap()
    };
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).to_string();
    let out = run("all", &[]);
    assert_eq!(text(&out), "nvidia0 nvidia1 0,1 0,1\n", "{out:?}");
    let out = run("device=1", &[]);
    assert_eq!(text(&out), "nvidia1 1 0\n", "{out:?}");
    // Slurm gave this step GPU 1 only: `all` means it, and GPU 0 is refused.
    let out = run("all", &[("SLURM_STEP_GPUS", "1")]);
    assert_eq!(text(&out), "nvidia1 1 0\n", "{out:?}");
    let out = run("\"device=0,1\"", &[("CUDA_VISIBLE_DEVICES", "1")]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("GPU 0 is outside this job's allocation (1 from CUDA_VISIBLE_DEVICES)"),
        "{err}"
    );
}

/// A CDI spec's hooks run at their points, as NVIDIA's do: `createRuntime` on the host with the
/// container's state, `createContainer` in the container's namespaces with its root reachable
/// through the bundle's config.json (where it writes a file the container then sees),
/// `startContainer` inside the container, `poststop` after it ended. A failing hook stops the
/// start with one line naming it and leaves no container behind.
#[test]
fn cdi_hooks_run_at_their_points() {
    let (b, low, _) = with_specs();
    let one_line = |err: &str| assert_eq!(err.trim().lines().count(), 1, "{err}");
    let dir = b.dir.path().join("hooks");
    std::fs::create_dir_all(&dir).unwrap();
    let script = |name: &str, body: &str| -> String {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        p.display().to_string()
    };
    let d = dir.display();
    let runtime = script(
        "create-runtime",
        &format!("cat > {d}/runtime-state.json\necho \"$1 $HOOK_VAR\" > {d}/runtime-args"),
    );
    let container = script(
        "create-container",
        "bundle=$(jq -r .bundle)\nroot=$(jq -r .root.path \"$bundle/config.json\")\necho made-by-hook > \"$root/etc/hooked\"",
    );
    let poststop = script("poststop", &format!("jq -r .status > {d}/poststop"));
    std::fs::write(
        low.join("hooks.yaml"),
        format!(
            "cdiVersion: 0.5.0
kind: example.com/hooks
devices:
  - name: h
    containerEdits:
      hooks:
        - hookName: createRuntime
          path: {runtime}
          args: [create-runtime, first-arg]
          env: [HOOK_VAR=from-spec, PATH=/usr/bin:/bin]
        - hookName: createContainer
          path: {container}
          env: [PATH=/usr/bin:/bin]
        - hookName: startContainer
          path: /bin/sh
          args: [sh, -c, 'echo inside > /tmp/started']
        - hookName: poststop
          path: {poststop}
          env: [PATH=/usr/bin:/bin]
"
        ),
    )
    .unwrap();
    let out = b.ok(&[
        "run",
        "--rm",
        "--device",
        "example.com/hooks=h",
        "localhost/bb",
        "cat",
        "/etc/hooked",
        "/tmp/started",
    ]);
    assert_eq!(out, "made-by-hook\ninside\n");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("runtime-state.json")).unwrap())
            .unwrap();
    assert_eq!(state["status"], "creating", "{state}");
    assert!(state["pid"].as_i64().unwrap() > 1, "{state}");
    assert!(!state["id"].as_str().unwrap().is_empty(), "{state}");
    assert_eq!(
        std::fs::read_to_string(dir.join("runtime-args")).unwrap(),
        "first-arg from-spec\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("poststop")).unwrap(),
        "stopped\n"
    );

    // A failing hook: one line naming it and its message; nothing left.
    let failing = script("failing", "echo 'no driver loaded' >&2\nexit 3");
    std::fs::write(
        low.join("failing.yaml"),
        format!(
            "cdiVersion: 0.5.0\nkind: example.com/failing\ndevices:\n  - name: f\n    containerEdits:\n      hooks:\n        - hookName: createContainer\n          path: {failing}\n"
        ),
    )
    .unwrap();
    let err = b.fails(
        &[
            "run",
            "--rm",
            "--device",
            "example.com/failing=f",
            "localhost/bb",
            "true",
        ],
        125,
    );
    one_line(&err);
    assert!(
        err.contains(&format!(
            "createContainer hook {failing}: exited with status 3: no driver loaded"
        )),
        "{err}"
    );
    assert_eq!(b.ok(&["ps", "-aq"]).trim(), "");
}
