//! `cp` compared with `docker cp` on the same cases, both ways: where each copy lands (the
//! host tree or the container's, with file kinds, contents and link targets) and the exit code.

use std::path::Path;

use crate::dockerd::Dockerd;

/// A tree as lines of "path kind content": f (its contents), d, or l (its target).
fn tree(dir: &Path) -> String {
    let mut lines = Vec::new();
    walk(dir, dir, &mut lines);
    lines.sort();
    lines.join("\n")
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(base).unwrap().display().to_string();
        let t = e.file_type().unwrap();
        if t.is_symlink() {
            out.push(format!(
                "{rel} l {}",
                std::fs::read_link(&p).unwrap().display()
            ));
        } else if t.is_dir() {
            out.push(format!("{rel} d"));
            walk(base, &p, out);
        } else {
            out.push(format!(
                "{rel} f {}",
                std::fs::read_to_string(&p).unwrap_or_default().trim()
            ));
        }
    }
}

const SETUP: &str = "mkdir -p /d/sub; echo x > /d/sub/x; echo f > /f; ln -s /f /link; sleep 300";

#[test]
fn cp_matches_docker_cp() {
    let Some((b, d)) = Dockerd::with_busybox() else {
        return;
    };
    let ours = b.ok(&["run", "-d", "localhost/bb:latest", "sh", "-c", SETUP]);
    let out = d.docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "localhost/bb:latest",
        "sh",
        "-c",
        SETUP,
    ]);
    let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (ours, theirs) = (ours.trim().to_string(), theirs);
    std::thread::sleep(std::time::Duration::from_millis(500));

    // Out of the container: (flags, source, destination under the host directory, what the
    // host directory holds first).
    let out_cases: &[(&[&str], &str, &str, &[&str])] = &[
        (&[], "/f", "new", &[]),
        (&[], "/f", "dir/", &["dir/"]),
        (&[], "/f", "file", &["file"]),
        (&[], "/d", "nd", &[]),
        (&[], "/d", "dir", &["dir/"]),
        (&[], "/d/.", "contents", &[]),
        (&[], "/d/.", "dir", &["dir/"]),
        (&[], "/link", "l", &[]),
        (&["-L"], "/link", "l", &[]),
        (&[], "/nope", "x", &[]),
        (&[], "/d", "file", &["file"]),
        (&[], "/f", "missing/x", &[]),
        (&[], "/f", "nodir/", &[]),
    ];
    let mut differences = Vec::new();
    for (i, (flags, src, dest, given)) in out_cases.iter().enumerate() {
        let mut results = Vec::new();
        for (engine, id) in [("docker", &theirs), ("berth", &ours)] {
            let host = b.dir.path().join(format!("out-{i}-{engine}"));
            std::fs::create_dir_all(&host).unwrap();
            for g in *given {
                match g.strip_suffix('/') {
                    Some(dir) => std::fs::create_dir_all(host.join(dir)).unwrap(),
                    None => std::fs::write(host.join(g), "old\n").unwrap(),
                }
            }
            let mut args = vec!["cp"];
            args.extend_from_slice(flags);
            let from = format!("{id}:{src}");
            let to = format!("{}/{dest}", host.display());
            args.extend([from.as_str(), to.as_str()]);
            let o = if engine == "docker" {
                d.docker(&args)
            } else {
                b.run(&args)
            };
            results.push((
                o.status.code(),
                tree(&host),
                String::from_utf8_lossy(&o.stderr).to_string(),
            ));
        }
        if results[0].0 != results[1].0 || results[0].1 != results[1].1 {
            differences.push(format!(
                "cp {flags:?} CONTAINER:{src} {dest} (given {given:?}):\n  docker {:?} [{}] {}\n  berth  {:?} [{}] {}",
                results[0].0, results[0].1, results[0].2.trim(), results[1].0, results[1].1, results[1].2.trim()
            ));
        }
    }

    // Into the container: a file and a directory on the host, copied to container paths; the
    // result is read back with find and cat through each engine's exec.
    let host = b.dir.path().join("in");
    std::fs::create_dir_all(host.join("hd/sub")).unwrap();
    std::fs::write(host.join("hd/sub/y"), "y\n").unwrap();
    std::fs::write(host.join("hf"), "hf\n").unwrap();
    let hf = host.join("hf").display().to_string();
    let hd = host.join("hd").display().to_string();
    let hd_contents = format!("{hd}/.");
    let in_cases: &[(&str, &str, &str)] = &[
        (&hf, "/newf", "/newf"),
        (&hf, "/d", "/d"),
        (&hf, "/f", "/f"),
        (&hd, "/nd", "/nd"),
        (&hd, "/d", "/d"),
        (&hd_contents, "/contents", "/contents"),
        (&hf, "/nodir/x", "/nodir"),
        (&hd, "/f", "/f"),
    ];
    let show = "find \"$0\" | sort; find \"$0\" -type f | sort | xargs cat 2>/dev/null";
    for (src, dest, look) in in_cases {
        let mut results = Vec::new();
        for (engine, id) in [("docker", &theirs), ("berth", &ours)] {
            let to = format!("{id}:{dest}");
            let args = ["cp", src, to.as_str()];
            let o = if engine == "docker" {
                d.docker(&args)
            } else {
                b.run(&args)
            };
            let exec = ["exec", id.as_str(), "sh", "-c", show, look];
            let seen = if engine == "docker" {
                d.docker(&exec)
            } else {
                b.run(&exec)
            };
            results.push((
                o.status.code(),
                String::from_utf8_lossy(&seen.stdout).to_string(),
                String::from_utf8_lossy(&o.stderr).to_string(),
            ));
        }
        if results[0].0 != results[1].0 || results[0].1 != results[1].1 {
            differences.push(format!(
                "cp {src} CONTAINER:{dest}:\n  docker {:?} {:?} {}\n  berth  {:?} {:?} {}",
                results[0].0,
                results[0].1,
                results[0].2.trim(),
                results[1].0,
                results[1].1,
                results[1].2.trim()
            ));
        }
    }
    let _ = d.docker(&["rm", "-f", &theirs]);
    b.ok(&["rm", "-f", &ours]);
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
