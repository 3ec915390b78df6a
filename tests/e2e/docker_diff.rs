//! The docker profile compared with Docker itself: the same image, flags and commands through
//! Debian's `dockerd` (started here with networking off, its own data root and socket) and
//! through Berth; exit codes and stdout must agree.

use crate::common::Berth;
use crate::dockerd::{code_and_stdout, Dockerd};

#[test]
fn docker_profile_matches_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };

    let cases: &[(&[&str], &[&str])] = &[
        (&[], &["true"]),
        (&[], &["false"]),
        (&[], &["sh", "-c", "exit 7"]),
        (&[], &["/nonexistent"]),
        (&[], &["/etc/passwd"]),
        (
            &[],
            &["sh", "-c", "id; pwd; echo $HOME; echo $PATH; echo $$"],
        ),
        (&["-u", "1000"], &["sh", "-c", "id; echo $HOME"]),
        (&["-u", "nobody"], &["id"]),
        (&["-w", "/srv/new"], &["pwd"]),
        (&["-e", "A=1", "-e", "B=two"], &["sh", "-c", "echo $A-$B"]),
        (&["--entrypoint", "echo"], &["hi"]),
        (&["--hostname", "h1"], &["hostname"]),
        (&["--ulimit", "nofile=100:100"], &["sh", "-c", "ulimit -n"]),
        (
            &[],
            &[
                "sh",
                "-c",
                "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status",
            ],
        ),
        (
            &["--cap-drop", "ALL", "--cap-add", "CHOWN"],
            &["sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status"],
        ),
        // Deliberate difference: Berth sets no_new_privs by default (Docker only with
        // --security-opt no-new-privileges), so setuid binaries in images cannot gain privileges.
        (
            &["--security-opt", "no-new-privileges=false"],
            &["sh", "-c", "grep NoNewPrivs /proc/self/status"],
        ),
        (
            &["--read-only"],
            &["sh", "-c", "touch /x 2>/dev/null; echo $?"],
        ),
        (&[], &["sh", "-c", "kill -TERM $$; echo alive"]),
        (&[], &["sh", "-c", "ls /dev | sort"]),
        (&[], &["sh", "-c", "ls /dev/pts /dev/shm | sort"]),
        (
            &[],
            &["sh", "-c", "head -c1 /proc/kcore >/dev/null 2>&1; echo $?"],
        ),
        (
            &[],
            &[
                "sh",
                "-c",
                "echo x > /proc/sys/kernel/domainname 2>/dev/null; echo $?",
            ],
        ),
        // The loopback interface is up in the container's own network namespace.
        (
            &[],
            &[
                "sh",
                "-c",
                "cat /sys/class/net/lo/flags; ip -o link show lo | cut -d' ' -f2,3",
            ],
        ),
    ];
    let mut differences = Vec::new();
    for (flags, cmd) in cases {
        let mut docker_args = vec!["run", "--rm", "--network", "none"];
        docker_args.extend_from_slice(flags);
        docker_args.push("localhost/bb:latest");
        docker_args.extend_from_slice(cmd);
        let mut berth_args = vec!["run", "--rm"];
        berth_args.extend_from_slice(flags);
        berth_args.push("localhost/bb:latest");
        berth_args.extend_from_slice(cmd);
        let theirs = d.docker(&docker_args);
        let ours = b.run(&berth_args);
        let (tc, oc) = (theirs.status.code(), ours.status.code());
        let (ts, os) = (
            String::from_utf8_lossy(&theirs.stdout).to_string(),
            String::from_utf8_lossy(&ours.stdout).to_string(),
        );
        if tc != oc || ts != os {
            differences.push(format!(
                "{flags:?} {cmd:?}:\n  docker {tc:?} {ts:?} {}\n  berth  {oc:?} {os:?} {}",
                String::from_utf8_lossy(&theirs.stderr).trim(),
                String::from_utf8_lossy(&ours.stderr).trim()
            ));
        }
    }

    // `exec` into a running container, with its flags.
    let berth_id = b.ok(&["run", "-d", "localhost/bb:latest", "sleep", "300"]);
    let out = d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "localhost/bb:latest",
        "sleep",
        "300",
    ]);
    let docker_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let exec_cases: &[(&[&str], &[&str])] = &[
        (&[], &["sh", "-c", "id; pwd; echo $HOME"]),
        (&["-u", "nobody"], &["sh", "-c", "id; echo $HOME"]),
        (&["-u", "1000"], &["sh", "-c", "id; echo $HOME"]),
        (&["-u", "user:nogroup"], &["id"]),
        (&["-u", "4321:42"], &["id"]),
        (&["-u", "ghost"], &["id"]),
        (&["-w", "/srv/x"], &["pwd"]),
        (&["-e", "A=1"], &["sh", "-c", "echo $A"]),
        (&[], &["sh", "-c", "exit 3"]),
        (&[], &["/nonexistent"]),
        (&[], &["nosuchcmd"]),
        (&[], &["/etc/passwd"]),
        (&["-w", "/nonexistent"], &["pwd"]),
    ];
    for (flags, cmd) in exec_cases {
        let run = |id: &str| {
            let mut args = vec!["exec"];
            args.extend_from_slice(flags);
            args.push(id);
            args.extend_from_slice(cmd);
            args.into_iter().map(String::from).collect::<Vec<_>>()
        };
        let docker_args = run(&docker_id);
        let berth_args = run(berth_id.trim());
        let theirs = d.docker(&docker_args.iter().map(String::as_str).collect::<Vec<_>>());
        let ours = b.run(&berth_args.iter().map(String::as_str).collect::<Vec<_>>());
        let (tc, oc) = (theirs.status.code(), ours.status.code());
        let (ts, os) = (
            String::from_utf8_lossy(&theirs.stdout).to_string(),
            String::from_utf8_lossy(&ours.stdout).to_string(),
        );
        // Deliberate difference: docker exec prints its own errors on stdout, Berth on
        // stderr; the exit code (126 for anything that could not start) must match.
        if tc != oc || (tc == Some(0) && ts != os) {
            differences.push(format!(
                "exec {flags:?} {cmd:?}:\n  docker {tc:?} {ts:?} {}\n  berth  {oc:?} {os:?} {}",
                String::from_utf8_lossy(&theirs.stderr).trim(),
                String::from_utf8_lossy(&ours.stderr).trim()
            ));
        }
    }
    d.docker(&["rm", "-f", &docker_id]);
    b.ok(&["rm", "-f", berth_id.trim()]);

    // inspect after the container exited: what Docker shows of mounts, command and state.
    let bind = b.dir.path().join("bind");
    std::fs::create_dir(&bind).unwrap();
    let bind_mount = format!("type=bind,source={},target=/b,readonly", bind.display());
    let flags = [
        "--name",
        "insp",
        "--mount",
        &bind_mount,
        "--mount",
        "type=tmpfs,target=/t",
        "--mount",
        "type=volume,source=dv,target=/v",
        "--tmpfs",
        "/scratch:size=1m",
        "--entrypoint",
        "sh",
        "localhost/bb:latest",
        "-c",
        "exit 3",
    ];
    let mut docker_args = vec!["run", "--network", "none"];
    docker_args.extend_from_slice(&flags);
    d.docker(&docker_args);
    let mut berth_args = vec!["run"];
    berth_args.extend_from_slice(&flags);
    b.run(&berth_args);
    let project = |text: &[u8]| {
        let v: serde_json::Value = serde_json::from_slice(text).unwrap();
        let v = &v[0];
        let mut mounts: Vec<serde_json::Value> = v["Mounts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                // Where a volume's data lives is the engine's business.
                let source = if m["Type"] == "volume" {
                    serde_json::Value::Null
                } else {
                    m["Source"].clone()
                };
                serde_json::json!([
                    m["Type"],
                    m["Name"],
                    source,
                    m["Destination"],
                    m["Driver"],
                    m["Mode"],
                    m["RW"],
                    m["Propagation"]
                ])
            })
            .collect();
        mounts.sort_by_key(|m| m[3].as_str().unwrap_or_default().to_string());
        serde_json::json!({
            "Mounts": mounts,
            "Tmpfs": v["HostConfig"]["Tmpfs"],
            "Entrypoint": v["Config"]["Entrypoint"],
            "Cmd": v["Config"]["Cmd"],
            "Path": v["Path"],
            "Args": v["Args"],
            "Status": v["State"]["Status"],
            "ExitCode": v["State"]["ExitCode"],
        })
    };
    let theirs = project(&d.docker(&["inspect", "insp"]).stdout);
    let ours = project(&b.run(&["inspect", "insp"]).stdout);
    if theirs != ours {
        differences.push(format!("inspect:\n  docker {theirs}\n  berth  {ours}"));
    }
    d.docker(&["rm", "-f", "insp"]);

    // `diff` of a container that added, changed and deleted files.
    let script = "echo data > /made; rm /bin/vi; mkdir -p /opt/x && echo y > /opt/x/y; \
                  echo z >> /etc/passwd; mkdir /empty";
    let args = [
        "run",
        "--name",
        "changed",
        "localhost/bb:latest",
        "sh",
        "-c",
        script,
    ];
    d.docker(&args);
    b.run(&args);
    // Docker lists in its directory walk's order, which depends on the file system; Berth sorts.
    let sorted = |out: Vec<u8>| {
        let mut lines: Vec<String> = String::from_utf8_lossy(&out)
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        lines
    };
    let theirs = sorted(d.docker(&["diff", "changed"]).stdout);
    let ours = sorted(b.run(&["diff", "changed"]).stdout);
    if theirs != ours {
        differences.push(format!("diff:\n  docker {theirs:?}\n  berth  {ours:?}"));
    }
    d.docker(&["rm", "-f", "changed"]);
    assert!(
        differences.is_empty(),
        "{} cases differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// `stats --no-stream --format json` has Docker's keys, each a string as in Docker's output,
/// and `Container` is the name as given.
#[test]
fn stats_json_matches_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "st",
        "localhost/bb:latest",
        "sleep",
        "300",
    ]);
    let out = d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "st",
        "localhost/bb:latest",
        "sleep",
        "300",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shape = |json: &str| -> Vec<(String, String)> {
        let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        let obj = v.as_object().unwrap();
        let mut keys: Vec<(String, String)> = obj
            .iter()
            .map(|(k, v)| {
                let kind = if v.is_string() { "string" } else { "other" };
                let shown = if k == "Container" || k == "Name" {
                    v.to_string()
                } else {
                    kind.into()
                };
                (k.clone(), shown)
            })
            .collect();
        keys.sort();
        keys
    };
    let theirs = d.docker(&["stats", "--no-stream", "--format", "json", "st"]);
    let ours = b.ok(&["stats", "--no-stream", "--format", "json", "st"]);
    assert_eq!(
        shape(&ours),
        shape(&String::from_utf8_lossy(&theirs.stdout))
    );
    // A stopped container, named or with -a: a row of zeros, the same in every column.
    b.ok(&["run", "--name", "gone", "localhost/bb:latest", "true"]);
    d.docker(&[
        "run",
        "--network",
        "none",
        "--name",
        "gone",
        "localhost/bb:latest",
        "true",
    ]);
    let values = |json: &str| -> serde_json::Value {
        let mut v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        v.as_object_mut().unwrap().remove("ID");
        v
    };
    let theirs = d.docker(&["stats", "--no-stream", "--format", "json", "gone"]);
    let ours = b.ok(&["stats", "--no-stream", "--format", "json", "gone"]);
    assert_eq!(
        values(&ours),
        values(&String::from_utf8_lossy(&theirs.stdout))
    );
    let names = "{{.Name}} {{.PIDs}}";
    let theirs = d.docker(&["stats", "--no-stream", "-a", "--format", names]);
    let mut theirs: Vec<String> = String::from_utf8_lossy(&theirs.stdout)
        .lines()
        .map(String::from)
        .collect();
    let mut ours: Vec<String> = b
        .ok(&["stats", "--no-stream", "-a", "--format", names])
        .lines()
        .map(String::from)
        .collect();
    theirs.sort();
    ours.sort();
    assert_eq!(ours, theirs);
    let _ = d.docker(&["rm", "-f", "st", "gone"]);
    b.ok(&["rm", "-f", "st", "gone"]);
}

/// `volume create/ls/inspect/rm` print what Docker's do, column spacing and JSON layout
/// included (the mount point and creation time aside), and refuse a missing volume alike.
#[test]
fn volumes_match_docker() {
    let b = Berth::new();
    let Some(d) = Dockerd::start() else { return };
    let both = |args: &[&str]| d.both(&b, args);
    let same = |what: &str, t: &std::process::Output, o: &std::process::Output| {
        assert_eq!(
            code_and_stdout(o),
            code_and_stdout(t),
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let (t, o) = both(&["volume", "create", "v1"]);
    same("create", &t, &o);
    let (t, o) = both(&["volume", "ls"]);
    same("ls", &t, &o);
    let (t, o) = both(&["volume", "ls", "-q"]);
    same("ls -q", &t, &o);
    let (t, o) = both(&["volume", "inspect", "v1"]);
    let layout = |o: &std::process::Output| -> String {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.contains("\"Mountpoint\"") && !l.contains("\"CreatedAt\""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(layout(&o), layout(&t));
    let (t, o) = both(&["volume", "rm", "v1"]);
    same("rm", &t, &o);
    let (t, o) = both(&["volume", "rm", "v1"]);
    assert_eq!(o.status.code(), t.status.code(), "rm of a missing volume");
}

/// `images --filter` (dangling, reference patterns, labels, and a refused key) lists what
/// Docker's does, with a tagged, a re-tagged (dangling) and a labelled image in each.
#[test]
fn image_filters_match_docker() {
    let b = Berth::new();
    b.import_busybox("localhost/bb:latest");
    let ctx = b.dir.path().join("labelled");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/bb:latest\nLABEL tier=x\n",
    )
    .unwrap();
    b.ok(&[
        "build",
        "-q",
        "-t",
        "localhost/lab:1",
        ctx.to_str().unwrap(),
    ]);
    let ctx2 = b.dir.path().join("gone");
    std::fs::create_dir_all(&ctx2).unwrap();
    std::fs::write(
        ctx2.join("Dockerfile"),
        "FROM localhost/bb:latest\nLABEL old=yes\n",
    )
    .unwrap();
    b.ok(&[
        "build",
        "-q",
        "-t",
        "localhost/moving:1",
        ctx2.to_str().unwrap(),
    ]);
    let Some(d) = Dockerd::start() else { return };
    for name in [
        "localhost/bb:latest",
        "localhost/lab:1",
        "localhost/moving:1",
    ] {
        d.load_from(&b, name);
    }
    // The tag moves on: the image it named is left dangling in both.
    let (t, o) = (
        d.docker(&["tag", "localhost/bb:latest", "localhost/moving:1"]),
        b.run(&["tag", "localhost/bb:latest", "localhost/moving:1"]),
    );
    assert!(t.status.success() && o.status.success());
    let listed = |o: &std::process::Output| -> (Option<i32>, Vec<String>) {
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        (o.status.code(), v)
    };
    let mut differences = Vec::new();
    for filter in [
        &["-f", "dangling=true"][..],
        &["-f", "dangling=false"],
        &["-f", "reference=localhost/*"],
        &["-f", "reference=*/bb"],
        &["-f", "reference=localhost/moving:1"],
        &["-f", "label=tier"],
        &["-f", "label=tier=x"],
        &["-f", "label=old=yes"],
        &["-f", "label=tier", "-f", "dangling=false"],
        &["-f", "size=1"],
    ] {
        let mut args = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        args.extend_from_slice(filter);
        let (t, o) = (d.docker(&args), b.run(&args));
        if listed(&t) != listed(&o) {
            differences.push(format!(
                "images {filter:?}:\n  docker {:?}\n  berth  {:?} {}",
                listed(&t),
                listed(&o),
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// `inspect --format` with what scripts write (index, range, if/else, len, join, json,
/// pipelines, printf, with) prints what Docker's does for the same container.
#[test]
fn inspect_templates_match_docker() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    let host = b.dir.path().join("bind");
    std::fs::create_dir_all(&host).unwrap();
    let bind = format!("{}:/b:ro", host.display());
    let run = [
        "run",
        "-d",
        "--name",
        "tpl",
        "--label",
        "tier=front",
        "--label",
        "team=hpc",
        "-v",
        &bind,
        "localhost/bb:latest",
        "sleep",
        "300",
    ];
    b.ok(&run);
    let mut drun = run.to_vec();
    drun.splice(1..1, ["--network", "none"]);
    assert!(d.docker(&drun).status.success());
    let mut differences = Vec::new();
    for f in [
        "{{index .Config.Labels \"tier\"}}",
        "{{index .Config.Labels \"missing\"}}",
        "{{range .Mounts}}{{.Destination}} {{.RW}};{{end}}",
        "{{if .State.Running}}up{{else}}down{{end}}",
        "{{if eq .State.Status \"running\"}}yes{{end}}",
        "{{len .Mounts}} {{len .Config.Labels}}",
        "{{join .Config.Cmd \" \"}}",
        "{{json .Config.Labels}}",
        "{{.Name | upper}}",
        "{{printf \"%s:%v\" .Name .State.Running}}",
        "{{with .State}}{{.Status}}{{end}}",
        "{{range .Config.Cmd}}{{println .}}{{end}}",
        "{{- .State.Status -}}",
        "{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.Privileged}}",
    ] {
        let (t, o) = d.both(&b, &["inspect", "--format", f, "tpl"]);
        let text = code_and_stdout;
        if text(&t) != text(&o) {
            differences.push(format!(
                "{f}:\n  docker {:?}\n  berth  {:?} {}",
                text(&t),
                text(&o),
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
    }
    let _ = d.docker(&["rm", "-f", "tpl"]);
    b.ok(&["rm", "-f", "tpl"]);
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
