//! `berth build` on real Dockerfiles over the busybox fixture image.

use std::time::Instant;

use crate::common::Berth;

fn ctx(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = d.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    d
}

const TWO_STAGES: &str = "FROM localhost/bb AS one
ARG WHO=nobody
RUN mkdir -p /out && echo hello > /out/greeting && echo $WHO > /out/who && rm /bin/vi
COPY . /ctx/
FROM localhost/bb
COPY --from=0 /out/greeting /greeting
COPY --from=one /out/who /who
COPY --from=one /ctx /ctx
ENV A=1 B=two
WORKDIR /app
LABEL org.example=yes
ENTRYPOINT [\"cat\"]
CMD [\"/greeting\"]
";

#[test]
fn two_stage_build_runs_and_caches() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let c = ctx(&[
        ("Dockerfile", TWO_STAGES),
        ("keep.txt", "kept\n"),
        ("skip.log", "no\n"),
        (".dockerignore", "*.log\n"),
    ]);
    let dir = c.path().to_str().unwrap();
    let t = Instant::now();
    b.ok(&["build", "-t", "img:1", "--build-arg", "WHO=alice", dir]);
    eprintln!("cold build: {:?}", t.elapsed());
    assert_eq!(b.ok(&["run", "--rm", "img:1"]), "hello\n");
    assert_eq!(b.ok(&["run", "--rm", "img:1", "/who"]), "alice\n");
    assert_eq!(b.ok(&["run", "--rm", "img:1", "/ctx/keep.txt"]), "kept\n");
    let ls = b.run(&["run", "--rm", "--entrypoint", "ls", "img:1", "/ctx"]);
    assert!(!String::from_utf8_lossy(&ls.stdout).contains("skip.log"));
    let v = b.inspect("img:1");
    let cfg = &v["Config"];
    assert_eq!(cfg["WorkingDir"], "/app", "{v}");
    assert_eq!(cfg["Entrypoint"][0], "cat");
    assert_eq!(cfg["Cmd"][0], "/greeting");
    assert_eq!(cfg["Labels"]["org.example"], "yes");
    assert!(cfg["Env"].to_string().contains("B=two"), "{v}");

    // A whiteout: the file the RUN deleted is gone from stage one.
    b.ok(&["build", "-q", "--target", "one", "-t", "one", dir]);
    let out = b.run(&["run", "--rm", "one", "ls", "/bin/vi"]);
    assert!(!out.status.success());

    let t = Instant::now();
    let out = b
        .cmd()
        .args(["build", "-t", "img:2", "--build-arg", "WHO=alice", dir])
        .output()
        .unwrap();
    let took = t.elapsed();
    eprintln!("cached build: {took:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("#3 RUN"), "{err}");
    assert!(err.contains("CACHED"), "{err}");
    assert_eq!(b.inspect("img:1")["Id"], b.inspect("img:2")["Id"]);
}

#[test]
fn failures_exit_1_without_an_image() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let c = ctx(&[("Dockerfile", "FROM localhost/bb\nRUN echo boom && exit 3\n")]);
    let err = b.fails(&["build", "-t", "bad", c.path().to_str().unwrap()], 1);
    assert!(
        err.contains("RUN echo boom && exit 3") && err.contains("exit code 3"),
        "{err}"
    );
    assert!(err.contains("boom"), "{err}");
    assert!(b.run(&["image", "inspect", "bad"]).status.code() != Some(0));
    let c = ctx(&[("Dockerfile", "FROM localhost/bb\nFROB x\n")]);
    let err = b.fails(&["build", "-t", "bad", c.path().to_str().unwrap()], 1);
    assert!(err.contains("Dockerfile:2:1"), "{err}");
}

#[test]
fn onbuild_triggers_fire_in_the_child_only() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let parent = ctx(&[(
        "Dockerfile",
        "FROM localhost/bb\nONBUILD RUN echo fired \\\n  > /fired\nONBUILD COPY hello.txt /hello.txt\n",
    )]);
    b.ok(&["build", "-t", "parent", parent.path().to_str().unwrap()]);
    let on = &b.inspect("parent")["Config"]["OnBuild"];
    // A trigger written over two lines is recorded whole, on one.
    let first = on[0].as_str().unwrap();
    assert!(
        first.starts_with("RUN echo fired ") && first.ends_with("> /fired"),
        "{on}"
    );
    assert_eq!(on[1], "COPY hello.txt /hello.txt", "{on}");
    assert!(!b
        .run(&["run", "--rm", "parent", "ls", "/fired"])
        .status
        .success());

    let child = ctx(&[
        (
            "Dockerfile",
            "FROM parent\nRUN cat /fired /hello.txt > /both\n",
        ),
        ("hello.txt", "from the child's context\n"),
    ]);
    let out = b
        .cmd()
        .args(["build", "-t", "child", child.path().to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("ONBUILD RUN echo fired"), "{err}");
    assert_eq!(
        b.ok(&["run", "--rm", "child", "cat", "/both"]),
        "fired\nfrom the child's context\n"
    );
    assert!(b.inspect("child")["Config"]["OnBuild"].is_null());

    // Not inherited: a grandchild runs no trigger (its context has no hello.txt to copy).
    let grandchild = ctx(&[("Dockerfile", "FROM child\nRUN true\n")]);
    let out = b
        .cmd()
        .args(["build", "-t", "gc", grandchild.path().to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("ONBUILD"), "{err}");
}

const HEREDOCS: &str = "FROM localhost/bb
ARG NAME=world
RUN <<EOF
echo one > /one
echo two > /two
EOF
RUN <<'EOF'
#!/bin/sh
echo \"script $0\" > /script
EOF
RUN cat <<A > /a && cat <<-B > /b
alpha $NAME
A
\tbeta
\tB
COPY <<EOF /greeting
hello ${NAME}, it's \"quoted\"
EOF
COPY <<X <<'Y' /docs/
x-body
X
y-body $NAME
Y
";

#[test]
fn heredocs_in_run_and_copy() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let c = ctx(&[("Dockerfile", HEREDOCS)]);
    b.ok(&["build", "-t", "hd", c.path().to_str().unwrap()]);
    let cat = |f: &str| b.ok(&["run", "--rm", "hd", "cat", f]);
    assert_eq!(cat("/one") + &cat("/two"), "one\ntwo\n");
    assert_eq!(cat("/script"), "script /dev/pipes/EOF\n");
    assert_eq!(cat("/a"), "alpha world\n");
    assert_eq!(cat("/b"), "beta\n");
    assert_eq!(cat("/greeting"), "hello world, it's \"quoted\"\n");
    assert_eq!(cat("/docs/X"), "x-body\n");
    assert_eq!(cat("/docs/Y"), "y-body $NAME\n");
    let mode = b.ok(&["run", "--rm", "hd", "stat", "-c", "%a", "/greeting"]);
    assert_eq!(mode.trim(), "644");
}

/// A tar holding `top/file` and `top/link` (a hard link to it), in the given format.
fn tarball(dir: &std::path::Path, name: &str, compress: &str) {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("top")).unwrap();
    std::fs::write(src.join("top/file"), "in the archive\n").unwrap();
    let _ = std::fs::remove_file(src.join("top/link"));
    std::fs::hard_link(src.join("top/file"), src.join("top/link")).unwrap();
    let st = std::process::Command::new("tar")
        .arg(format!("-c{compress}f"))
        .arg(dir.join(name))
        .arg("-C")
        .arg(&src)
        .arg("top")
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn add_unpacks_local_archives_and_copy_excludes() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let c = ctx(&[
        (
            "Dockerfile",
            "FROM localhost/bb
ADD plain.tar /plain
ADD gz.tar.gz bz.tbz2 xz.txz /many/
ADD notatar.gz /files/
COPY plain.tar /copied/
COPY --exclude=*.log --exclude=**/*.tmp tree/ /tree/
COPY --exclude=skip* a.txt skip.txt /two/
",
        ),
        ("tree/keep.txt", "k\n"),
        ("tree/drop.log", "d\n"),
        ("tree/sub/deep.tmp", "t\n"),
        (
            "tree/sub/deep.log",
            "kept: only top-level *.log is excluded\n",
        ),
        ("a.txt", "a\n"),
        ("skip.txt", "s\n"),
        ("notatar.gz", "plain bytes with a misleading name\n"),
    ]);
    let d = c.path();
    tarball(d, "plain.tar", "");
    tarball(d, "gz.tar.gz", "z");
    tarball(d, "bz.tbz2", "j");
    tarball(d, "xz.txz", "J");
    b.ok(&["build", "-t", "arch", d.to_str().unwrap()]);
    let sh = |script: &str| b.ok(&["run", "--rm", "arch", "sh", "-c", script]);
    assert_eq!(sh("cat /plain/top/file"), "in the archive\n");
    assert_eq!(sh("cat /plain/top/link"), "in the archive\n");
    // The hard link survives as one: both names share an inode.
    assert_eq!(
        sh("stat -c %i /plain/top/file /plain/top/link | uniq | wc -l").trim(),
        "1"
    );
    assert_eq!(sh("ls /many/top | tr '\\n' ' '"), "file link ");
    assert_eq!(
        sh("cat /files/notatar.gz"),
        "plain bytes with a misleading name\n"
    );
    // COPY never unpacks.
    assert_eq!(sh("ls /copied"), "plain.tar\n");
    assert_eq!(
        sh("cd /tree && find . -type f | sort | tr '\\n' ' '"),
        "./keep.txt ./sub/deep.log "
    );
    assert_eq!(sh("ls /two"), "a.txt\n");
}

fn tar_names(file: &std::path::Path) -> String {
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn builder_prune_and_archive_outputs() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let kept = ctx(&[("Dockerfile", "FROM localhost/bb\nRUN echo a > /a\n")]);
    let gone = ctx(&[("Dockerfile", "FROM localhost/bb\nRUN echo b > /b\n")]);
    let (kept, gone) = (kept.path().to_str().unwrap(), gone.path().to_str().unwrap());
    let build = |args: &[&str]| {
        let out = b.cmd().arg("build").args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{err}");
        err
    };
    build(&["-t", "kept", kept]);
    build(&["-t", "gone", gone]);
    b.ok(&["rmi", "gone"]);
    let out = b.ok(&["builder", "prune", "-f"]);
    assert!(out.contains("Deleted build cache entries: 1"), "{out}");
    assert!(out.contains("Total reclaimed space"), "{out}");
    // The step an image still uses stays cached; the other one runs again.
    assert!(build(&["-t", "kept", kept]).contains("CACHED RUN echo a"));
    assert!(!build(&["-t", "gone", gone]).contains("CACHED RUN"));
    b.ok(&["builder", "prune", "--all", "--force"]);
    assert!(!build(&["-t", "kept", kept]).contains("CACHED RUN"));

    // Archives of the built image, in both formats; the docker one loads elsewhere.
    let dir = tempfile::tempdir().unwrap();
    let oci = dir.path().join("img.oci.tar");
    let docker = dir.path().join("img.docker.tar");
    let spec = format!("type=oci-archive,dest={}", oci.display());
    build(&["-t", "out:1", "--output", &spec, kept]);
    let names = tar_names(&oci);
    assert!(
        names.contains("oci-layout") && names.contains("index.json"),
        "{names}"
    );
    let spec = format!("type=docker-archive,dest={}", docker.display());
    build(&["-t", "out:1", "-o", &spec, kept]);
    assert!(tar_names(&docker).contains("manifest.json"));
    let other = Berth::new();
    other.ok(&["load", "-i", docker.to_str().unwrap()]);
    assert_eq!(other.ok(&["run", "--rm", "out:1", "cat", "/a"]), "a\n");
    let err = b.fails(&["build", "--output", "type=local", kept], 1);
    assert!(err.contains("--output"), "{err}");
    let err = b.fails(&["build", "--output", "type=registry", kept], 1);
    assert!(err.contains("--output type=registry: no name"), "{err}");
}

#[test]
fn copy_cache_follows_content_not_timestamps() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let c = ctx(&[
        ("Dockerfile", "FROM localhost/bb\nCOPY data.txt /d\n"),
        ("data.txt", "aaaa\n"),
    ]);
    let dir = c.path().to_str().unwrap();
    let data = c.path().join("data.txt");
    let mtime = std::fs::metadata(&data).unwrap().modified().unwrap();
    // Digests of files changed in the last 2 s are not remembered: let this one settle.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let build = || {
        let out = b.cmd().args(["build", "-t", "d", dir]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{err}");
        err
    };
    build();
    assert!(build().contains("CACHED COPY"));
    // Same size, same modification time, other contents: still a new layer.
    std::fs::write(&data, "bbbb\n").unwrap();
    let f = std::fs::File::options().write(true).open(&data).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    assert!(!build().contains("CACHED COPY"));
    assert_eq!(b.ok(&["run", "--rm", "d", "cat", "/d"]), "bbbb\n");
}

#[test]
fn built_layers_push_and_run_under_podman() {
    if !crate::common::have("podman") {
        eprintln!("podman not installed: skipped");
        return;
    }
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    // Incompressible bytes (stored gzip members) next to text (deflated): one layer of each.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..400_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let c = ctx(&[(
        "Dockerfile",
        "FROM localhost/bb\nCOPY noise.bin text.txt /data/\nRUN cat /data/noise.bin /data/text.txt | md5sum > /sum\n",
    )]);
    std::fs::write(c.path().join("noise.bin"), &noise).unwrap();
    std::fs::write(c.path().join("text.txt"), "text\n".repeat(50_000)).unwrap();
    let reg = berth_testkit::Registry::start();
    let name = format!("{}/built/interop:1", reg.addr());
    b.ok(&["build", "-t", &name, c.path().to_str().unwrap()]);
    let sum = b.ok(&["run", "--rm", &name, "cat", "/sum"]);
    b.ok(&["push", "--tls-verify=false", &name]);
    let store = b.dir.path().join("podman");
    // No CAP_SYS_RESOURCE here: podman's default rlimits must not exceed the hard ones.
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let hard = |name: &str| {
        let l = limits.lines().find(|l| l.starts_with(name)).unwrap();
        l[name.len()..]
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    // (nproc as bench/run.sh sets it: the hard limit itself is refused here.)
    let (nofile, nproc) = (hard("Max open files"), 32768);
    let conf = b.dir.path().join("containers.conf");
    std::fs::write(
        &conf,
        format!("[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n"),
    )
    .unwrap();
    let podman = |args: &[&str]| {
        let out = std::process::Command::new("podman")
            .env("CONTAINERS_CONF", &conf)
            .arg("--root")
            .arg(store.join("root"))
            .arg("--runroot")
            .arg(store.join("run"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file", "--runtime", "runc"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    podman(&["pull", "-q", "--tls-verify=false", &name]);
    let check = "cat /data/noise.bin /data/text.txt | md5sum; cat /sum";
    let out = podman(&["run", "--rm", "--net", "none", &name, "sh", "-c", check]);
    assert_eq!(out, format!("{sum}{sum}"));
}

#[test]
fn copy_parents_keeps_source_paths() {
    let b = Berth::new();
    b.import_busybox("localhost/bb");
    let c = ctx(&[
        (
            "Dockerfile",
            "FROM localhost/bb
COPY --parents src/a/x.txt src/b/y.txt /p/
COPY --parents src/./a/x.txt /q/
COPY --parents src/b/*.txt /r/
COPY --parents ./src/b /s/
COPY src/b /t/
",
        ),
        ("src/a/x.txt", "x\n"),
        ("src/b/y.txt", "y\n"),
    ]);
    b.ok(&["build", "-t", "parents", c.path().to_str().unwrap()]);
    let files = b.ok(&[
        "run",
        "--rm",
        "parents",
        "sh",
        "-c",
        "find /p /q /r /s /t -type f | sort | tr '\\n' ' '",
    ]);
    assert_eq!(
        files,
        "/p/src/a/x.txt /p/src/b/y.txt /q/a/x.txt /r/src/b/y.txt /s/src/b/y.txt /t/y.txt "
    );
}
